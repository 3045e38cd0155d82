"""The ledger's backlog under a blocked writer, and the writer's cost per row (issue 16, second pass).

    python benchmarks/ledger_backlog.py backlog [--n 300000] [--tree PATH]   # RSS while the file is locked
    python benchmarks/ledger_backlog.py writer [--n 100000] [--reps 5] [--tree PATH]  # writer CPU per event/row

``backlog``: one process meters ``n`` calls, each in a new ``workflow`` + ``step`` (a run per call: the case
whose backlog used to grow without a bound), while another process holds an exclusive lock on the ledger file,
so every write of the writer thread waits out the busy timeout and fails. RSS is sampled every ``n/20`` calls;
then the lock is released, ``force_flush()`` timed, and the file's totals checked (calls, and runs one by one
plus folded). ``writer``: the writer's own cost, process CPU of ``sink.flush()`` (drain + fold + one SQLite
transaction) over ``n`` queued calls, plain and scoped, per queued event and per row written.

Calls are metered with ``tokenmeter.record()`` under no-op OTel providers (the ledger's own figures).
``--tree`` selects the tokenmeter source tree (e.g. a ``git worktree`` of main) for a before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

CHILD_BACKLOG = r"""
import gc, json, os, sqlite3, sys, time
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import NoOpTracerProvider
import tokenmeter
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
path, n = sys.argv[1], int(sys.argv[2])
meter = tokenmeter.configure(ledger=f"sqlite:///{path}", tracer_provider=NoOpTracerProvider(),
                             meter_provider=NoOpMeterProvider())
usage = tokenmeter.Usage(input=1200, cache_read=300, output=150)
wf, st = tokenmeter.workflow("refund", team="payments"), tokenmeter.step("answer")
def one():
    with wf, st:
        tokenmeter.record("openai", "gpt-4o-mini", usage)
for _ in range(20_000):  # warm past the in-process report's 10,000 kept runs per workflow
    one()
meter.force_flush(); gc.collect()
print("ready", flush=True)
sys.stdin.readline()  # the parent now holds the lock
r0, t0 = rss(), time.perf_counter()
samples = []
for i in range(1, n + 1):
    one()
    if i % (n // 20) == 0:
        samples.append(round(rss() - r0, 1))
loop_s = time.perf_counter() - t0
sink = meter.ledger
stats = dict(sink.stats)
backlog = sink.backlog() if hasattr(sink, "backlog") else None
print("release", flush=True)
sys.stdin.readline()  # the parent released the lock
t1 = time.perf_counter()
ok = meter.force_flush(timeout_millis=600_000)
flush_s = time.perf_counter() - t1
after = round(rss() - r0, 1)
tokenmeter.unconfigure()
print(json.dumps({"samples_mib": samples, "peak_mib": max(samples), "after_flush_mib": after, "loop_s": loop_s,
                  "flush_s": flush_s, "flush_ok": ok, "stats": stats, "backlog": backlog}), flush=True)
"""

CHILD_WRITER = r"""
import json, sys, tempfile, time
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import NoOpTracerProvider
import tokenmeter
n, kind = int(sys.argv[1]), sys.argv[2]
tmp = tempfile.mkdtemp()
meter = tokenmeter.configure(ledger=f"sqlite:///{tmp}/l.db", tracer_provider=NoOpTracerProvider(),
                             meter_provider=NoOpMeterProvider(), ledger_flush_interval=60,
                             ledger_queue_size=10 * n + 100)
sink = meter.ledger
usage = tokenmeter.Usage(input=1200, cache_read=300, output=150)
wf, st = tokenmeter.workflow("refund", team="payments"), tokenmeter.step("answer")
teams = [tokenmeter.attributes(team=f"team-{i}") for i in range(20)]
def one(i):
    if kind == "scoped":
        with wf, st:
            tokenmeter.record("openai", "gpt-4o-mini", usage)
    else:
        with teams[i % 20]:
            tokenmeter.record("openai", "gpt-4o-mini", usage)
for i in range(2000):
    one(i)
sink.flush()
for i in range(n):
    one(i)
events, rows0 = len(sink._q), sink.stats["written_rows"]
c0 = time.process_time()
sink.flush()
cpu = time.process_time() - c0
rows = sink.stats["written_rows"] - rows0
tokenmeter.unconfigure()
print(json.dumps({"events": events, "rows": rows, "us_per_event": cpu / events * 1e6, "us_per_row": cpu / rows * 1e6,
                  "us_per_call": cpu / n * 1e6, "folded": sink.stats.get("runs_folded", 0)}))
"""


def _env(tree: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = tree
    return env


def _load() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def backlog(n: int, tree: str | None) -> dict[str, object]:
    tmp = tempfile.mkdtemp()
    path = f"{tmp}/ledger.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_BACKLOG, path, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(tree),
        cwd=tmp,
    )
    assert child.stdin is not None and child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    holder = sqlite3.connect(path, isolation_level=None, timeout=30)
    holder.execute("BEGIN EXCLUSIVE")  # every write of the writer now waits out its busy timeout and fails
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "release"
    holder.execute("ROLLBACK")
    holder.close()
    child.stdin.write("go\n")
    child.stdin.flush()
    out = json.loads(child.stdout.readline())
    child.wait(timeout=600)
    conn = sqlite3.connect(path)
    calls = conn.execute("SELECT sum(calls) FROM usage_hour").fetchone()[0]
    runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    folded = 0
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs_folded'").fetchone():
        folded = conn.execute("SELECT sum(runs) FROM runs_folded").fetchone()[0]
    conn.close()
    out.update(n=n, calls_in_file=calls, runs_in_file=runs, runs_folded_in_file=folded, load=_load())
    out["exact"] = calls == n + 20_000 and runs + folded == n + 20_000
    return out


def writer(n: int, reps: int, tree: str | None) -> dict[str, object]:
    res: dict[str, list[dict[str, float]]] = {"plain": [], "scoped": []}
    for _ in range(reps):
        for kind in res:
            out = subprocess.run(
                [sys.executable, "-c", CHILD_WRITER, str(n), kind],
                capture_output=True,
                text=True,
                check=True,
                env=_env(tree),
                cwd=tempfile.gettempdir(),
            ).stdout
            res[kind].append(json.loads(out.strip().splitlines()[-1]))
    summary: dict[str, object] = {"load": _load(), "n": n, "reps": reps}
    for kind, rows in res.items():
        summary[kind] = {
            k: round(statistics.median(float(r[k]) for r in rows), 3)
            for k in ("events", "rows", "us_per_event", "us_per_row", "us_per_call")
        }
    return summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["backlog", "writer"])
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tree", default=None, help="tokenmeter source tree to import (default: this one)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.what == "backlog":
        out = backlog(args.n or 300_000, args.tree)
    else:
        out = writer(args.n or 100_000, args.reps, args.tree)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
