"""CPU-time A/B of any contender's overhead, in one process (robust on a busy machine).

    venvs/<venv>/bin/python ab_cpu.py CONTENDER [--mode nonstream|stream] [--blocks 12] [--block 300]
                                         [--toggle all|transport|client]

Runs the contender's harness setup once, notes which methods of the openai client classes *and of the
HTTP client it sends through* (httpx / httpx2 ``Client.send``: tokenmeter's transport patch counts the
SDK's own retries there) it replaced, then alternates blocks of calls with those methods patched and
restored, and reports the median of the paired per-call differences of ``time.process_time`` (CPU time
of this process only, so other processes on the machine disturb it far less than wall time). The export
thread's CPU time is included, as in the harness. Used for the profile figures in RESULTS.md; the
published comparison is ``orchestrate.py``'s.

``--toggle transport`` alternates only the HTTP-client patches (the others stay on): the transport
patch's own share. ``--toggle client`` alternates only the openai-class patches (the transport patch
stays on, idle outside a metered call). The default, ``all``, toggles everything the contender patched.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

_ABSENT = object()


def _patchable() -> list[type]:
    import openai
    from openai._base_client import SyncAPIClient
    from openai.resources.chat.completions.completions import Completions

    classes: list[type] = [Completions, SyncAPIClient, openai.OpenAI]
    for name in ("httpx2", "httpx"):  # the HTTP clients an instrumentation may patch under the SDK
        try:
            module = __import__(name)
        except ImportError:
            continue
        classes += [module.Client, module.AsyncClient]
    return classes


def _is_transport(cls: type) -> bool:
    return cls.__module__.split(".")[0] in ("httpx", "httpx2")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("contender")
    ap.add_argument("--mode", choices=["nonstream", "stream"], default="nonstream")
    ap.add_argument("--blocks", type=int, default=12)
    ap.add_argument("--block", type=int, default=None)
    ap.add_argument("--toggle", choices=["all", "transport", "client"], default="all")
    args = ap.parse_args()
    stream = args.mode == "stream"
    block = args.block or (60 if stream else 300)
    harness.load_plugins([os.path.join(HERE, "tokenmeter_contenders.py")])
    contender = harness.CONTENDERS[args.contender]
    pipe = harness.Pipeline()
    classes = _patchable()
    before = [dict(vars(cls)) for cls in classes]
    contender.fn(pipe.tracer_provider, pipe.meter_provider, pipe.logger_provider, False)
    changed: list[tuple[type, str, Any, Any]] = []
    for cls, old in zip(classes, before, strict=True):
        for name, value in vars(cls).items():
            if old.get(name, _ABSENT) is not value:
                changed.append((cls, name, old.get(name, _ABSENT), value))
    if args.toggle != "all":
        changed = [c for c in changed if _is_transport(c[0]) == (args.toggle == "transport")]
    client, _ = harness.make_client(stream)
    call = harness.make_call(client, stream)
    on: list[float] = []
    off: list[float] = []
    for i in range(args.blocks * 2 + 2):
        instrumented = i % 2 == 0
        for cls, name, original, patched in changed:
            if instrumented or original is not _ABSENT:
                setattr(cls, name, patched if instrumented else original)
            else:
                delattr(cls, name)  # the instrumentation added it over an inherited method
        harness.check_call_result(stream, call())
        gc.collect()
        t0 = time.process_time()
        for _ in range(block):
            call()
        us = (time.process_time() - t0) / block * 1e6
        if i >= 2:  # the first pair warms up
            (on if instrumented else off).append(us)
    paired = statistics.median(a - b for a, b in zip(on, off, strict=True))
    per = 50 if stream else 1
    patched_names = ", ".join(f"{cls.__module__.split('.')[0]}:{cls.__name__}.{name}" for cls, name, _, _ in changed)
    patched_names = patched_names or "nothing"
    print(
        f"{args.contender:24s} {args.mode:9s} toggle={args.toggle:9s} off {statistics.median(off):8.1f} µs  "
        f"on {statistics.median(on):8.1f} µs  paired overhead {paired:7.1f} µs "
        f"({paired / per:.2f} µs per {'chunk' if stream else 'call'})  patched: {patched_names}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
