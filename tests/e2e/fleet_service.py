"""One service process of the fleet test: the demo workload, metered by tokenmeter, exported over OTLP.

Configured only the way a deployment configures a service -- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the collector),
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_METRIC_EXPORT_INTERVAL`` -- it serves ``--runs`` workflow
runs against a local FakeProvider (through the real ``openai`` client) and prints its own account of every call
as one JSON document on stdout: what the provider reported, class by class, which the test sums.

    python tests/e2e/fleet_service.py --runs 12 --seed 11
"""

from __future__ import annotations

import argparse
import json
import sys

import tokenmeter
from examples.agent_service import demo_options, run_workload  # the repository is on PYTHONPATH


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    options = demo_options(args.runs)
    del options["service_name"]  # OTEL_SERVICE_NAME names each service
    meter = tokenmeter.configure(**options)  # OTLP, because OTEL_EXPORTER_OTLP_ENDPOINT is set
    try:
        result = run_workload(args.runs, args.seed)
        flushed = meter.force_flush(timeout_millis=20_000)
    finally:
        tokenmeter.unconfigure()
    json.dump(
        {
            "flushed": flushed,
            "runs": [{"workflow": r.workflow, "team": r.team, "outcome": r.outcome} for r in result.runs],
            "calls": [
                {
                    "team": c.team,
                    "workflow": c.workflow,
                    "agent": c.agent,
                    "model": c.model,
                    "outcome": c.outcome,
                    "usage": dict(c.usage.by_class()) if c.usage else None,
                }
                for c in result.calls
            ],
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
