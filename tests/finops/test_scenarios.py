"""Scenario figures equal hand-computed ones from a known baseline; bad --scenario terms are rejected by name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tokenmeter.finops import UsageRow
from tokenmeter.finops._scenarios import ScenarioError, apply_scenarios, baselines, parse_scenario

DAY = datetime(2026, 11, 3, tzinfo=UTC)


def _row(workflow: str, tier: str, klass: str, tokens: int, cost: str | None) -> UsageRow:
    return UsageRow(
        start=DAY,
        end=DAY + timedelta(days=1),
        env="prod",
        team="t",
        workflow=workflow,
        agent="a",
        tier=tier,
        provider="openai",
        model={"frontier": "o1", "small": "gpt-4o-mini"}.get(tier, "x"),
        operation="chat",
        token_class=klass,
        tokens=tokens,
        cost_usd=None if cost is None else Decimal(cost),
        unpriced_tokens=tokens if cost is None else 0,
    )


# refund: frontier input 1M at $15/M, output 200k at $75/M; small input 2M at $0.15/M, output 500k at $0.60/M
ROWS = [
    _row("refund", "frontier", "input", 1_000_000, "15"),
    _row("refund", "frontier", "output", 200_000, "15"),
    _row("refund", "small", "input", 2_000_000, "0.30"),
    _row("refund", "small", "output", 500_000, "0.30"),
    _row("triage", "small", "input", 4_000_000, "0.60"),
    _row("triage", "unknown", "input", 1_000, None),
]


def _run(*terms: str) -> dict[str, tuple[Decimal, Decimal, str]]:
    rows = apply_scenarios([parse_scenario(terms)], baselines(ROWS))
    return {r.workflow: (r.baseline_cost, r.cost, r.effect) for r in rows}


def test_the_seeds_table_price_minus_90_percent_at_1x_10x_30x() -> None:
    assert _run("price=-90%", "demand=1x")["refund"] == (Decimal("30.60"), Decimal("3.060"), "down")
    assert _run("price=-90%", "demand=10x")["refund"] == (Decimal("30.60"), Decimal("30.600"), "flat")
    assert _run("price=-90%", "demand=30x")["refund"] == (Decimal("30.60"), Decimal("91.800"), "up materially")
    total = _run("price=-90% demand=30x")["*"]
    assert total[0] == Decimal("31.20") and total[1] == Decimal("93.600")


def test_tier_shift_moves_tokens_at_the_measured_unit_cost_of_the_target_tier() -> None:
    # 30 % of frontier moves to small: input 300k x $0.15/M = 0.045, output 60k x $0.60/M = 0.036;
    # frontier keeps 70 % of $15 + $15; small keeps its $0.60
    got = _run("tier-shift=frontier->small:30%")["refund"]
    assert got[1] == Decimal("10.5") + Decimal("10.5") + Decimal("0.60") + Decimal("0.045") + Decimal("0.036")
    combined = _run("tier-shift=frontier->small:30%", "price=-50%", "demand=2x")["refund"]
    assert combined[1] == got[1]  # x 0.5 x 2


def test_unpriced_tokens_stay_unpriced() -> None:
    rows = apply_scenarios([parse_scenario(["demand=10x"])], baselines(ROWS))
    triage = next(r for r in rows if r.workflow == "triage")
    assert triage.unpriced_tokens == 1_000 and triage.baseline_cost == Decimal("0.60")
    assert triage.tokens == Decimal(4_001_000 * 10)


def test_shift_to_a_tier_without_a_measured_price_is_an_error() -> None:
    with pytest.raises(ScenarioError, match="no measured unit cost for tier 'standard'"):
        _run("tier-shift=frontier->standard:10%")


@pytest.mark.parametrize(
    "terms, message",
    [
        ([], "empty --scenario"),
        (["price=-90"], "not understood"),
        (["price=-120%"], "more than 100%"),
        (["demand=ten"], "not understood"),
        (["speed=2x"], "not understood"),
        (["price"], "has no '='"),
        (["tier-shift=frontier->frontier:10%"], "different tier"),
        (["tier-shift=frontier->small:150%"], "at most 100%"),
    ],
)
def test_invalid_terms(terms: list[str], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(terms)


def test_effect_thresholds() -> None:
    assert _run("price=+4%")["refund"][2] == "flat"
    assert _run("price=+40%")["refund"][2] == "up"
    assert _run("price=-6%")["refund"][2] == "down"
