"""The demo agent service's real workload (openai client -> loopback FakeProvider, metered by tokenmeter) through
the FinOps outputs: the seeds' scenario table from its measured baseline, and its FOCUS export validated."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import tokenmeter.finops
from tokenmeter.cli import main
from tokenmeter.finops import UsageRow
from tokenmeter.finops.focus import focus_rows, month_bounds
from tokenmeter.testing.finops import ListReader

from .demo_rows import demo_usage_rows
from .test_focus import assert_valid, needs_validator

YESTERDAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)


@pytest.fixture(scope="module")
def rows() -> list[UsageRow]:
    return demo_usage_rows(YESTERDAY)


def test_seeds_table_from_the_demo_baseline(
    rows: list[UsageRow], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tokenmeter.finops, "reader_for", lambda source: ListReader(rows), raising=False)
    status = main(
        [
            "forecast",
            "--json",
            "--baseline",
            "2",
            "--scenario",
            "price=-90% demand=1x",
            "--scenario",
            "price=-90% demand=10x",
            "--scenario",
            "price=-90% demand=30x",
        ]
    )
    assert status == 0
    doc = json.loads(capsys.readouterr().out)
    measured = sum((r.cost_usd for r in rows if r.cost_usd is not None), Decimal(0))
    assert measured > 0
    totals = {r["scenario"]: r for r in doc["scenarios"] if r["workflow"] == "*"}
    for k, effect in ((1, "down"), (10, "flat"), (30, "up materially")):
        t = totals[f"price=-90% demand={k}x"]
        assert Decimal(t["baseline_cost_usd"]) == measured
        assert Decimal(t["cost_usd"]) == measured * Decimal("0.1") * k
        assert t["effect"] == effect
        assert t["unpriced_tokens"] == sum(r.unpriced_tokens for r in rows) > 0  # the self-hosted model


@needs_validator
def test_validator_passes_the_demo_workload_export(rows: list[UsageRow], tmp_path: Path) -> None:
    """The demo's metered workload exported as CSV: zero failed FOCUS 1.2 rules."""
    start, end = month_bounds(f"{YESTERDAY:%Y-%m}")
    assert any(r.cost_usd is None for r in rows)
    export = focus_rows(rows, period_start=start, period_end=end, billing_account="acme-agents", unpriced="flag")
    assert len(export.rows) > 10 and any(r["x_Unpriced"] for r in export.rows)
    path = tmp_path / "demo-focus.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        export.to_csv(f)
    assert_valid(path, tmp_path)
