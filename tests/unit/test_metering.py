"""The one flow through the public API: counters per class and dimension, spans, rollups, waste."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import pytest

import tokenmeter
from tokenmeter import PriceBook, Usage
from tokenmeter.testing import Capture, capture

U1 = Usage(input=800, cache_read=200, cache_write=50, output=100, reasoning=30)
U2 = Usage(input=10, output=5)


def test_counters_are_exact_per_class_and_dimension(cap: Capture) -> None:
    with tokenmeter.attributes(team="payments", workflow="refund", env="prod"):
        tokenmeter.record("openai", "gpt-4o", U1)
        tokenmeter.record("openai", "gpt-4o", U1)
    with tokenmeter.attributes(team="support"):
        tokenmeter.record("openai", "gpt-4o-mini", U2)
    for cls, n in U1.by_class():
        assert (
            cap.counter(
                "tokenmeter.tokens",
                **{
                    "tokenmeter.token.class": cls,
                    "tokenmeter.team.name": "payments",
                    "gen_ai.workflow.name": "refund",
                    "tokenmeter.env": "prod",
                },
            )
            == 2 * n
        )
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.team.name": "support"}) == 15
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.model.tier": "small"}) == 15
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "ok"}) == 3
    expected = PriceBook().cost("openai", "gpt-4o", U1)
    assert expected.by_class is not None
    for (cls, _), part in zip(U1.by_class(), expected.by_class, strict=False):
        got = cap.counter("tokenmeter.cost", **{"tokenmeter.token.class": cls, "tokenmeter.team.name": "payments"})
        assert got == pytest.approx(2 * float(part), rel=1e-12)
    # semconv histograms: input_total / output_total per call
    assert cap.counter("gen_ai.client.token.usage", **{"gen_ai.token.type": "input"}) == 2 * U1.input_total + 10
    assert cap.counter("gen_ai.client.token.usage", **{"gen_ai.token.type": "output"}) == 2 * U1.output_total + 5
    assert cap.count("gen_ai.client.operation.duration") == 3


def test_span_follows_genai_conventions_and_carries_exact_cost(cap: Capture) -> None:
    with tokenmeter.attributes(team="t", workflow="w"):
        tokenmeter.record("anthropic", "claude-sonnet-4-5", U1, response_model="claude-sonnet-4-5-20250929")
    span = cap.span("chat claude-sonnet-4-5")
    a = dict(span.attributes or {})
    assert span.kind.name == "CLIENT"
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.response.model"] == "claude-sonnet-4-5-20250929"
    assert a["gen_ai.usage.input_tokens"] == 1050
    assert a["gen_ai.usage.output_tokens"] == 130
    assert a["gen_ai.usage.cache_read.input_tokens"] == 200
    assert a["gen_ai.usage.cache_write.input_tokens"] == 50
    assert a["gen_ai.usage.reasoning.output_tokens"] == 30
    assert a["tokenmeter.team.name"] == "t" and a["gen_ai.workflow.name"] == "w"
    cost = PriceBook().cost("anthropic", "claude-sonnet-4-5", U1)
    assert a["tokenmeter.cost.usd"] == float(cost.usd or 0) and cost.usd == Decimal("0.0045975")
    assert a["tokenmeter.cost.source"].startswith("table:genai-prices@")
    assert a["tokenmeter.usage.estimated"] is False


def test_unpriced_model_goes_to_the_unpriced_counter_and_never_costs_zero(cap: Capture) -> None:
    tokenmeter.record("openai", "private-llama-7b", U2)
    assert cap.counter("tokenmeter.tokens.unpriced") == 15
    assert cap.points("tokenmeter.cost") == []
    a = dict(cap.span("chat private-llama-7b").attributes or {})
    assert a["tokenmeter.cost.source"] == "unpriced"
    assert "tokenmeter.cost.usd" not in a
    assert a["tokenmeter.model.tier"] == "unknown"


def test_errors_are_counted_with_error_type_and_no_tokens(cap: Capture) -> None:
    tokenmeter.record("openai", "gpt-4o", Usage(), error=TimeoutError("slow"))
    tokenmeter.record("openai", "gpt-4o", Usage(), error="RateLimitError")
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "error", "error.type": "TimeoutError"}) == 1
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "error", "error.type": "RateLimitError"}) == 1
    assert cap.counter("tokenmeter.tokens") == 0


def test_nested_depth_rollups_and_run_metrics(cap: Capture) -> None:
    @tokenmeter.workflow("triage", team="support", ticket_kind="billing")
    def triage() -> None:
        tokenmeter.record("openai", "gpt-4o-mini", U2)
        with tokenmeter.agent("classifier"):
            assert tokenmeter.current_scope().depth == 1
            with tokenmeter.tool("lookup"):
                assert tokenmeter.current_scope().depth == 2
                tokenmeter.record("openai", "gpt-4o", U1)
            with tokenmeter.step("validate"):
                tokenmeter.record("openai", "gpt-4o", U2)

    triage()
    llm = cap.span("chat gpt-4o-mini")
    assert dict(llm.attributes or {})["tokenmeter.step.depth"] == 0
    deep = [s for s in cap.spans if s.name == "chat gpt-4o"]
    assert sorted(dict(s.attributes or {})["tokenmeter.step.depth"] for s in deep) == [2, 2]
    tool = dict(cap.span("execute_tool lookup").attributes or {})
    assert tool["gen_ai.tool.name"] == "lookup" and tool["tokenmeter.rollup.tokens.total"] == U1.total
    agent = dict(cap.span("invoke_agent classifier").attributes or {})
    assert agent["tokenmeter.rollup.calls"] == 2
    assert agent["tokenmeter.rollup.tokens.total"] == U1.total + U2.total
    wf = cap.span("invoke_workflow triage")
    w = dict(wf.attributes or {})
    assert w["tokenmeter.rollup.calls"] == 3
    assert w["tokenmeter.rollup.tokens.input"] == 800 + 20
    assert w["tokenmeter.rollup.tokens.total"] == U1.total + 2 * U2.total
    assert w["tokenmeter.rollup.steps"] == 3
    assert w["ticket_kind"] == "billing"
    book = PriceBook()
    expected = sum(
        (book.cost("openai", m, u).usd or Decimal(0)) for m, u in (("gpt-4o-mini", U2), ("gpt-4o", U1), ("gpt-4o", U2))
    )
    assert w["tokenmeter.rollup.cost.usd"] == pytest.approx(float(expected), rel=1e-12)
    # parentage: the LLM span inside the tool is the tool span's child; everything shares one run id
    tool_span = cap.span("execute_tool lookup")
    inner = [s for s in deep if s.parent is not None and s.parent.span_id == tool_span.context.span_id]
    assert len(inner) == 1
    run_ids = {dict(s.attributes or {}).get("tokenmeter.run.id") for s in cap.spans}
    assert len(run_ids) == 1 and None not in run_ids
    # per-run histograms: one point per finished run
    assert cap.count("tokenmeter.run.tokens", **{"gen_ai.workflow.name": "triage"}) == 1
    assert cap.counter("tokenmeter.run.tokens", **{"gen_ai.workflow.name": "triage"}) == U1.total + 2 * U2.total
    assert cap.counter("tokenmeter.run.steps") == 3 + 3  # three scopes + three calls
    # run ids never reach metrics
    for name in ("tokenmeter.tokens", "tokenmeter.calls", "tokenmeter.run.tokens"):
        for p in cap.points(name):
            assert "tokenmeter.run.id" not in dict(p.attributes or {})


def test_attempts_meter_retries_as_waste(cap: Capture) -> None:
    class Invalid(Exception):
        pass

    seen: list[int] = []

    @tokenmeter.workflow("refund", team="payments")
    def refund() -> str:
        for attempt in tokenmeter.attempts(3, retry_on=Invalid):
            with attempt:
                seen.append(tokenmeter.current_scope().attempt)
                tokenmeter.record("openai", "gpt-4o", U2)
                if attempt.number < 2:
                    raise Invalid("bad json")
        return "ok"

    assert refund() == "ok"
    assert seen == [0, 1, 2]
    assert cap.counter("tokenmeter.tokens.wasted", **{"tokenmeter.waste.reason": "retried"}) == 2 * U2.total
    assert cap.counter("tokenmeter.tokens.wasted", **{"tokenmeter.token.class": "input"}) == 20
    cost = PriceBook().cost("openai", "gpt-4o", U2).usd
    assert cap.counter("tokenmeter.cost.wasted") == pytest.approx(2 * float(cost or 0))
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.retried": True}) == 2
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.retried": False}) == 1
    attempts = sorted(
        dict(s.attributes or {})["tokenmeter.retry.attempt"] for s in cap.spans if s.name.startswith("chat")
    )
    assert attempts == [0, 1, 2]
    assert dict(cap.span("invoke_workflow refund").attributes or {})["tokenmeter.rollup.retries"] == 2


def test_last_failed_attempt_propagates_and_failed_steps_are_wasted_once(cap: Capture) -> None:
    with pytest.raises(KeyError), tokenmeter.workflow("w"), tokenmeter.step("s"):
        for attempt in tokenmeter.attempts(2):
            with attempt:
                tokenmeter.record("openai", "gpt-4o", U2)
                raise KeyError("x")
    assert cap.counter("tokenmeter.tokens.wasted", **{"tokenmeter.waste.reason": "retried"}) == 15
    assert cap.counter("tokenmeter.tokens.wasted", **{"tokenmeter.waste.reason": "failed"}) == 15
    assert cap.counter("tokenmeter.tokens.wasted") == 30  # the failing step and workflow add nothing new
    wf = cap.span("invoke_workflow w")
    assert wf.status.status_code.name == "ERROR"
    assert dict(wf.attributes or {})["error.type"] == "KeyError"


def test_generators_keep_their_scope_only_while_running(cap: Capture) -> None:
    @tokenmeter.agent("streamer")
    def produce() -> Iterator[int]:
        for i in range(3):
            assert tokenmeter.current_scope().agent == "streamer"
            tokenmeter.record("openai", "gpt-4o", U2)
            yield i

    with tokenmeter.workflow("w"):
        out = []
        for i in produce():
            assert tokenmeter.current_scope().agent is None  # not leaked into the consumer
            out.append(i)
    assert out == [0, 1, 2]
    agent = dict(cap.span("invoke_agent streamer").attributes or {})
    assert agent["tokenmeter.rollup.calls"] == 3


async def test_async_functions_and_async_generators(cap: Capture) -> None:
    @tokenmeter.tool("search")
    async def search() -> int:
        await asyncio.sleep(0)
        tokenmeter.record("openai", "gpt-4o", U2)
        return tokenmeter.current_scope().depth

    @tokenmeter.step("pages")
    async def pages() -> AsyncIterator[int]:
        for i in range(2):
            tokenmeter.record("openai", "gpt-4o", U2)
            yield i

    @tokenmeter.workflow("research", team="data")
    async def research() -> list[int]:
        depths = await asyncio.gather(search(), search())
        async with tokenmeter.agent("reader"):
            got = [i async for i in pages()]
        return [*depths, *got]

    assert await research() == [1, 1, 0, 1]
    wf = dict(cap.span("invoke_workflow research").attributes or {})
    assert wf["tokenmeter.rollup.calls"] == 4
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.team.name": "data"}) == 4 * U2.total
    reader = cap.span("invoke_agent reader")
    step = cap.span("step pages")
    assert step.parent is not None and step.parent.span_id == reader.context.span_id


def test_exceptions_pass_through_decorators_unchanged(cap: Capture) -> None:
    class Mine(Exception):
        pass

    err = Mine("boom")

    @tokenmeter.workflow("w")
    def f() -> None:
        raise err

    with pytest.raises(Mine) as info:
        f()
    assert info.value is err


def test_capture_is_usable_twice_and_isolated() -> None:
    for _ in range(2):
        with capture() as c:
            tokenmeter.record("openai", "gpt-4o", U2)
            assert c.counter("tokenmeter.tokens") == 15
    assert tokenmeter.active() is None
