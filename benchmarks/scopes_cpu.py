"""CPU cost of tokenmeter's scopes: a workflow run, and each ``step`` / ``agent`` / ``tool`` level inside it.

    venvs/tokenmeter/bin/python scopes_cpu.py [--depths 1,5,20] [--blocks 15] [--block 400] [--kind step]
                                              [--call]

One process, the harness' telemetry pipeline (SDK tracer and meter providers, batch span processor into a
discarding exporter). Variants run in interleaved blocks (a freshly shuffled order per round) and each
block's CPU time (``time.process_time``) per iteration is kept; the report gives medians:

* ``empty``: the loop alone;
* ``workflow``: ``with workflow("refund", team=...)``: one run (span, run id, rollup, run metrics, ledger);
* ``depth N``: the workflow with N nested ``KIND`` scopes inside it (``step`` by default).

``sdk N``: the workflow with N nested bare SDK spans carrying a scope span's attributes (the floor of any
span-per-level design). Per workflow run = workflow - empty; per level = (depth N - null N) / N, where
``null N`` is the same walk with N null contexts (what the loop pays that is not tokenmeter). ``--call`` adds one
``tokenmeter.record()`` in the innermost scope of every variant but ``empty`` (its cost then also rolls up
through every level). The ledger goes to a private temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depths", default="1,5,20")
    ap.add_argument("--blocks", type=int, default=15)
    ap.add_argument("--block", type=int, default=400)
    ap.add_argument("--kind", choices=["step", "agent", "tool"], default="step")
    ap.add_argument("--call", action="store_true", help="one tokenmeter.record() in the innermost scope")
    args = ap.parse_args()
    os.environ.setdefault("XDG_DATA_HOME", tempfile.mkdtemp(prefix="tm-scopes-"))

    from harness import Pipeline

    import tokenmeter

    pipe = Pipeline()
    tokenmeter.configure(service_name="bench", tracer_provider=pipe.tracer_provider, meter_provider=pipe.meter_provider)
    usage = tokenmeter.Usage(input=210, cache_read=1024, output=146, reasoning=64)
    level = getattr(tokenmeter, args.kind)
    specs = [level(f"{args.kind}-{i}") for i in range(max(int(d) for d in args.depths.split(",")))]
    flow = tokenmeter.workflow("refund", team="payments")

    def inner() -> None:
        if args.call:
            tokenmeter.record("openai", "gpt-4o-mini", usage)

    def empty() -> None:
        pass

    def run_workflow() -> None:
        with flow:
            inner()

    def nested(depth: int) -> Callable[[], None]:
        chosen = specs[:depth]

        def body() -> None:
            with flow, contextlib.ExitStack() as stack:
                for spec in chosen:
                    stack.enter_context(spec)
                inner()

        return body

    def baseline_stack(depth: int) -> Callable[[], None]:
        # the same ExitStack walk with null contexts: what `nested` pays that is not tokenmeter
        chosen = [contextlib.nullcontext() for _ in range(depth)]

        def body() -> None:
            with flow, contextlib.ExitStack() as stack:
                for spec in chosen:
                    stack.enter_context(spec)
                inner()

        return body

    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace

    tracer = pipe.tracer_provider.get_tracer("floor")
    start_attrs = {"tokenmeter.step.depth": 1, "tokenmeter.step.name": "s", "tokenmeter.team.name": "payments"}
    start_attrs["gen_ai.workflow.name"] = "refund"
    end_attrs = {f"tokenmeter.rollup.{k}": 0 for k in ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l")}

    def sdk_floor(depth: int) -> Callable[[], None]:
        # the OTel SDK alone: N nested spans made current, with a scope span's attributes (4 at start,
        # 12 rollup attributes at the end), nothing else -- what any span-per-level design pays
        def body() -> None:
            with flow:
                opened = []
                for _ in range(depth):
                    span = tracer.start_span("step s", attributes=start_attrs)
                    opened.append((span, otel_context.attach(otel_trace.set_span_in_context(span))))
                inner()
                for span, token in reversed(opened):
                    otel_context.detach(token)
                    span.set_attributes(end_attrs)
                    span.end()

        return body

    variants: dict[str, Callable[[], None]] = {"empty": empty, "workflow": run_workflow}
    depths = [int(d) for d in args.depths.split(",")]
    for d in depths:
        variants[f"depth {d}"] = nested(d)
        variants[f"null {d}"] = baseline_stack(d)
        variants[f"sdk {d}"] = sdk_floor(d)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm-up
        for _ in range(50):
            fn()
    for _ in range(args.blocks):
        order = list(variants.items())
        random.shuffle(order)
        for name, fn in order:
            gc.collect()
            t0 = time.process_time()
            for _ in range(args.block):
                fn()
            times[name].append((time.process_time() - t0) / args.block * 1e6)
    pipe.flush()
    med = {name: statistics.median(v) for name, v in times.items()}
    load = os.getloadavg()[0]
    print(f"scopes ({args.kind}{', with one record() inside' if args.call else ''}), CPU µs, load {load:.2f}")
    run = med["workflow"] - med["empty"]
    print(f"  workflow run: {run:7.1f} µs (workflow {med['workflow']:.1f}, empty {med['empty']:.1f})")
    for d in depths:
        per = (med[f"depth {d}"] - med[f"null {d}"]) / d
        sdk = (med[f"sdk {d}"] - med["workflow"]) / d
        above = med[f"depth {d}"] - med["workflow"]
        print(
            f"  depth {d:3d}: {above:8.1f} µs above the workflow; {per:6.1f} µs per level (SDK span alone {sdk:5.1f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
