"""The per-run guard: ``workflow(max_tokens=..., max_cost_usd=...)`` stops a runaway run before it sends."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

import tokenmeter
from tokenmeter import BudgetExceeded, PriceBook, Usage
from tokenmeter.testing import Capture

from .helpers import MESSAGES, complete, decisions, events, start


def test_a_runaway_agent_loop_stops_before_the_call_that_would_overspend(cap: Capture) -> None:
    sent = 0

    @tokenmeter.workflow("research", team="labs", max_tokens=1000)
    def agent_loop() -> None:
        nonlocal sent
        while True:  # a loop that never decides it is done
            call = start(max_tokens=150)
            sent += 1
            call.stop(Usage(input=40, output=150))

    with pytest.raises(BudgetExceeded) as info:
        agent_loop()
    assert sent == 5  # 5 x 190 = 950; the 6th would need 150 more
    assert "research" in str(info.value) and info.value.budget is None
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "ok"}) == 5
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 1
    assert decisions(cap, "block", **{"gen_ai.workflow.name": "research"}) == 1
    run = cap.span("invoke_workflow research")
    assert run.attributes["tokenmeter.rollup.tokens.total"] == 950
    assert [e["tokenmeter.policy.decision"] for e in events(run)] == ["block"]


def test_exactly_at_the_run_limit_is_allowed(cap: Capture) -> None:
    with tokenmeter.workflow("exact", max_tokens=300):
        for _ in range(3):
            complete(max_tokens=100)
        with pytest.raises(BudgetExceeded):
            start(max_tokens=0)  # the run is used up: even a zero estimate is refused


def test_the_estimate_counts_the_prompt(cap: Capture) -> None:
    n_in = int(tokenmeter.count_tokens(MESSAGES, "gpt-4o-mini"))
    with tokenmeter.workflow("prompted", max_tokens=n_in + 100):
        call = start(max_tokens=100, messages=MESSAGES)
        call.stop(Usage(input=n_in, output=100))
        with pytest.raises(BudgetExceeded):
            start(max_tokens=1, messages=MESSAGES)


def test_a_dollar_limit_is_exact(cap: Capture) -> None:
    one = PriceBook().cost("openai", "gpt-4o", Usage(output=100)).usd
    assert one is not None and Decimal(str(float(one * 2))) == one * 2  # the float limit is exactly two calls
    with tokenmeter.workflow("priced", max_cost_usd=float(one * 2)):
        complete("gpt-4o", max_tokens=100)
        complete("gpt-4o", max_tokens=100)
        with pytest.raises(BudgetExceeded):
            start("gpt-4o", max_tokens=1)
        complete("in-house-llm", max_tokens=100)  # unpriced: a dollar limit cannot apply


def test_calls_in_flight_count_against_the_run(cap: Capture) -> None:
    with tokenmeter.workflow("parallel", max_tokens=250):
        first = start(max_tokens=100)
        second = start(max_tokens=100)
        with pytest.raises(BudgetExceeded):
            start(max_tokens=100)  # 100 + 100 in flight + 100 > 250
        first.stop(Usage(output=10))
        second.fail(TimeoutError())  # released: used nothing
        complete(max_tokens=100)
        complete(max_tokens=100)


def test_recorded_calls_count_toward_the_run(cap: Capture) -> None:
    with tokenmeter.workflow("mixed", max_tokens=500):
        tokenmeter.record("openai", "gpt-4o-mini", Usage(input=300, output=150))
        with pytest.raises(BudgetExceeded):
            start(max_tokens=100)
        complete(max_tokens=50)


def test_threads_of_one_run_admit_exactly_what_fits(cap: Capture) -> None:
    admitted: list[int] = []
    refused: list[int] = []

    def worker(_: int) -> None:
        for _ in range(10):
            try:
                complete(max_tokens=70)
                admitted.append(1)
            except BudgetExceeded:
                refused.append(1)

    with tokenmeter.workflow("fanout", max_tokens=7000), ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))  # the executor carries the run's context into each thread
    assert (len(admitted), len(refused)) == (80, 0)
    with tokenmeter.workflow("fanout-tight", max_tokens=2100), ThreadPoolExecutor(8) as pool:
        admitted.clear()
        refused.clear()
        list(pool.map(worker, range(8)))
    assert (len(admitted), len(refused)) == (30, 50)
    assert cap.span("invoke_workflow fanout-tight").attributes["tokenmeter.rollup.tokens.total"] == 2100


def test_runs_without_limits_are_not_guarded(cap: Capture) -> None:
    with tokenmeter.workflow("free"):
        call = start(max_tokens=10**9)
        assert call.reservation is None
        call.stop(Usage(output=1))
    assert cap.points("tokenmeter.policy.decisions") == []
