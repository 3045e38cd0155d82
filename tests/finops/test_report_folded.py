"""The report reads folded runs: run counts, success and per-run sums include the runs the ledger folded into
per-hour sums when its writer fell behind; percentiles stay over the runs kept one by one and say so.

The writer is starved for real (another connection holds ``BEGIN EXCLUSIVE`` on the ledger file, as in
test_ledger_backlog.py); the expected figures are hand sums over what the test ran, not what a reader returns.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import tokenmeter
from tokenmeter.finops import html
from tokenmeter.finops._render import render_text, tables, to_json
from tokenmeter.finops._runfigs import run_figures
from tokenmeter.finops._sqlite import SQLiteReader
from tokenmeter.finops.report import Report, build_report

QUEUE = 200
MAX_RUNS = 100
N = 1500
USAGE = tokenmeter.Usage(input=1200, cache_read=300, output=150)
PER_CALL = 1650


class Boom(Exception):
    pass


def _workflow(i: int) -> str:
    return "refund" if i % 2 == 0 else "triage"


def _calls(i: int) -> int:
    return 2 if i % 5 == 0 else 1


def _priced(i: int) -> bool:
    return i % 10 != 7


def _success(i: int) -> bool:
    errored = i % 9 == 4
    marked_failed = i % 4 == 0 and i % 8 != 0
    return not errored and not marked_failed


def _one(i: int) -> None:
    model = "gpt-4o-mini" if _priced(i) else "tm-test-unknown-model"
    try:
        with tokenmeter.workflow(_workflow(i), team=f"team-{i % 3}"), tokenmeter.step("answer"):
            for _ in range(_calls(i)):
                tokenmeter.record("openai", model, USAGE)
            if i % 4 == 0:
                tokenmeter.outcome("resolved", success=i % 8 == 0)
            if i % 9 == 4:
                raise Boom
    except Boom:
        pass


def _expected(price: Decimal, n: int) -> dict[str, dict[str, Any]]:
    """Hand sums per workflow of the runs 0..n-1 that ``_one`` ran."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(n):
        e = out.setdefault(
            _workflow(i), {"runs": 0, "succeeded": 0, "calls": 0, "cost": Decimal(0), "priced": 0, "unpriced": 0}
        )
        e["runs"] += 1
        e["succeeded"] += _success(i)
        e["calls"] += _calls(i)
        if _priced(i):
            e["priced"] += 1
            e["cost"] += price * _calls(i)
        else:
            e["unpriced"] += 1
    return out


def _window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(days=2), now + timedelta(days=2)


def _check(report: Report, price: Decimal, n: int) -> None:
    """Every sum-able run figure of ``report`` equals the hand sums."""
    expected = _expected(price, n)
    rel = report.reliability
    assert rel.runs == n
    assert rel.succeeded == sum(e["succeeded"] for e in expected.values())
    assert rel.observed == rel.succeeded / n
    total_cost = sum((e["cost"] for e in expected.values()), Decimal(0))
    assert report.runs_total_cost == total_cost
    assert report.cost_per_success == total_cost / rel.succeeded
    assert [w.workflow for w in report.workflows] == sorted(expected)
    for w in report.workflows:
        e = expected[w.workflow]
        assert w.runs == e["runs"]
        assert w.succeeded == e["succeeded"]
        assert w.total_cost == e["cost"]
        assert w.cost_per_success == e["cost"] / e["succeeded"]
        assert w.cost_per_run == e["cost"] / e["priced"]
        assert w.unpriced_runs == e["unpriced"]
        assert w.calls_per_run == e["calls"] / e["runs"]
        assert w.steps_per_run == (e["runs"] + e["calls"]) / e["runs"]  # the "answer" scope + each LLM call
        assert w.tokens_per_task == e["calls"] * PER_CALL / e["runs"]
        assert sum(w.outcomes.values()) == e["runs"]


