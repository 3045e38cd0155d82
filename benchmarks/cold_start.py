"""The first call: a fresh process per measurement, the bare openai client's first call against the metered one.

    python benchmarks/cold_start.py [--reps 9] [--json results/cold_start.json]

Each measurement is its own interpreter (bytecode cached, like an installed service): it imports openai and
the OpenTelemetry SDK, then -- unless it is the ``bare`` scenario -- imports tokenmeter, ``configure()`` and
``instrument()`` ("set-up"), builds an ``openai.OpenAI`` client for a loopback FakeProvider (its own process,
so it does not share the GIL) and times its first ``chat.completions.create`` and a second one. Every
phase is timed in wall time and in CPU time of the calling thread (``time.thread_time``: what the caller
itself executes, robust to a loaded machine; wall time also holds waiting for another thread).

Scenarios (interleaved, in a fresh random order each repetition):

* ``bare`` -- openai alone.
* ``tokenmeter`` -- ``configure()`` defaults: the FinOps ledger on (in a temporary ``XDG_DATA_HOME``).
* ``tokenmeter-noledger`` -- ``configure(ledger=None)``.
* ``budget-sqlite`` / ``budget-redis`` -- plus a daily dollar budget on every model (so the first call
  estimates its input with the tokenizer and reserves in the store); Redis on a private ``redis-server``.
* ``...+warm`` -- the same, with the first call made once ``meter.warm_up()`` returned: a service whose
  first request arrives after the warm-up thread (started by ``configure()``) finished, i.e. after
  about a second of start-up (the set-up figures are the same as without ``+warm``).
* ``...+stall`` -- the same as without it, plus a host thread started before ``configure()`` that sleeps
  1 ms in a loop until the warm-up is done (``meter.warm_up()`` after the two calls): the longest gap it
  sees is how long tokenmeter's threads kept it from running (the GIL). Its rows measure that only (the
  ticker shares the GIL with the calls). Not in the default set: ``--scenarios tokenmeter+stall,budget-sqlite+stall``.

The first-call overhead of a scenario = median(its first call) - median(bare's first call).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics as st
import subprocess
import sys
import tempfile
from typing import Any

from _redis import start_redis

CHILD = r"""
import json, os, sys, time
def clocks():
    return time.perf_counter(), time.thread_time()
out = {}
w, c = clocks()
import openai, opentelemetry.sdk.trace, opentelemetry.sdk.metrics
w2, c2 = clocks(); out["import_openai"] = (w2 - w, c2 - c)
scenario = sys.argv[1]; base = scenario.split("+")[0]
meter = None
ticker = None
if scenario.endswith("+stall"):
    import threading
    gaps = []
    stop = threading.Event()
    def tick():
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
if base != "bare":
    w, c = clocks()
    import tokenmeter
    kw = {}
    if base == "tokenmeter-noledger":
        kw["ledger"] = None
    if base.startswith("budget-"):
        store = os.environ["BENCH_SQLITE_URL"] if base == "budget-sqlite" else os.environ["BENCH_REDIS_URL"]
        kw.update(budgets=[tokenmeter.Budget("bench", scope={"model": "*"}, limit_usd=1000, window="1d")], store=store)
    meter = tokenmeter.configure(**kw)
    tokenmeter.instrument()
    w2, c2 = clocks(); out["setup"] = (w2 - w, c2 - c)
    if scenario.endswith("+warm"):
        w, c = clocks(); meter.warm_up(30); w2, c2 = clocks(); out["warm_wait"] = (w2 - w, c2 - c)
w, c = clocks()
client = openai.OpenAI(base_url=os.environ["BENCH_URL"], api_key="x", max_retries=0)
w2, c2 = clocks(); out["client"] = (w2 - w, c2 - c)
msgs = [{"role": "user", "content": "Summarise the refund policy for order 1234 in two sentences."}]
if meter is not None:  # whether the first call finds the tokenizer loaded (else it reserves an upper bound)
    ready = getattr(meter.tokenizer, "ready", None)  # (older trees: no such method)
    if ready is not None:
        out["tokenizer_ready_at_first_call"] = ready("gpt-4o-mini")
for label in ("first", "second"):
    w, c = clocks()
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    w2, c2 = clocks(); out[label] = (w2 - w, c2 - c)
    assert reply.usage is not None and reply.usage.total_tokens > 0
