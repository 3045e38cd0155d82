"""Cold start: ``import tokenmeter`` + ``configure()`` in a fresh interpreter, against the same with openai
and the OpenTelemetry SDK imported first (the usual case in a service). Best of N fresh processes.

    python benchmarks/cold_start.py [N]
"""

from __future__ import annotations

import subprocess
import sys

COLD = "import time;t=time.perf_counter();import tokenmeter;tokenmeter.configure();print(time.perf_counter()-t)"
WARM = (
    "import openai, opentelemetry.sdk.trace, opentelemetry.sdk.metrics, "
    "opentelemetry.exporter.otlp.proto.http.trace_exporter, opentelemetry.exporter.otlp.proto.http.metric_exporter;"
    + COLD
)


def best(code: str, n: int) -> float:
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(n)
    ]
    return min(runs)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    print(f"cold import + configure: {best(COLD, n) * 1000:.0f} ms (best of {n})")
    print(f"with openai and the OTel SDK already imported: {best(WARM, n) * 1000:.0f} ms (best of {n})")
