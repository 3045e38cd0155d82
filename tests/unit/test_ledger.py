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
