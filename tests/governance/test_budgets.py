"""Budgets end to end through the core: estimate -> reserve -> settle, block / warn / downgrade, escalation."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import tokenmeter
from tokenmeter import BudgetExceeded, PriceBook, Usage, count_tokens
from tokenmeter.governance import Budget
from tokenmeter.governance._budget import BudgetWarning
from tokenmeter.governance._stores import to_nano
from tokenmeter.testing import Capture, capture

from .conftest import LEASE_S, FakeClock, store_url
from .helpers import MESSAGES, bucket, complete, decisions, events, gate, start

PRICES = PriceBook()


def cost_nano(model: str, usage: Usage) -> int:
    usd = PRICES.cost("openai", model, usage).usd
    assert usd is not None
    return to_nano(usd)


@pytest.fixture
def governed(clock: FakeClock) -> Iterator[Any]:
    """``governed(budgets, **options)`` -> a Capture with those budgets, on the fake clock."""
    with ExitStack() as stack:

        def make(budgets: list[Budget], **options: Any) -> Capture:
            cap = stack.enter_context(capture(budgets=budgets, **options))
            gate(cap).clock = clock
            assert cap.meter.warm_up(60)  # the steady state: exact estimates (test_first_call_bounds: before it)
            return cap

        yield make


def test_the_estimate_is_counted_input_plus_max_tokens_priced(governed: Any) -> None:
    cap = governed([Budget("all", scope={}, limit_usd=10, limit_tokens=10_000, window="1d")])
    call = start("gpt-4o", max_tokens=250, messages=MESSAGES)
    [line] = call.reservation.lines
    n_in = int(count_tokens(MESSAGES, "gpt-4o"))
    assert line.tokens == n_in + 250
    assert line.usd == cost_nano("gpt-4o", Usage(input=n_in, output=250))
    assert bucket(cap, "all").reserved_tokens == n_in + 250
    actual = Usage(input=n_in, cache_read=0, output=17)
    call.stop(actual)
    state = bucket(cap, "all")
    assert (state.spent_tokens, state.spent_usd, state.reservations) == (actual.total, cost_nano("gpt-4o", actual), 0)


def test_without_max_tokens_the_configured_expectation_is_reserved(governed: Any) -> None:
    governed([Budget("all", scope={}, limit_tokens=10_000, window="1d")], expected_output_tokens=77)
    call = start(max_tokens=None, messages=MESSAGES)
    assert call.reservation.lines[0].tokens == count_tokens(MESSAGES, "gpt-4o-mini") + 77
    embedding = start(operation="embeddings", max_tokens=None, messages=["some text"])
    assert embedding.reservation.lines[0].tokens == count_tokens(["some text"], "gpt-4o-mini")


def test_a_block_budget_refuses_before_sending_and_records_the_block(governed: Any) -> None:
    one = Usage(input=200, output=100)
    limit = Decimal(PRICES.cost("openai", "gpt-4o-mini", one).usd or 0) * 3
    cap = governed([Budget("pay-daily", scope={"team": "payments"}, limit_usd=limit, window="1d")])
    with tokenmeter.attributes(team="payments"):
        for _ in range(3):
            tokenmeter.record("openai", "gpt-4o-mini", one)  # already-made calls are charged, never blocked
        assert bucket(cap, "pay-daily").spent_usd == 3 * cost_nano("gpt-4o-mini", one) == to_nano(limit)
        with pytest.raises(BudgetExceeded) as info:
            start(max_tokens=1)
        with tokenmeter.attributes(team="search"):
            complete()  # another team's calls are not in this budget's scope
    assert info.value.budget == "pay-daily" and info.value.decision == "block"
    assert "pay-daily" in str(info.value)
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 1
    assert decisions(cap, "block", **{"tokenmeter.team.name": "payments", "tokenmeter.model.tier": "small"}) == 1
    assert decisions(cap, "allow", **{"tokenmeter.team.name": "search"}) == 1
    assert bucket(cap, "pay-daily").reservations == 0


def test_landing_exactly_on_the_limit_is_allowed_then_nothing_more(governed: Any) -> None:
    cap = governed([Budget("b", scope={}, limit_tokens=300, window="1h")])
    for _ in range(3):
        complete(max_tokens=100)  # no messages: the estimate is exactly max_tokens, and so is the usage
    assert bucket(cap, "b").spent_tokens == 300
    with pytest.raises(BudgetExceeded):
        start(max_tokens=0)


def test_a_burst_of_in_flight_calls_admits_exactly_what_fits(governed: Any) -> None:
    cap = governed([Budget("b", scope={}, limit_tokens=1000, window="1h")])
    admitted, refused = [], 0
    for _ in range(20):
        try:
            admitted.append(start(max_tokens=300))
        except BudgetExceeded:
            refused += 1
    assert (len(admitted), refused) == (3, 17)
    assert bucket(cap, "b").reserved_tokens == 900
    for call in admitted:
        call.stop(Usage(output=100))  # used less than reserved: the room comes back
    assert len([start(max_tokens=300) for _ in range(2)]) == 2


def test_a_failed_call_releases_and_a_partial_one_pays_what_it_used(governed: Any) -> None:
    cap = governed([Budget("b", scope={}, limit_tokens=1000, window="1h")])
    start(max_tokens=400).fail(TimeoutError("read timeout"))
    assert bucket(cap, "b") == type(bucket(cap, "b"))()
    start(max_tokens=400).fail(ConnectionError("stream cut"), Usage(input=5, output=37))
    assert bucket(cap, "b").spent_tokens == 42
    start(max_tokens=400).stop(None)  # the provider reported no usage: the estimate is charged
    assert bucket(cap, "b").spent_tokens == 442


def test_a_crashed_call_holds_budget_only_until_its_lease_ends(governed: Any, clock: FakeClock) -> None:
    cap = governed([Budget("b", scope={}, limit_tokens=100, window="1d")], store="memory")
    gate(cap).lease_s = LEASE_S
    start(max_tokens=100)  # never stopped: its process "crashed"
    with pytest.raises(BudgetExceeded):
        start(max_tokens=1)
    clock.advance(LEASE_S)
    complete(max_tokens=100)


def test_unpriced_models_count_tokens_but_not_dollars(governed: Any) -> None:
    cap = governed(
        [
            Budget("usd", scope={}, limit_usd="0.000001", window="1d"),
            Budget("tokens", scope={}, limit_tokens=150, window="1d"),
        ]
    )
    complete("in-house-llm", max_tokens=100)
    assert bucket(cap, "usd").spent_usd == 0
    assert bucket(cap, "tokens").spent_tokens == 100
    with pytest.raises(BudgetExceeded) as info:
        start("in-house-llm", max_tokens=100)
    assert info.value.budget == "tokens"


def test_every_matching_budget_is_reserved_or_none_is(governed: Any) -> None:
    cap = governed(
        [
            Budget("global", scope={}, limit_tokens=10_000, window="1d"),
            Budget("frontier", scope={"tier": "frontier"}, limit_tokens=500, window="1d"),
            Budget("ops-prod", scope={"team": "ops", "env": "prod"}, limit_tokens=10_000, window="1d"),
        ]
    )
    with tokenmeter.attributes(team="ops", env="prod"):
        call = start("o1", max_tokens=400)
        assert [line.key.split(":")[0] for line in call.reservation.lines] == ["global", "frontier", "ops-prod"]
        call.stop(Usage(output=400))
        with pytest.raises(BudgetExceeded):
            start("o1", max_tokens=200)
        complete("gpt-4o", max_tokens=200)  # another tier: the frontier budget does not apply
    assert [bucket(cap, n).spent_tokens for n in ("global", "frontier", "ops-prod")] == [600, 400, 600]
    assert [bucket(cap, n).reservations for n in ("global", "frontier", "ops-prod")] == [0, 0, 0]


def test_a_warn_budget_lets_calls_through_and_records_warn(governed: Any) -> None:
    cap = governed([Budget("soft", scope={}, limit_tokens=150, window="1d", action="warn", warn_at=())])
    complete(max_tokens=100)
    call = complete(max_tokens=100)
    assert bucket(cap, "soft").spent_tokens == 200
    assert decisions(cap, "allow") == 1 and decisions(cap, "warn") == 1
    span = [s for s in cap.spans if s.name == "chat gpt-4o-mini"][-1]
    assert [e["tokenmeter.policy.decision"] for e in events(span)] == ["warn"]
    assert events(span)[0]["tokenmeter.budget.name"] == "soft"
    assert call.reservation.lines[0].enforce is False


def test_a_downgrade_budget_resends_the_call_on_the_cheaper_model(governed: Any) -> None:
    cap = governed(
        [
            Budget(
                "premium",
                scope={"tier": "standard"},
                limit_tokens=150,
                window="1d",
                action="downgrade",
                downgrade_to="gpt-4o-mini",
            )
        ]
    )
    complete("gpt-4o", max_tokens=100)
    call = complete("gpt-4o", max_tokens=100)
    assert call.model == "gpt-4o-mini" and call.tier == "small"
    span = cap.spans[-1]
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert span.attributes["tokenmeter.request.original_model"] == "gpt-4o"
    [event] = events(span)
    assert event["tokenmeter.policy.decision"] == "downgrade"
    assert event["tokenmeter.request.original_model"] == "gpt-4o"
    assert decisions(cap, "downgrade", **{"tokenmeter.model.tier": "small"}) == 1
    assert bucket(cap, "premium").spent_tokens == 100  # the downgraded call is out of the standard-tier scope
    assert cap.counter("tokenmeter.tokens", **{"gen_ai.request.model": "gpt-4o-mini"}) == 100


def test_a_downgrade_that_still_does_not_fit_blocks(governed: Any) -> None:
    governed([Budget("all", scope={}, limit_tokens=150, window="1d", action="downgrade", downgrade_to="gpt-4o-mini")])
    complete("gpt-4o", max_tokens=100)
    with pytest.raises(BudgetExceeded) as info:
        start("gpt-4o", max_tokens=100)
    assert info.value.model == "gpt-4o-mini"


def test_warn_thresholds_fire_once_per_window(
    governed: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    warnings: list[BudgetWarning] = []
    cap = governed(
        [Budget("b", scope={}, limit_tokens=1000, window="1d", warn_at=(0.5, 0.8))], on_budget_warning=warnings.append
    )
    caplog.set_level(logging.WARNING, "tokenmeter")
    complete(max_tokens=400)
    complete(max_tokens=200)  # 600: crosses 50%
    complete(max_tokens=250)  # 850: crosses 80%
    complete(max_tokens=100)  # 950: nothing new
    assert [(w.threshold, w.spent_tokens) for w in warnings] == [(0.5, 600), (0.8, 850)]
    assert warnings[0].budget.name == "b" and warnings[0].utilization == 0.6
    assert warnings[0].window_start.isoformat() == "2030-01-15T00:00:00+00:00"
    spans = [s for s in cap.spans if s.name.startswith("chat")]
    fired = [[e["tokenmeter.budget.threshold"] for e in events(s, "tokenmeter.budget.warning")] for s in spans]
    assert fired == [[], [0.5], [0.8], []]
    assert len([r for r in caplog.records if "passed" in r.getMessage()]) == 2
    clock.advance(86400)  # next day: a fresh window, fresh warnings
    complete(max_tokens=900)
    assert [w.threshold for w in warnings] == [0.5, 0.8, 0.5, 0.8]
    assert warnings[-1].window_start.isoformat() == "2030-01-16T00:00:00+00:00"


def test_a_raising_warning_callback_never_breaks_the_call(governed: Any) -> None:
    def explode(_: BudgetWarning) -> None:
        raise RuntimeError("pager down")

    cap = governed([Budget("b", scope={}, limit_tokens=100, window="1d", warn_at=(0.5,))], on_budget_warning=explode)
    complete(max_tokens=60)
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "ok"}) == 1


def test_windows_roll_over_and_spend_starts_again(governed: Any, clock: FakeClock) -> None:
    cap = governed([Budget("hourly", scope={}, limit_tokens=100, window="1h")])
    complete(max_tokens=100)
    with pytest.raises(BudgetExceeded):
        start(max_tokens=1)
    clock.advance(3600)
    complete(max_tokens=100)
    assert bucket(cap, "hourly").spent_tokens == 100


def test_the_utilization_gauge_reports_each_budget(governed: Any) -> None:
    cap = governed(
        [
            Budget("tokens", scope={}, limit_tokens=400, window="1d"),
            Budget("both", scope={}, limit_tokens=10_000, limit_usd="0.0001", window="month"),
        ]
    )
    complete(max_tokens=100)
    gauge = {p.attributes["tokenmeter.budget.name"]: p.value for p in cap.points("tokenmeter.budget.utilization")}
    usd_ratio = cost_nano("gpt-4o-mini", Usage(output=100)) / to_nano(Decimal("0.0001"))
    assert gauge == {"tokens": 0.25, "both": max(usd_ratio, 0.01)}


def test_a_blocked_call_records_its_decision_on_the_enclosing_span(governed: Any) -> None:
    cap = governed([Budget("b", scope={}, limit_tokens=10, window="1d")])
    with pytest.raises(BudgetExceeded), tokenmeter.workflow("triage", team="support"):
        start(max_tokens=50)
    span = cap.span("invoke_workflow triage")
    [event] = events(span)
    assert event["tokenmeter.policy.decision"] == "block" and event["tokenmeter.budget.name"] == "b"
    assert decisions(cap, "block", **{"gen_ai.workflow.name": "triage", "tokenmeter.team.name": "support"}) == 1
    assert [s.name for s in cap.spans] == ["invoke_workflow triage"]  # no call span: nothing was sent


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_budgets_work_the_same_on_every_store(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, governed: Any
) -> None:
    cap = governed([Budget("b", scope={}, limit_tokens=250, window="1d")], store=store_url(kind, tmp_path, request))
    complete(max_tokens=100)
    complete(max_tokens=100)
    with pytest.raises(BudgetExceeded):
        start(max_tokens=100)
    assert bucket(cap, "b").spent_tokens == 200


def test_without_governance_the_gate_does_nothing(cap: Capture) -> None:
    call = start()
    assert call.reservation is None
    call.stop(Usage(output=1))
    assert cap.points("tokenmeter.policy.decisions") == []


def test_underestimated_calls_overspend_by_exactly_their_underestimate(governed: Any) -> None:
    cap = governed([Budget("b", scope={}, limit_tokens=100, window="1d")])
    first, second = start(max_tokens=50), start(max_tokens=50)  # 100 reserved: the budget is full
    with pytest.raises(BudgetExceeded):
        start(max_tokens=1)
    first.stop(Usage(output=50, reasoning=20))  # each used 20 more than estimated (reasoning beyond max_tokens)
    second.stop(Usage(output=50, reasoning=20))
    assert bucket(cap, "b").spent_tokens == 140 == 100 + 2 * (70 - 50)  # the documented bound, reached
    with pytest.raises(BudgetExceeded):
        start(max_tokens=0)  # and nothing more is admitted in this window
