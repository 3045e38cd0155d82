"""The in-process ledger behind ``Meter.report()``: totals per key and a bounded per-run history."""

from __future__ import annotations

from decimal import Decimal

from tokenmeter import Usage, _ledger
from tokenmeter._ledger import Ledger


def test_totals_add_up_per_key_and_outcome() -> None:
    ledger = Ledger()
    key = ("payments", "refund", "standard", "openai", "gpt-4o")
    ledger.add_call(key, Usage(input=10, cache_read=2, output=5, reasoning=1), Decimal("0.5"), "ok")
    ledger.add_call(key, Usage(input=1), None, "error")
    ledger.add_call(key, None, None, "blocked")
    t = ledger.totals()[key]
    assert (t.calls, t.errors, t.blocked) == (3, 1, 1)
    assert t.tokens == [11, 2, 0, 5, 1] and t.total_tokens == 19
    assert t.cost == Decimal("0.5") and t.unpriced_tokens == 1


def test_per_run_history_keeps_the_latest_runs_only() -> None:
    ledger = Ledger()
    n = _ledger._MAX_RUNS_KEPT + 5
    for i in range(n):
        ledger.add_run("refund", i, Decimal(i), 1)
    runs = ledger.runs()["refund"]
    assert len(runs) == _ledger._MAX_RUNS_KEPT
    assert runs[0][0] == 5 and runs[-1][0] == n - 1
