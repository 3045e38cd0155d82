"""Benchmarks of the durable FinOps ledger (issue 11); results go to benchmarks/RESULTS.md.

    python benchmarks/ledger.py cpu        # caller-thread CPU per call, ledger on vs off (A/B, own processes)
    python benchmarks/ledger.py million    # 1,000,000 calls: writer keeps up, RSS, file size
    python benchmarks/ledger.py report     # `tokenmeter report` over a year: 50 teams x 40 workflows x 6 models
    python benchmarks/ledger.py chargeback # the same year with 500 customers: report, chargeback off vs on

Calls are metered with ``tokenmeter.record()`` (the path every integration ends in) under the OTel API's no-op
tracer and meter providers, so the figures are the ledger's own and not the SDK's span/metric export.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ["gpt-4o-mini", "gpt-4o", "o1", "claude-3-5-haiku-latest", "claude-3-5-sonnet-latest", "llama-3.1-8b"]


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _configure(ledger: str | None) -> object:
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    import tokenmeter

    return tokenmeter.configure(ledger=ledger, tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())


# -- cpu ---------------------------------------------------------------------------------------------
def cpu_child(mode: str, n: int) -> None:
    """One process: caller-thread CPU per record() with the ledger on (a file) or off (memory only)."""
    import tokenmeter

    tmp = tempfile.mkdtemp()
    meter = _configure(f"sqlite:///{tmp}/l.db" if mode == "on" else None)
    usage = tokenmeter.Usage(input=1200, cache_read=300, output=150)
    with tokenmeter.attributes(team="t", workflow="w"):
        for _ in range(2000):
            tokenmeter.record("openai", "gpt-4o-mini", usage)
        t0, p0 = time.thread_time_ns(), time.process_time_ns()
        for _ in range(n):
            tokenmeter.record("openai", "gpt-4o-mini", usage)
        t1 = time.thread_time_ns()
    meter.ledger.flush()  # type: ignore[attr-defined]
    p2 = time.process_time_ns()
    sink = meter.ledger  # type: ignore[attr-defined]
    scope = tokenmeter.current_scope()
    from tokenmeter._prices import UNPRICED

    s0 = time.thread_time_ns()
    for _ in range(n):
        sink.call(scope, "small", "openai", "gpt-4o-mini", "chat", usage, UNPRICED, "ok")
    s1 = time.thread_time_ns()
    tokenmeter.unconfigure()
    print(
        json.dumps(
            {
                "mode": mode,
                "caller_us": (t1 - t0) / n / 1000,
                "process_us": (p2 - p0) / n / 1000,
                "enqueue_us": (s1 - s0) / n / 1000,
                "folded": sink.stats["folded"],
            }
        )
    )


def cpu(reps: int = 5, n: int = 50_000) -> None:
    results: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    for _ in range(reps):
        for mode in ("off", "on"):
            out = subprocess.run(
                [sys.executable, __file__, "cpu-child", mode, str(n)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout
            results[mode].append(json.loads(out))
    for mode, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("caller_us", "process_us", "enqueue_us")}
        print(
            f"ledger {mode:>3}: caller thread {med['caller_us']:.2f} µs/call, whole process incl. writer "
            f"{med['process_us']:.2f} µs/call, sink.call() alone {med['enqueue_us']:.3f} µs; "
            f"per rep caller: {[round(r['caller_us'], 2) for r in rows]}"
        )
    diff = [a["caller_us"] - b["caller_us"] for a, b in zip(results["on"], results["off"], strict=True)]
    print(f"added caller-thread CPU (on - off, paired by repetition): median {statistics.median(diff):+.2f} µs")


# -- million -----------------------------------------------------------------------------------------
def million(n: int = 1_000_000) -> None:
    import tokenmeter

    tmp = tempfile.mkdtemp()
    path = f"{tmp}/ledger.db"
    meter = _configure(f"sqlite:///{path}")
    sink = meter.ledger  # type: ignore[attr-defined]
    usage = tokenmeter.Usage(input=1200, cache_read=300, output=150)
    scopes = [tokenmeter.attributes(team=f"team-{i % 10}", workflow=f"wf-{i % 25}") for i in range(50)]
    t0 = time.perf_counter()
    marks = []
    max_queue = 0
    step = n // 10
    for block in range(10):
        with scopes[block % len(scopes)]:
            for i in range(step):
                tokenmeter.record("openai", MODELS[i % 6], usage)
                if not i % 1000:
                    max_queue = max(max_queue, len(sink._q))
        marks.append((block + 1) * step)
        print(
            f"{(block + 1) * step:>9,} calls  {time.perf_counter() - t0:6.1f} s  RSS {_rss_mib():7.1f} MiB  "
            f"queue {len(sink._q):>6,}  folded {sink.stats['folded']:,}  rows written {sink.stats['written_rows']:,}",
            flush=True,
        )
    tf = time.perf_counter()
    meter.force_flush()  # type: ignore[attr-defined]
    flush_s = time.perf_counter() - tf
    tokenmeter.unconfigure()
    conn = sqlite3.connect(path)
    calls = conn.execute("SELECT sum(calls) FROM usage_hour").fetchone()[0]
    size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    print(
        f"done: {n:,} calls in {tf - t0:.1f} s; final flush {flush_s * 1000:.0f} ms; max queue seen {max_queue:,} "
        f"(capacity 65,536); folded {sink.stats['folded']:,}; calls in the file {calls:,}; file "
        f"{size / 2**20:.2f} MiB; flushes {sink.stats['flushes']:,}"
    )


# -- report ------------------------------------------------------------------------------------------
def build_year(
    path: str, teams: int = 50, workflows: int = 40, models: int = 6, runs: int = 100_000, customers: int = 0
) -> None:
    """A ledger as a year of metering leaves it: monthly rows for every series, daily and hourly rows for
    the days each series was active (one in seven on average), ``runs`` runs in the last 90 days.
    ``customers``: each team x workflow series belongs to one of that many customers (0: no customer)."""
    from tokenmeter.finops._sqlite import _RUN_COLUMNS, LedgerDB, month_start

    db = LedgerDB(path)
    conn = db.conn
    rng = random.Random(1)
    end = datetime(2026, 12, 1, tzinfo=UTC)
    start = datetime(2025, 12, 1, tzinfo=UTC)
    days = (end - start).days
    dims = "env, team, workflow, agent, tier, provider, model, operation, token_class, outcome, customer, cost_source"
    cols = (
        f"period, {dims}, tokens, cost_nano, list_cost_nano, unpriced_tokens, estimated_tokens, wasted_tokens, "
        "wasted_cost_nano, calls"
    )
    sql = {
        t: f"INSERT OR REPLACE INTO {t} ({cols}) VALUES ({','.join('?' * 21)})"
        for t in ("usage_hour", "usage_day", "usage_month")
    }
    conn.execute("BEGIN")
    counts = {"usage_hour": 0, "usage_day": 0, "usage_month": 0}
    for t in range(teams):
        for w in range(workflows):
            customer = f"cust-{(t * workflows + w) % customers:04d}" if customers else ""
            rows: dict[str, list[tuple[object, ...]]] = {k: [] for k in counts}
            for m in range(models):
                model = MODELS[m]
                monthly: dict[tuple[int, str], list[int]] = {}
                for d in range(days):
                    if rng.random() > 1 / 7:
                        continue
                    day = int((start + timedelta(days=d)).timestamp())
                    hour = day + 3600 * rng.randrange(24)
                    for cls, tokens in (("input", rng.randrange(1000, 100_000)), ("output", rng.randrange(100, 9000))):
                        cost = tokens * (1000 if cls == "input" else 4000)
                        key = (
                            f"team-{t}",
                            f"wf-{w}",
                            "",
                            "standard",
                            "openai",
                            model,
                            "chat",
                            cls,
                            "ok",
                            customer,
                            "table:genai-prices",
                        )
                        calls = tokens // 1000 if cls == "input" else 0
                        values = (tokens, cost, cost, 0, 0, 0, 0, calls)
                        rows["usage_hour"].append((hour, "prod", *key, *values))
                        rows["usage_day"].append((day, "prod", *key, *values))
                        acc = monthly.setdefault((month_start(day), cls), [0, 0, 0])
                        acc[0] += tokens
                        acc[1] += cost
                        acc[2] += calls
                for (mstart, cls), (tokens, cost, calls) in monthly.items():
                    key = (
                        f"team-{t}",
                        f"wf-{w}",
                        "",
                        "standard",
                        "openai",
                        model,
                        "chat",
                        cls,
                        "ok",
                        customer,
                        "table:genai-prices",
                    )
                    rows["usage_month"].append((mstart, "prod", *key, tokens, cost, cost, 0, 0, 0, 0, calls))
            for table, batch in rows.items():
                conn.executemany(sql[table], batch)
                counts[table] += len(batch)
    recent = int((end - timedelta(days=90)).timestamp())
    conn.executemany(
        f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({','.join('?' * 20)})",
        (
            (
                f"run-{i:08d}",
                recent + rng.randrange(90 * 86400),
                "prod",
                f"team-{i % teams}",
                f"wf-{i % workflows}",
                "",
                1.5,
                6,
                8,
                2,
                rng.randrange(1000, 90_000),
                0,
                0,
                rng.randrange(100, 4000),
                0,
                rng.randrange(10**6, 10**8),
                "ok" if rng.random() < 0.95 else "error",
                None,
                None,
                f"1:{rng.randrange(3, 9)}:{rng.randrange(2)}",
            )
            for i in range(runs)
        ),
    )
    conn.execute("COMMIT")
    db.close()
    print(f"built {path}: {counts} usage rows, {runs:,} runs, {os.path.getsize(path) / 2**20:.0f} MiB")


def report(path: str | None = None) -> None:
    path = path or str(ROOT / ".cache" / "bench-ledger-year.db")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        t0 = time.perf_counter()
        build_year(path)
        print(f"(built in {time.perf_counter() - t0:.0f} s)")
    for argv in (["--period", "2026"], ["--period", "2026-11"], ["--since", "7d"], ["--period", "2026", "--json"]):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "tokenmeter.cli", "report", "--source", f"sqlite:///{path}", "--plain", *argv],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=False,
            )
            times.append(time.perf_counter() - t0)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()}"
        print(
            f"tokenmeter report {' '.join(argv):<22} {statistics.median(times):.2f} s (median of 3, whole "
            f"command incl. interpreter start) {status}; {len(proc.stdout.splitlines())} lines"
        )


def chargeback(path: str | None = None) -> None:
    """`tokenmeter report` over the year with 500 customers, without and with a chargeback definition."""
    path = path or str(ROOT / ".cache" / "bench-ledger-year-customers.db")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        t0 = time.perf_counter()
        build_year(path, customers=500)
        print(f"(built in {time.perf_counter() - t0:.0f} s)")
    definition = os.path.join(tempfile.mkdtemp(), "chargeback.toml")
    with open(definition, "w") as f:  # 100 customers with a rate of their own, a prefix rule, a default
        f.write('cost_center = "customer"\ndefault = "+15%"\n[rates]\n"cust-04*" = "-10%"\n')
        f.writelines(f'"cust-{i:04d}" = "+{i % 30}%"\n' for i in range(100))
    for argv in (
        ["--period", "2026", "--by", "customer"],
        ["--period", "2026"],
        ["--period", "2026-11", "--by", "customer"],
    ):
        for extra in ([], ["--chargeback", definition]):
            times, cpu = [], []
            for _ in range(3):
                t0 = time.perf_counter()
                r0 = os.times()
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "tokenmeter.cli",
                        "report",
                        "--source",
                        f"sqlite:///{path}",
                        "--plain",
                        *argv,
                        *extra,
                    ],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    check=False,
                )
                r1 = os.times()
                times.append(time.perf_counter() - t0)
                cpu.append(r1.children_user + r1.children_system - r0.children_user - r0.children_system)
            status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()}"
            print(
                f"tokenmeter report {' '.join(argv):<32} chargeback {'on ' if extra else 'off'} "
                f"wall {statistics.median(times):.2f} s, CPU {statistics.median(cpu):.2f} s (median of 3) {status}"
            )


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    if what == "cpu-child":
        cpu_child(sys.argv[2], int(sys.argv[3]))
    elif what == "cpu":
        cpu()
    elif what == "million":
        million()
    elif what == "report":
        report(sys.argv[2] if len(sys.argv) > 2 else None)
    elif what == "chargeback":
        chargeback(sys.argv[2] if len(sys.argv) > 2 else None)
    else:
        sys.exit(f"unknown benchmark {what!r}: cpu, million, report or chargeback")