def test_the_report_counts_the_runs_a_starved_writer_folded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenmeter.finops import _sqlite

    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "ledger.db"
    meter = tokenmeter.configure(
        exporter="none",
        ledger=f"sqlite:///{path}",
        ledger_flush_interval=0.02,
        ledger_queue_size=QUEUE,
        ledger_max_pending_runs=MAX_RUNS,
    )
    holder: sqlite3.Connection | None = None
    try:
        tokenmeter.record("openai", "gpt-4o-mini", USAGE)  # outside any run: the file exists and is ours
        assert meter.force_flush()
        price = meter.ledger.memory.rollup("model")["gpt-4o-mini"].cost
        holder = sqlite3.connect(path, isolation_level=None, timeout=0)
        holder.execute("BEGIN EXCLUSIVE")
        for i in range(N):
            _one(i)
        assert meter.ledger.stats["write_errors"] >= 1
        holder.execute("ROLLBACK")
        holder.close()
        holder = None
        assert meter.force_flush()
        folded = meter.ledger.stats["runs_folded"]
        assert folded > N // 2  # the writer was held the whole time: most runs are only in sums
        a, b = _window()
        memory = build_report(meter.reader(), a, b)
    finally:
        if holder is not None:
            holder.close()
        tokenmeter.unconfigure()
    reader = SQLiteReader(str(path))
    report = build_report(reader, a, b)
    assert report.reliability.folded == folded  # every run once: one by one or in a sum
    _check(report, price, N)
    kept = {w.workflow: w.kept for w in report.workflows}
    assert sum(kept.values()) == N - folded
    for w in report.workflows:  # the spreads are over the runs kept one by one
        kept_tokens = sorted(r.total_tokens for r in reader.runs(a, b) if r.workflow == w.workflow)
        assert w.folded > 0 and w.kept == len(kept_tokens)
        assert (w.tokens.p50, w.tokens.max) == (kept_tokens[round(0.5 * (len(kept_tokens) - 1))], kept_tokens[-1])

    note = report.runs_note
    assert note is not None
    assert f"{folded:,} runs folded" in note and f"over the {N - folded:,} runs kept one by one" in note
    text = render_text(build_report(reader, a, b))
    assert f"Note: {folded:,} runs folded" in text
    assert f"percentiles over the runs kept one by one, {folded:,} folded" in text
    data = json.loads(json.dumps(to_json(build_report(reader, a, b))))
    assert data["runs_note"] == build_report(reader, a, b).runs_note
    assert data["reliability"]["runs"] == N and data["reliability"]["folded"] == folded
    assert {w["workflow"]: w["folded"] for w in data["workflows"]}["refund"] > 0
    page = html.write(tmp_path / "r.html", reader, a, b).read_text(encoding="utf-8")
    assert f"{folded:,} runs folded" in page
    ok_runs = sum(i % 9 != 4 for i in range(N))  # the HTML card counts runs with outcome ok
    assert f"{ok_runs} / {N} " in page

    # the in-memory reader (meter.report()) sees the same runs: the same sums, its own note
    _check(memory, price, N)
    assert 0 < memory.reliability.folded <= folded and memory.runs_note is not None
    for m, s in zip(memory.workflows, report.workflows, strict=True):
        assert (m.workflow, m.runs, m.succeeded, m.total_cost, m.cost_per_run, m.unpriced_runs) == (
            s.workflow,
            s.runs,
            s.succeeded,
            s.total_cost,
            s.cost_per_run,
            s.unpriced_runs,
        )
        assert m.calls_per_run == s.calls_per_run and m.tokens_per_task == s.tokens_per_task


def _price() -> Decimal:
    """The cost of one ``USAGE`` call of gpt-4o-mini, read from a meter of its own."""
    meter = tokenmeter.configure(exporter="none", ledger=None)
    try:
        tokenmeter.record("openai", "gpt-4o-mini", USAGE)
        meter.ledger.flush()
        cost: Decimal = meter.ledger.memory.rollup("model")["gpt-4o-mini"].cost
    finally:
        tokenmeter.unconfigure()
    assert cost > 0
    return cost


