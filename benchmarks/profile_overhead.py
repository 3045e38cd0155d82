"""In-process A/B of tokenmeter's overhead on the harness' openai call, and where the time goes.

    venvs/tokenmeter/bin/python profile_overhead.py [--mode nonstream|stream] [--blocks 20] [--block 300]
    venvs/tokenmeter/bin/python profile_overhead.py --profile [--profile-out results/profile.html]

Alternates blocks of calls with tokenmeter instrumented and not (``instrument``/``uninstrument``) in
one process and compares the medians of per-block CPU time (``time.process_time``), which other
processes on a busy machine disturb far less than wall time. This is the tool used to find and check
hot-path changes; the published comparison with the other libraries is ``orchestrate.py``'s.
``--profile`` runs pyinstrument (``pip install pyinstrument`` into venvs/tokenmeter) on the instrumented
loop and prints the tree of tokenmeter's own frames. ``--spy`` samples the instrumented loop from outside
with py-spy (``pip install py-spy``; no in-process overhead) and prints where tokenmeter's share goes, as
a percentage of the loop and in µs per call:

    venvs/tokenmeter/bin/python profile_overhead.py --spy [--mode stream] [--noop all]
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import Pipeline, check_call_result, make_call, make_client  # noqa: E402

import tokenmeter  # noqa: E402


def _block(call: Any, n: int) -> float:
    t0 = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - t0) / n * 1e6


def _budget(kind: str) -> dict[str, Any]:
    # "memory" / "sqlite" / "redis": one daily dollar budget on the team the calls run under (see _enter_team)
    if kind == "none":
        return {}
    store = {
        "memory": "memory",
        "sqlite": f"sqlite:///{os.path.join(HERE, 'results', 'profile-budget.sqlite3')}",
        "redis": os.environ.get("BENCH_REDIS_URL", ""),
    }[kind]
    budget = tokenmeter.Budget("bench-daily", scope={"team": "payments"}, limit_usd=1_000_000.0, window="1d")
    return {"budgets": [budget], "store": store}


def _providers(pipe: Pipeline, noop: str) -> dict[str, Any]:
    # "traces" / "metrics" / "all": swap in the API's no-op provider, to see what the SDK work costs
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    tp = NoOpTracerProvider() if noop in ("traces", "all") else pipe.tracer_provider
    mp = NoOpMeterProvider() if noop in ("metrics", "all") else pipe.meter_provider
    return {"tracer_provider": tp, "meter_provider": mp}


def ab(
    stream: bool, blocks: int, block: int, scope: str, no_gc: bool = False, noop: str = "none", budget: str = "none"
) -> dict[str, Any]:
    """Median CPU µs per call with and without tokenmeter, over alternating blocks."""
    pipe = Pipeline()
    tokenmeter.configure(service_name="bench", **_providers(pipe, noop), **_budget(budget))
    if budget != "none":
        tokenmeter.attributes(team="payments").__enter__()
    client, _ = make_client(stream)
    call = make_call(client, stream)
    if scope == "workflow":
        tokenmeter.workflow("refund", team="payments").__enter__()
        tokenmeter.step("answer").__enter__()
    on: list[float] = []
    off: list[float] = []
    for i in range(blocks * 2 + 2):
        instrumented = i % 2 == 0
        if instrumented:
            tokenmeter.instrument("openai")
        else:
            tokenmeter.uninstrument("openai")
        check_call_result(stream, call())
        gc.collect()
        if no_gc:
            gc.disable()
        us = _block(call, block)
        gc.enable()
        if i >= 2:  # the first pair warms up
            (on if instrumented else off).append(us)
    tokenmeter.uninstrument()
    pipe.flush()
    med_on, med_off = statistics.median(on), statistics.median(off)
    return {
        "mode": "stream" if stream else "nonstream",
        "scope": scope,
        "bare_us": med_off,
        "tokenmeter_us": med_on,
        "overhead_us": med_on - med_off,
        "paired_overhead_us": statistics.median(a - b for a, b in zip(on, off, strict=True)),
        "spans": pipe.span_count,
    }


def profile(stream: bool, n: int, out: str | None) -> None:
    from pyinstrument import Profiler

    pipe = Pipeline()
    tokenmeter.configure(service_name="bench", tracer_provider=pipe.tracer_provider, meter_provider=pipe.meter_provider)
    tokenmeter.instrument("openai")
    client, _ = make_client(stream)
    call = make_call(client, stream)
    for _ in range(200):
        call()
    profiler = Profiler(interval=0.0002)
    profiler.start()
    for _ in range(n):
        call()
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    if out:
        with open(out, "w") as f:
            f.write(profiler.output_html())


def loop(stream: bool, n: int, noop: str, budget: str) -> None:
    """Just the instrumented calls (what ``--spy`` samples)."""
    pipe = Pipeline()
    tokenmeter.configure(service_name="bench", **_providers(pipe, noop), **_budget(budget))
    if budget != "none":
        tokenmeter.attributes(team="payments").__enter__()
    tokenmeter.instrument("openai")
    client, _ = make_client(stream)
    call = make_call(client, stream)
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    with open(os.path.join(HERE, "results", "spy-loop-us.txt"), "w") as f:
        f.write(f"{(time.perf_counter() - t0) / n * 1e6:.1f}\n")


# Frames whose children are reported (the tokenmeter path of one call).
_PARENTS = (
    "_before",
    "_after",
    "open_call",
    "finish_call",
    "begin",
    "sync_wrapper.wrapper",
    "MeteredCall._start",
    "finish",
    "Gate.before",
    "Gate.after",
    "Gate._admit",
    "Gate._reserve_budgets",
    "Gate._settle",
    "record_metrics",
    "_Endpoint.result",
    "MeteredStream.__next__",
    "_Finalizer.see",
    "_Finalizer.finish",
)


def spy(stream: bool, n: int, noop: str, budget: str) -> None:
    out = os.path.join(HERE, "results", f"spy-{'stream' if stream else 'nonstream'}-{noop}-{budget}.txt")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "py-spy"),
        "record",
        "-r",
        "2000",
        "-f",
        "raw",
        "-o",
        out,
        "--",
        sys.executable,
        __file__,
        "--loop",
        str(n),
        "--mode",
        "stream" if stream else "nonstream",
        "--noop",
        noop,
        "--budget",
        budget,
    ]
    # py-spy pauses the process for every sample: shares are right, times are not. Time an unsampled loop.
    subprocess.run(cmd[cmd.index("--") + 1 :], capture_output=True, text=True, check=True)
    with open(os.path.join(HERE, "results", "spy-loop-us.txt")) as f:
        us_per_call = float(f.read())
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    children: collections.Counter[str] = collections.Counter()
    in_loop = 0
    for line in open(out):
        stack, _, count = line.rstrip().rpartition(" ")
        names = [f.split(" (")[0].replace("<locals>.", "") for f in stack.split(";")]
        if "make_call.call" not in names:
            continue
        in_loop += int(count)
        for i, name in enumerate(names):
            if name in _PARENTS:
                children[f"{name} > {names[i + 1] if i + 1 < len(names) else '(own lines)'}"] += int(count)
    print(
        f"py-spy: {in_loop} samples in the call loop ({us_per_call:.0f} µs/call wall without sampling); "
        f"raw stacks in {out}"
    )
    for key, count in children.most_common(30):
        share = count / in_loop
        print(f"{share * 100:6.2f}%  {share * us_per_call:7.1f} µs/call  {key}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["nonstream", "stream"], default="nonstream")
    ap.add_argument("--scope", choices=["none", "workflow"], default="none")
    ap.add_argument("--blocks", type=int, default=20)
    ap.add_argument("--block", type=int, default=300)
    ap.add_argument("--no-gc", action="store_true", help="disable the cyclic GC inside the timed blocks")
    ap.add_argument(
        "--noop",
        choices=["none", "traces", "metrics", "all"],
        default="none",
        help="give tokenmeter the OTel API's no-op tracer/meter provider (isolates the SDK's share)",
    )
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--profile-n", type=int, default=5000)
    ap.add_argument("--profile-out", default=None)
    ap.add_argument("--spy", action="store_true", help="sample the instrumented loop with py-spy")
    ap.add_argument(
        "--budget",
        choices=["none", "memory", "sqlite", "redis"],
        default="none",
        help="configure a daily dollar budget in this store (redis: BENCH_REDIS_URL)",
    )
    ap.add_argument("--loop", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    stream = args.mode == "stream"
    if args.loop:
        loop(stream, args.loop, args.noop, args.budget)
        return 0
    if args.spy:
        spy(stream, 1500 if stream else 12000, args.noop, args.budget)
        return 0
    if args.profile:
        profile(stream, args.profile_n, args.profile_out)
        return 0
    r = ab(stream, args.blocks, args.block, args.scope, args.no_gc, args.noop, args.budget)
    per = 50 if stream else 1
    print(
        f"{r['mode']:9s} scope={r['scope']:8s} noop={args.noop:7s} budget={args.budget:6s} "
        f"bare {r['bare_us']:8.1f} µs  "
        f"tokenmeter {r['tokenmeter_us']:8.1f} µs  "
        f"overhead {r['overhead_us']:6.1f} µs (paired {r['paired_overhead_us']:6.1f}; "
        f"{r['paired_overhead_us'] / per:.2f} µs per {'chunk' if stream else 'call'})  spans={r['spans']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
