"""pydantic-ai: agent runs and tool calls become tokenmeter scopes; tokens metered once by the openai patch.

Real ``pydantic_ai.Agent`` runs on its real ``OpenAIChatModel`` / ``OpenAIResponsesModel`` (the real
``openai`` client) against FakeProvider over loopback HTTP, or the real small model.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest

from .conftest import require

require("pydantic_ai")

from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402

import tokenmeter  # noqa: E402
from tokenmeter.testing import Capture, capture  # noqa: E402
from tokenmeter.testing.fakes import FakeProvider, Reply  # noqa: E402

from .conftest import assert_tool_call, call_spans, tokens, tree  # noqa: E402

FRAMEWORKS = ("pydantic_ai",)
MODEL = "gpt-4o-mini"
CALL = f"chat {MODEL}"


@pytest.fixture(autouse=True)
def _on(instrumented: None) -> None:
    return None


def _agent(url: str, api: str = "chat", **kwargs: Any) -> Agent[None, str]:
    provider = OpenAIProvider(base_url=url, api_key="x")
    model: Any = OpenAIChatModel(MODEL, provider=provider)
    if api == "responses":
        model = OpenAIResponsesModel(MODEL, provider=provider)
    agent: Agent[None, str] = Agent(model, name="calc", instructions="Do arithmetic.", **kwargs)

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    return agent


def _script(fp: FakeProvider) -> None:
    fp.enqueue(
        Reply(tool_call=("add", {"a": 1, "b": 2}), input_tokens=10, output_tokens=5, cached_tokens=1),
        Reply(text="3", input_tokens=20, output_tokens=2),
    )


@pytest.mark.parametrize("mode", ["sync", "async", "stream"])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_agent_run_and_tool_become_scopes(fp: FakeProvider, cap: Capture, api: str, mode: str) -> None:
    _script(fp)
    agent = _agent(fp.url + "/v1", api)
    if mode == "sync":
        output = agent.run_sync("1+2?").output
    elif mode == "async":
        output = asyncio.run(agent.run("1+2?")).output
    else:

        async def stream() -> str:
            async with agent.run_stream("1+2?") as result:
                return "".join([piece async for piece in result.stream_text(delta=True)])

        output = asyncio.run(stream())
    assert output == "3"
    calls = call_spans(cap)
    assert len(fp.requests) == len(calls) == 2
    assert tokens(cap, "input") == 30 and tokens(cap, "cache_read") == 1 and tokens(cap, "output") == 7
    call = calls[0].name
    assert tree(cap) == [
        ("invoke_workflow calc", None, 0),
        ("invoke_agent calc", "invoke_workflow calc", 1),
        (call, "invoke_agent calc", 1),
        ("execute_tool add", "invoke_agent calc", 2),
        (call, "invoke_agent calc", 1),
    ]
    agent_span = dict(cap.span("invoke_agent calc").attributes or {})
    assert agent_span["tokenmeter.rollup.tokens.total"] == 38 and agent_span["tokenmeter.rollup.calls"] == 2
    assert cap.counter("tokenmeter.run.tokens", **{"gen_ai.workflow.name": "calc"}) == 38
    assert_tool_call(cap, "execute_tool add", fp.requests[-1].body)


def test_budget_exceeded_reaches_the_caller_unretried() -> None:
    with FakeProvider() as fp, capture(expected_output_tokens=1) as cap:
        _script(fp)
        agent = _agent(fp.url + "/v1", retries=3)
        with pytest.raises(tokenmeter.BudgetExceeded), tokenmeter.workflow("capped", max_tokens=20):
            agent.run_sync("1+2?")  # the first call (16 tokens) fits, the second cannot
        assert len(fp.requests) == len(call_spans(cap)) == 1
        assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 1
        assert cap.span("invoke_agent calc").status.status_code.name == "ERROR"


def test_next_to_pydantic_ais_own_instrumentation(fp: FakeProvider, cap: Capture) -> None:
    from pydantic_ai.models.instrumented import InstrumentationSettings

    settings = InstrumentationSettings(
        tracer_provider=cap.meter.tracer_provider, meter_provider=cap.meter.meter_provider, version=5
    )
    _script(fp)
    agent = _agent(fp.url + "/v1")
    agent.instrument = settings
    agent.run_sync("1+2?")
    assert tokens(cap, "input") == 30 and tokens(cap, "output") == 7
    names = [n for n, _, _ in tree(cap)]
    assert "invoke_agent calc" in names and names.count(CALL) >= 2  # theirs and ours, one trace
    assert len({s.context.trace_id for s in cap.spans}) == 1
    # gen_ai.client.token.usage: each call once over both instrumentations
    points = cap.points("gen_ai.client.token.usage")
    inputs = [p for p in points if (p.attributes or {}).get("gen_ai.token.type") == "input"]
    assert sum(p.count for p in inputs) == 2
    assert sum(p.sum for p in inputs) == 31  # input including the cached token


def test_no_new_warnings(fp: FakeProvider, cap: Capture) -> None:
    def run() -> list[str]:
        _script(fp)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            asyncio.run(_agent(fp.url + "/v1").run("1+2?"))
        return sorted(f"{w.category.__name__}: {w.message}" for w in caught if w.category is not ResourceWarning)

    with_tokenmeter = run()
    tokenmeter.uninstrument("openai", "pydantic_ai")
    try:
        without = run()
    finally:
        tokenmeter.instrument("openai", "pydantic_ai")
    assert with_tokenmeter == without


def test_real_model_agent_metered_as_the_server_reports(real_llm: str, cap: Capture) -> None:
    provider = OpenAIProvider(base_url=real_llm + "/v1", api_key="local")
    agent: Agent[None, str] = Agent(
        OpenAIChatModel("smollm2-135m", provider=provider), name="colours", model_settings={"max_tokens": 16}
    )
    usage = agent.run_sync("Name three colours.").usage  # the server's numbers, as pydantic-ai received them
    assert usage.requests == 1 and usage.input_tokens > 0 and usage.output_tokens > 0
    assert tokens(cap, "input") == usage.input_tokens and tokens(cap, "output") == usage.output_tokens
    assert tree(cap) == [
        ("invoke_workflow colours", None, 0),
        ("invoke_agent colours", "invoke_workflow colours", 1),
        ("chat smollm2-135m", "invoke_agent colours", 1),
    ]
