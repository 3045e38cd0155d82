"""The in-process ledger behind ``Meter.report()``: totals per key and a bounded per-run history."""

from __future__ import annotations

from decimal import Decimal

import pytest

import tokenmeter
from tokenmeter import Usage
from tokenmeter.finops import _memory
from tokenmeter.finops.report import EPOCH, FOREVER
from tokenmeter.testing import capture


def test_totals_add_up_per_key_and_outcome() -> None:
    with capture(prices={"gpt-4o": {"input": 1000, "output": 1000}}) as cap:
        with tokenmeter.attributes(team="payments", workflow="refund"):
            tokenmeter.record("openai", "gpt-4o", Usage(input=10, cache_read=2, output=5, reasoning=1))
            tokenmeter.record("openai", "gpt-4o", Usage(input=1), error="Timeout")
            tokenmeter.record("openai", "private", Usage(input=3))
        t = cap.meter.ledger.rollup("team")["payments"]
        assert (t.calls, t.errors, t.blocked) == (3, 1, 0)
        assert t.tokens == [14, 2, 0, 5, 1] and t.total_tokens == 22
        assert t.cost == Decimal("0.019") and t.unpriced_tokens == 3


def test_per_run_history_keeps_the_latest_runs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_memory, "MAX_RUNS_KEPT", 20)
    with capture() as cap:
        for i in range(25):
            with tokenmeter.workflow("refund"):
                tokenmeter.record("openai", "gpt-4o", Usage(input=i + 1))
        runs = list(cap.meter.reader().runs(EPOCH, FOREVER))
    assert len(runs) == 20
    assert sorted(r.total_tokens for r in runs) == list(range(6, 26))


def test_memory_keeps_hours_for_two_days_then_days() -> None:
    from tokenmeter.finops._agg import Cell

    store = _memory.MemoryStore()
    dims = ("", "t", "w", "", "small", "openai", "m", "chat", "input", "ok", "", "override")
    day = 1_790_000_000 // 86400 * 86400
    for h in range(72):
        store.merge({(day + h * 3600, *dims): Cell(tokens=1, cost=Decimal(1), calls=1)}, [], now=day + h * 3600)
    assert len(store.days) == 1 and len(store.cells) == 49  # hours 23..71 (the last 48 h and this one)
    cells, _ = store.snapshot()
    assert sum(c.tokens for _, c in cells) == 72 and sum(c.cost or 0 for _, c in cells) == 72


def test_a_scope_stays_hashable_with_a_business_outcome() -> None:
    with capture():
        with tokenmeter.workflow("w") as scope:
            tokenmeter.outcome("escalated")
            assert hash(scope) == hash(tokenmeter.current_scope())
            assert scope.run is not None and scope.run.marks == {"outcome": "escalated", "success": False}
            tokenmeter.outcome("kept", success=True)
            assert scope.run.marks["success"] is True
    tokenmeter.outcome("outside a run: nothing happens")