if meter is not None:
    assert meter.force_flush(10_000)
    from datetime import datetime, timedelta, timezone
    now = datetime.now(timezone.utc)
    rows = meter.reader().usage(now - timedelta(days=1), now + timedelta(days=1))
    calls = [r for r in rows if r.model == "gpt-4o-mini"]
    out["metered_calls"] = sum(r.calls for r in calls)
    if ticker is not None:
        assert meter.warm_up(30)
        gate = getattr(meter, "gate", None)
        while gate is not None and getattr(gate, "_trimming", False):
            time.sleep(0.001)
        stop.set(); ticker.join()
        gaps.sort()
        out["stall_ms"] = [gaps[-1] * 1e3, gaps[len(gaps) // 2] * 1e3, sum(g > 0.010 for g in gaps)]
    warm = getattr(meter, "_warmup", None)
    out["warmup_timings"] = dict(warm.timings) if warm is not None else {}
print("RESULT " + json.dumps(out))
"""

BASES = ["bare", "tokenmeter", "tokenmeter-noledger", "budget-sqlite", "budget-redis"]
PHASES = ["import_openai", "setup", "warm_wait", "client", "first", "second"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    code = (
        "import time\nfrom tokenmeter.testing.fakes import FakeProvider\n"
        "fp = FakeProvider().start()\nprint(fp.port, flush=True)\nwhile True: time.sleep(3600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


def _loadavg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def run_one(scenario: str, env: dict[str, str], tmp: str) -> dict[str, Any]:
    for name in os.listdir(tmp):  # a fresh budget store and ledger each time (a new service's first call)
        if name.startswith(("budget.db", "xdg")):
            path = os.path.join(tmp, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    if scenario.startswith("budget-redis") and env.get("BENCH_REDIS_URL"):
        import redis

        redis.Redis.from_url(env["BENCH_REDIS_URL"]).flushall()
    p = subprocess.run(
        [sys.executable, "-c", CHILD, scenario], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
    if p.returncode != 0 or line is None:
        raise RuntimeError(f"{scenario} failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--json", default=None)
    ap.add_argument("--scenarios", default=None, help="comma-separated subset")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tokenmeter-cold-")
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed service runs from cached bytecode
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")  # ... kept out of the source tree
    env["XDG_DATA_HOME"] = os.path.join(tmp, "xdg")  # the default ledger's place
    env["BENCH_SQLITE_URL"] = f"sqlite:///{tmp}/budget.db"
    for var in [k for k in env if k.startswith(("OTEL_", "TOKENMETER_"))]:
        env.pop(var)
    server, url = _start_server(env)
    redis_proc, redis_url = start_redis(required=False)
    env["BENCH_URL"] = url
    scenarios = [s for b in BASES for s in ((b,) if b == "bare" else (b, b + "+warm"))]
    if redis_url is None:
        print("redis-server not found: the Redis scenarios are skipped")
        scenarios = [s for s in scenarios if not s.startswith("budget-redis")]
    else:
        env["BENCH_REDIS_URL"] = redis_url
    if args.scenarios:  # any base with +warm / +stall
        scenarios = [s for s in args.scenarios.split(",") if s.split("+")[0] in BASES]
        if redis_url is None:
            scenarios = [s for s in scenarios if not s.startswith("budget-redis")]
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in scenarios}
    load_before = _loadavg()
    try:
        for s in scenarios:  # once each, untimed: writes the bytecode cache
            run_one(s, env, tmp)
        rng = random.Random(16)
        for rep in range(args.reps):
            order = list(scenarios)
            rng.shuffle(order)
            for s in order:
                results[s].append(run_one(s, env, tmp))
            print(f"rep {rep + 1}/{args.reps} done (load {_loadavg()})", flush=True)
    finally:
        server.kill()
        if redis_proc is not None:
            redis_proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = _loadavg()
    summary = summarise(results)
    print(render(summary, args.reps, load_before, load_after))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"reps": args.reps, "load": [load_before, load_after], "raw": results, "summary": summary}, f)


def summarise(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s, runs in results.items():
        row: dict[str, Any] = {}
        for phase in PHASES:
            vals = [r[phase] for r in runs if phase in r]
            if vals:
                row[phase] = {
                    "wall_ms": st.median(v[0] for v in vals) * 1e3,
                    "cpu_ms": st.median(v[1] for v in vals) * 1e3,
                    "wall_min_ms": min(v[0] for v in vals) * 1e3,
                }
        row["metered_calls"] = [r.get("metered_calls") for r in runs]
        stalls = [r["stall_ms"] for r in runs if "stall_ms" in r]
        if stalls:
            row["stall_ms"] = (
                st.median(x[0] for x in stalls),
                max(x[0] for x in stalls),
                st.median(x[1] for x in stalls),
            )
        flags = [r["tokenizer_ready_at_first_call"] for r in runs if "tokenizer_ready_at_first_call" in r]
        if flags and s.startswith("budget"):
            row["ready"] = f"{sum(flags)}/{len(flags)}"
        out[s] = row
    return out


def render(summary: dict[str, dict[str, Any]], reps: int, load_before: str, load_after: str) -> str:
    bare = summary["bare"]["first"]
    lines = [
        f"median of {reps} fresh processes per scenario; load average before {load_before}, after {load_after}",
        "",
        "| scenario | set-up (import tokenmeter + configure + instrument) ms wall / caller CPU | first call ms "
        "wall / caller CPU | first call beyond bare's, ms wall / caller CPU | second call ms wall |",
        "|---|---|---|---|---|",
    ]
    for s, row in summary.items():
        setup = row.get("setup")
        first, second = row["first"], row["second"]
        setup_txt = "-" if setup is None else f"{setup['wall_ms']:.1f} / {setup['cpu_ms']:.1f}"
        extra = (
            "-"
            if s == "bare"
            else f"{first['wall_ms'] - bare['wall_ms']:+.1f} / {first['cpu_ms'] - bare['cpu_ms']:+.1f}"
        )
        lines.append(
            f"| {s} | {setup_txt} | "
            f"{first['wall_ms']:.1f} / {first['cpu_ms']:.1f} | {extra} | {second['wall_ms']:.1f} |"
        )
    stalls = {s: row["stall_ms"] for s, row in summary.items() if row.get("stall_ms")}
    if stalls:
        lines += [
            "",
            "| scenario | host thread's longest gap (1 ms sleeps) ms: median / max of runs | its median gap ms |",
        ]
        lines += ["|---|---|---|"]
        for s, (med_max, worst, med) in stalls.items():
            lines.append(f"| {s} | {med_max:.1f} / {worst:.1f} | {med:.2f} |")
    ready = {s: row["ready"] for s, row in summary.items() if row.get("ready")}
    if ready:
        lines += [
            "",
            "tokenizer loaded when the first call came (runs): " + "; ".join(f"{s} {v}" for s, v in ready.items()),
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
