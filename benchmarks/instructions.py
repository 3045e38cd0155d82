"""Instructions per call, counted by valgrind (deterministic: immune to the load of a shared machine).

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \\
        --callgrind-out-file=/dev/null venvs/<venv>/bin/python instructions.py CONTENDER MODE N

Sets the contender up as the harness does (``bare`` for none), warms up with 30 calls, then makes N calls
inside ``functools.reduce`` -- the one C function whose execution callgrind collects (``--toggle-collect``),
so imports, set-up and warm-up are not counted. Divide callgrind's "Collected" count by N: instructions per
call on the caller's thread (the span exporter's thread runs outside the toggle and is not counted).
"""

from __future__ import annotations

import functools
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


def main() -> int:
    contender, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    stream = mode == "stream"
    harness.load_plugins([os.path.join(HERE, "tokenmeter_contenders.py")])
    pipe = harness.Pipeline()
    if contender != "bare":
        harness.CONTENDERS[contender].fn(pipe.tracer_provider, pipe.meter_provider, pipe.logger_provider, False)
    client, _ = harness.make_client(stream)
    call = harness.make_call(client, stream)
    for _ in range(30):
        harness.check_call_result(stream, call())
    functools.reduce(lambda acc, _: call(), range(n), None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
