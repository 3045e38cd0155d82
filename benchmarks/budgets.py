"""What a budget costs per metered call, per store: none / memory / SQLite / Redis, 1 and 2 budgets, A/B.

    python benchmarks/budgets.py [--calls 1500] [--rounds 3] [--before DIR] [--json out.json] [--md out.md]

Each measurement is a fresh process (``--worker``) that configures tokenmeter (``exporter="none"``), warms
up with 200 calls, then times ``--calls`` metered calls through the core's gated path (``begin()`` ->
``stop()``: estimate, reserve, settle, spans and metrics; no HTTP, so the store's share is not drowned in
client noise). Reported per call: the caller's wall time, the CPU of the whole process (every thread:
Redis's settle thread included, and the final flush of queued settles), the caller thread's own CPU,
and for Redis the round trips (socket writes of redis-py connections) made by the caller's thread and
by other threads. ``--before DIR`` holds another tokenmeter tree (e.g. ``git archive main tokenmeter
integrations | tar -x -C DIR``): the two trees are measured interleaved, round by round, and the
medians compared. A private ``redis-server`` on a free loopback port is started and killed by pid.
The load average is recorded before and after: on a shared machine, read figures against it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from _redis import start_redis

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = "gpt-4o-mini"
STORES = ("none", "memory", "sqlite", "redis")
WARM = 200


def _budgets(n: int) -> list[Any]:
    from tokenmeter import Budget

    team = Budget("team-daily", scope={"team": "payments"}, limit_usd=1_000_000, window="1d")
    flow = Budget("workflow-monthly", scope={"workflow": "refund"}, limit_tokens=10**12, window="month")
    return [team, flow][:n]


def worker(store: str, n_budgets: int, calls: int, url: str) -> dict[str, Any]:
    """One measurement in this process (``sys.path`` already points at the tree under test)."""
    import tokenmeter
    from tokenmeter import Request, Usage
    from tokenmeter._call import begin

    sends: dict[str, int] = {"caller": 0, "other": 0}
    caller = threading.current_thread()
    if store == "redis":
        import redis.connection

        original = redis.connection.Connection.send_packed_command

        def counted(conn: Any, command: Any, check_health: bool = True) -> None:
            sends["caller" if threading.current_thread() is caller else "other"] += 1
            original(conn, command, check_health)

        redis.connection.Connection.send_packed_command = counted  # type: ignore[method-assign]
    options: dict[str, Any] = {"exporter": "none", "ledger": "none"}
    if store != "none":
        options.update(budgets=_budgets(n_budgets), store=url)
    meter = tokenmeter.configure(service_name="bench-budgets", **options)
    usage = Usage(input=40, output=100)
    messages = [{"role": "user", "content": "Summarise the refund policy in one line."}]

    def call() -> None:
        metered = begin(Request("openai", MODEL, max_tokens=100, messages=messages))
        assert metered is not None
        metered.stop(usage)

    flush = getattr(meter.gate, "flush", None)  # queued settles (Redis, after this change)
    with tokenmeter.attributes(team="payments", workflow="refund"):
        for _ in range(WARM):
            call()
        if flush is not None:
            flush(10_000)
        sends.update(caller=0, other=0)
        cpu0, thread0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
        for _ in range(calls):
            call()
        wall = time.perf_counter() - wall0
        thread_cpu = time.thread_time() - thread0
        on_path = dict(sends)
        if flush is not None:
            flush(10_000)
        cpu = time.process_time() - cpu0
    spent = None
    gate = meter.gate
    if gate is not None and gate.store is not None:
        budget = gate.budgets[0]
        spent = gate.store.state(budget.key(time.time()), time.time()).spent_usd
    tokenmeter.unconfigure()
    return {
        "wall_us": wall / calls * 1e6,
        "cpu_us": cpu / calls * 1e6,
        "caller_cpu_us": thread_cpu / calls * 1e6,
        "caller_round_trips": on_path["caller"] / calls,
        "other_round_trips": (sends["other"]) / calls,
        "spent_usd_nano": spent,
        "tree": os.path.dirname(os.path.dirname(os.path.abspath(tokenmeter.__file__))),
    }


# -- orchestration ----------------------------------------------------------------------------------------------
def _measure(tree: str, store: str, n_budgets: int, calls: int, url: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run(
        [sys.executable, __file__, "--worker", store, str(n_budgets), str(calls), url],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=4, metavar=("STORE", "BUDGETS", "CALLS", "URL"))
    ap.add_argument("--calls", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", help="another tokenmeter tree to compare with (measured interleaved)")
    ap.add_argument("--stores", default=",".join(STORES))
    ap.add_argument("--json")
    ap.add_argument("--md")
    args = ap.parse_args(argv)
    if args.worker:
        store, n_budgets, calls, url = args.worker
        print(json.dumps(worker(store, int(n_budgets), int(calls), url)))
        return 0
    trees = {"after": ROOT}
    if args.before:
        trees = {"before": os.path.abspath(args.before), **trees}
    cases = [(s, b) for s in args.stores.split(",") for b in ((0,) if s == "none" else (1, 2))]
    load0 = os.getloadavg()
    redis_proc, redis_url = start_redis() if "redis" in args.stores else (None, "")
    tmp = tempfile.mkdtemp(prefix="tm-bench-budgets-")
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for r in range(args.rounds):
            for store, n in cases:
                for label, tree in trees.items():
                    url = {
                        "memory": "memory",
                        "sqlite": f"sqlite:///{tmp}/{label}-{r}-{n}.db",
                        "redis": redis_url,
                        "none": "",
                    }[store]
                    if store == "redis":
                        import redis

                        redis.Redis.from_url(redis_url).flushall()
                    m = _measure(tree, store, n, args.calls, url)
                    results.setdefault(f"{label}|{store}|{n}", []).append(m)
                    print(f"round {r} {label:6} {store:6} {n} budgets: {m}", file=sys.stderr)
    finally:
        if redis_proc is not None:
            redis_proc.kill()
            redis_proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = os.getloadavg()
    skip = ("spent_usd_nano", "tree")
    summary = {
        key: {field: statistics.median(m[field] for m in runs) for field in runs[0] if field not in skip}
        for key, runs in results.items()
    }
    best = {
        key: {field: min(m[field] for m in runs) for field in ("wall_us", "cpu_us")} for key, runs in results.items()
    }
    doc = {
        "calls": args.calls,
        "rounds": args.rounds,
        "load_before": load0,
        "load_after": load1,
        "median": summary,
        "min": best,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**doc, "runs": results}, f, indent=1)
    md = markdown(doc, list(trees), cases)
    if args.md:
        with open(args.md, "w") as f:
            f.write(md)
    print(md)
    return 0


def markdown(doc: dict[str, Any], labels: list[str], cases: list[tuple[str, int]]) -> str:
    med = doc["median"]
    lines = [
        f"{doc['calls']} calls per run, median (and min) of {doc['rounds']} interleaved runs; load average "
        f"{'/'.join(f'{x:.2f}' for x in doc['load_before'])} before, "
        f"{'/'.join(f'{x:.2f}' for x in doc['load_after'])} after (1/5/15 min).\n",
        "| store | budgets | tree | wall µs/call (min) | CPU µs/call, process (min) | CPU µs/call, caller thread "
        "| Redis round trips/call: caller (other threads) | CPU vs no budget |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for store, n in cases:
        for label in labels:
            m = med.get(f"{label}|{store}|{n}")
            if m is None:
                continue
            base = med.get(f"{label}|none|0")
            extra = f"+{m['cpu_us'] - base['cpu_us']:.0f} µs ({m['cpu_us'] / base['cpu_us']:.2f}x)" if base else "-"
            rtt = f"{m['caller_round_trips']:.2f} ({m['other_round_trips']:.2f})" if store == "redis" else "-"
            low = doc["min"][f"{label}|{store}|{n}"]
            lines.append(
                f"| {store} | {n or '-'} | {label} | {m['wall_us']:.0f} ({low['wall_us']:.0f}) | "
                f"{m['cpu_us']:.0f} ({low['cpu_us']:.0f}) | "
                f"{m['caller_cpu_us']:.0f} | {rtt} | {extra if store != 'none' else '-'} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