def test_a_writer_that_keeps_up_shows_no_note(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    meter = tokenmeter.configure(
        exporter="none", ledger=f"sqlite:///{path}", ledger_flush_interval=30, ledger_max_pending_runs=40
    )
    n = 300
    try:
        for i in range(n):
            _one(i)
        assert meter.force_flush()
        assert meter.ledger.stats["runs_folded"] == 0
        a, b = _window()
        memory = build_report(meter.reader(), a, b)
    finally:
        tokenmeter.unconfigure()
    report = build_report(SQLiteReader(str(path)), a, b)
    _check(report, _price(), n)
    _check(memory, _price(), n)
    for r in (report, memory):
        assert r.reliability.folded == 0 and r.runs_note is None
        assert all(w.folded == 0 and w.kept == w.runs for w in r.workflows)
        text = render_text(r)
        assert "folded" not in text and "kept one by one" not in text
        assert "Per run (tokens and cost per workflow run):" in text
        assert to_json(r)["runs_note"] is None
    page = html.write(tmp_path / "r.html", SQLiteReader(str(path)), a, b).read_text(encoding="utf-8")
    assert "folded" not in page


def _fold(workflow: str, outcome: str, runs: int, failed: int, cost: str | None, unpriced: int) -> dict[str, Any]:
    return {
        "start": datetime(2026, 12, 3, 10, tzinfo=UTC),
        "env": "",
        "team": "t",
        "workflow": workflow,
        "customer": "",
        "outcome": outcome,
        "runs": runs,
        "calls": 3 * runs,
        "steps": 2 * runs,
        "max_depth": 1,
        "tokens": {"input": 100 * runs, "cache_read": 0, "cache_write": 0, "output": 10 * runs, "reasoning": 0},
        "cost_usd": None if cost is None else Decimal(cost),
        "unpriced_runs": unpriced,
        "duration_s": 1.5 * runs,
        "succeeded": 0,
        "failed": failed,
    }


def test_fold_arithmetic_and_a_workflow_with_only_folded_runs() -> None:
    """Success of a fold: ok runs not marked failed; error runs never. A workflow with no run kept one by
    one shows its sums and no percentiles."""
    facts = [
        ("w", "r1", 500, Decimal("0.000100"), True, 4, "ok", {1: (4, 0)}, 2, 3.0),
        ("w", "r2", 900, None, False, 6, "error", {1: (5, 1)}, 4, 5.0),
    ]
    folds = [
        _fold("w", "ok", 10, 3, "0.001000", 2),
        _fold("w", "error", 4, 0, "0.000400", 0),
        _fold("only-folded", "ok", 5, 0, None, 5),
    ]
    workflows, rel, cost, per_success = run_figures(facts, {}, folds)
    w, only = {x.workflow: x for x in workflows}["w"], {x.workflow: x for x in workflows}["only-folded"]
    assert (w.runs, w.folded, w.kept, w.succeeded) == (16, 14, 2, 1 + 7)
    assert w.total_cost == Decimal("0.001500") and w.unpriced_runs == 3
    assert w.cost_per_run == Decimal("0.001500") / 13 and w.cost_per_success == Decimal("0.001500") / 8
    assert w.calls_per_run == (2 + 4 + 3 * 14) / 16 and w.steps_per_run == (4 + 6 + 2 * 14) / 16
    assert w.duration_per_run_s == (3.0 + 5.0 + 1.5 * 14) / 16
    assert w.tokens_per_task == (500 + 900 + 110 * 14) / 16
    assert w.tokens.max == 900 and w.worst == [("r2", 900), ("r1", 500)]  # the kept runs only
    assert w.outcomes == {"ok": 1, "error": 1, "ok (folded)": 10, "error (folded)": 4}
    assert (only.runs, only.kept, only.succeeded, only.cost_per_run, only.unpriced_runs) == (5, 0, 5, None, 5)
    assert rel.runs == 21 and rel.succeeded == 13 and rel.folded == 19
    assert rel.by_depth == {1: (9, 1)} and rel.mean_steps == (10 + 2 * 19) / 21
    assert cost == Decimal("0.001500") and per_success == Decimal("0.001500") / 13
    report = Report("t", *_window(), None, build_report_total(), {}, {}, [], None, None, workflows, rel, {}, None, cost)
    rows = {t[0].split(" (")[0]: t for t in tables(report)}
    per_run = {row[0]: row for row in rows["Per run"][2]}
    assert per_run["only-folded"][2:9] == ["-"] * 7 and per_run["only-folded"][-1] == "0"
    assert rows["Per run"][1][-1] == "kept"
    page = html.render([], [], title="t", folded_runs=[_fold("only-folded", "ok", 5, 0, None, 5)])
    assert "5 / 5 (100%)" in page and "all folded" in page and "5 runs folded" in page


def build_report_total() -> Any:
    from tokenmeter.finops.report import Figures

    return Figures("total")


def test_memory_keeps_old_folds_per_day() -> None:
    """Like its cells, the in-memory store keeps folds older than 48 hours per day (bounded), summed exactly."""
    from tokenmeter.finops._memory import MemoryStore
    from tokenmeter.finops._runfold import RunFold

    now = datetime(2026, 12, 3, 11, tzinfo=UTC).timestamp()
    old_day = int(now) - 5 * 86400 - int(now) % 86400

    def fold(runs: int) -> RunFold:
        return RunFold(runs=runs, calls=2 * runs, cost=Decimal("0.000001") * runs, succeeded=runs)

    store = MemoryStore()
    keys = [(old_day + 3600 * h, "", "t", "w", "", "ok") for h in (1, 2, 3)] + [(int(now), "", "t", "w", "", "ok")]
    store.merge({}, [], now=now, folded={k: fold(i + 1) for i, k in enumerate(keys)})
    by_start = {f["start"].timestamp(): f for f in store.folds()}
    assert set(by_start) == {old_day, int(now)}
    assert by_start[old_day]["runs"] == 6 and by_start[old_day]["calls"] == 12
    assert by_start[old_day]["cost_usd"] == Decimal("0.000006") and by_start[int(now)]["runs"] == 4
