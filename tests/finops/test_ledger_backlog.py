"""The ledger's memory is bounded however far its writer falls behind (issue 16, second pass).

The writer is starved for real, without replacing any of tokenmeter's code: either another connection holds
an exclusive lock on the ledger file (every write waits out the busy timeout and fails), or the test holds the
lock the writer needs to flush. Meanwhile thousands of workflows run; the backlog (queued events, runs kept one
by one, folded runs, cells) must stay under its documented bound. Released, the file's totals are exact: every
call, token, dollar and run is there once (runs beyond ``ledger_max_pending_runs`` as per-hour sums).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import tokenmeter
from tokenmeter.finops._sqlite import SQLiteReader

QUEUE = 300
MAX_RUNS = 150
N = 3000
USAGE = tokenmeter.Usage(input=1200, cache_read=300, output=150)


def _one(i: int) -> None:
    with tokenmeter.workflow("refund", team=f"team-{i % 3}"), tokenmeter.step("answer"):
        tokenmeter.record("openai", "gpt-4o-mini", USAGE)
        if i % 4 == 0:
            tokenmeter.outcome("resolved", success=i % 8 == 0)


def _file_totals(path: Path) -> dict[str, Any]:
    reader = SQLiteReader(str(path))
    now = datetime.now(UTC)
    a, b = now - timedelta(days=2), now + timedelta(days=2)
    usage = list(reader.usage(a, b, granularity="hour"))
    runs = list(reader.runs(a, b))
    folded = reader.folded_runs(a, b)
    return {
        "calls": sum(r.calls for r in usage),
        "tokens": sum(r.tokens for r in usage),
        "cost": sum((r.cost_usd or Decimal(0) for r in usage), Decimal(0)),
        "runs": len(runs) + sum(f["runs"] for f in folded),
        "runs_one_by_one": len(runs),
        "run_ids": len({r.run_id for r in runs}),
        "run_calls": sum(r.calls for r in runs) + sum(f["calls"] for f in folded),
        "run_tokens": sum(sum(r.tokens.values()) for r in runs) + sum(sum(f["tokens"].values()) for f in folded),
        "run_cost": sum((r.cost_usd or Decimal(0) for r in runs), Decimal(0))
        + sum((f["cost_usd"] or Decimal(0) for f in folded), Decimal(0)),
        "marked": sum(r.succeeded is not None for r in runs) + sum(f["succeeded"] + f["failed"] for f in folded),
        "succeeded": sum(bool(r.succeeded) for r in runs) + sum(f["succeeded"] for f in folded),
    }


@pytest.mark.parametrize("starve", ["file-lock", "writer-lock"])
def test_a_starved_writer_keeps_a_bounded_backlog_and_loses_nothing(
    starve: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokenmeter.finops import _sqlite

    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT_MS", 50)  # each blocked write gives up sooner (and retries)
    path = tmp_path / "ledger.db"
    meter = tokenmeter.configure(
        exporter="none",
        ledger=f"sqlite:///{path}",
        ledger_flush_interval=0.02,
        ledger_queue_size=QUEUE,
        ledger_max_pending_runs=MAX_RUNS,
    )
    sink = meter.ledger
    holder: sqlite3.Connection | None = None
    try:
        tokenmeter.record("openai", "gpt-4o-mini", USAGE)
        assert meter.force_flush()  # the file exists and is ours
        price = sink.memory.rollup("model")["gpt-4o-mini"].cost
        if starve == "file-lock":
            holder = sqlite3.connect(path, isolation_level=None, timeout=0)
            holder.execute("BEGIN EXCLUSIVE")
        else:
            assert sink._flush_lock.acquire(timeout=5)
        peak = {"events": 0, "runs": 0, "run_folds": 0, "cells": 0}
        for i in range(N):
            _one(i)
            if i % 25 == 0:
                for key, value in sink.backlog().items():
                    peak[key] = max(peak[key], value)
        assert sink.stats["runs_folded"] > 0 or starve == "writer-lock"
        if starve == "file-lock":
            assert sink.stats["write_errors"] >= 1
            holder.execute("ROLLBACK")  # type: ignore[union-attr]
            holder.close()
            holder = None
        else:
            backlog = sink.backlog()  # the writer never ran: everything the callers folded is still here
            assert backlog["runs"] == MAX_RUNS and backlog["run_folds"] >= 1
            sink._flush_lock.release()
        assert peak["events"] <= QUEUE
        assert peak["runs"] <= MAX_RUNS
        assert peak["run_folds"] <= 3 * 2 * 2  # teams x outcomes x (at most) two hours
        assert peak["cells"] <= 4 * 3 * 2 + 3  # classes x teams x hours (+ the first call's)
        assert meter.force_flush()
        folded = sink.stats["runs_folded"]
    finally:
        if holder is not None:
            holder.close()
        if starve == "writer-lock" and sink._flush_lock.locked():
            sink._flush_lock.release()
        tokenmeter.unconfigure()
    totals = _file_totals(path)
    assert totals["calls"] == N + 1
    assert totals["tokens"] == (N + 1) * 1650
    assert totals["cost"] == price * (N + 1)
    assert totals["runs"] == N  # each run once: one by one or folded, never both
    assert totals["run_ids"] == totals["runs_one_by_one"] == N - folded
    assert N - folded <= 2 * MAX_RUNS + QUEUE  # the rest folded: the writer was held the whole time
    assert totals["run_calls"] == N
    assert totals["run_tokens"] == N * 1650
    assert totals["run_cost"] == price * N
    assert totals["marked"] == N // 4 + (N % 4 > 0)
    assert totals["succeeded"] == N // 8 + (N % 8 > 0)


def test_the_bound_is_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENMETER_LEDGER_MAX_PENDING_RUNS", "42")
    meter = tokenmeter.configure(exporter="none", ledger=None)
    try:
        assert meter.ledger._agg.max_runs == 42
    finally:
        tokenmeter.unconfigure()
    with pytest.raises(tokenmeter.ConfigError, match="ledger_max_pending_runs"):
        tokenmeter.configure(exporter="none", ledger_max_pending_runs=-1)


def test_folded_runs_are_exact_sums(tmp_path: Path) -> None:
    """The folded table itself: upserts add (priced + unpriced cost stays the priced sum), never overwrite."""
    from tokenmeter.finops._agg import RunRecord
    from tokenmeter.finops._runfold import PendingRuns
    from tokenmeter.finops._sqlite import LedgerDB

    start = datetime(2026, 12, 3, 10, 30, tzinfo=UTC).timestamp()

    def run(i: int, cost: Decimal | None) -> RunRecord:
        return RunRecord(
            f"r{i}", start + i, "", "t", "w", "", 1.5, 2, 3, 1, [10, 0, 0, 5, 0], cost, "ok", None, i % 2 == 0
        )

    db = LedgerDB(str(tmp_path / "l.db"))
    for batch in range(2):
        pending = PendingRuns(1)
        for i in range(4):
            pending.add(run(batch * 4 + i, None if i == 3 else Decimal("0.000001")))
        db.write({}, pending.runs, pending.folded)
    db.close()
    (row,) = SQLiteReader(str(tmp_path / "l.db")).folded_runs(
        datetime(2026, 12, 3, tzinfo=UTC), datetime(2026, 12, 4, tzinfo=UTC)
    )
    assert row["runs"] == 6 and row["calls"] == 12 and row["steps"] == 18 and row["unpriced_runs"] == 2
    assert row["tokens"]["input"] == 60 and row["tokens"]["output"] == 30
    assert row["cost_usd"] == Decimal("0.000004") and row["duration_s"] == 9.0
    assert row["succeeded"] == 2 and row["failed"] == 4  # r2, r6 / r1, r3, r5, r7


def test_a_writer_that_keeps_up_keeps_every_run_whole(tmp_path: Path) -> None:
    """More runs than the bound in one flush interval is not falling behind: the writer writes in rounds."""
    path = tmp_path / "ledger.db"
    meter = tokenmeter.configure(
        exporter="none", ledger=f"sqlite:///{path}", ledger_flush_interval=30, ledger_max_pending_runs=40
    )
    try:
        for i in range(500):
            _one(i)
        assert meter.force_flush()
        assert meter.ledger.stats["runs_folded"] == 0
    finally:
        tokenmeter.unconfigure()
    totals = _file_totals(path)
    assert totals["runs"] == totals["runs_one_by_one"] == totals["run_ids"] == 500
    assert totals["calls"] == 500
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'runs_folded'").fetchone() == (0,)
    conn.close()
