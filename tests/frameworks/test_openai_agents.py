"""OpenAI Agents SDK: agents, tools, handoffs and guardrails become tokenmeter scopes; tokens metered once.

The real ``agents`` Runner drives its real OpenAI models (Responses and Chat Completions) through a real
``AsyncOpenAI`` client to FakeProvider over loopback HTTP, or to the real small model.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import require

require("agents")

import agents  # noqa: E402
from agents import (  # noqa: E402
    Agent,
    GuardrailFunctionOutput,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    input_guardrail,
)
from openai import AsyncOpenAI  # noqa: E402

import tokenmeter  # noqa: E402
from tokenmeter.integrations.openai_agents import PROCESSOR  # noqa: E402
from tokenmeter.testing import Capture  # noqa: E402
from tokenmeter.testing.fakes import FakeProvider, Reply  # noqa: E402

from .conftest import assert_tool_call, call_spans, tokens, tree  # noqa: E402

FRAMEWORKS = ("openai_agents",)
MODEL = "gpt-4o-mini"
WORKFLOW = "invoke_workflow Agent workflow"


@pytest.fixture(autouse=True)
def _processors(instrumented: None) -> Iterator[None]:
    # Only tokenmeter's processor: the SDK's default one would export traces to the OpenAI platform.
    agents.set_trace_processors([PROCESSOR])  # type: ignore[list-item]
    yield
    agents.set_trace_processors([])


@function_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _agents(client: AsyncOpenAI, api: str) -> Agent[Any]:
    def model() -> Any:
        if api == "responses":
            return OpenAIResponsesModel(MODEL, client)
        return OpenAIChatCompletionsModel(MODEL, client)

    math = Agent(name="math", instructions="Do arithmetic.", tools=[add], model=model())
    return Agent(name="triage", instructions="Route to math.", handoffs=[math], model=model())


def _script(fp: FakeProvider) -> None:
    fp.enqueue(
        Reply(tool_call=("transfer_to_math", {}), input_tokens=11, output_tokens=3),
        Reply(tool_call=("add", {"a": 1, "b": 2}), input_tokens=12, output_tokens=4, cached_tokens=2),
        Reply(text="3", input_tokens=13, output_tokens=5),
    )


def _run(url: str, api: str, sync: bool, *, retries: int = 0) -> Any:
    """Run triage -> math with a fresh client (closed in the loop that used it)."""
    if sync:
        return Runner.run_sync(_agents(AsyncOpenAI(base_url=url, api_key="x", max_retries=retries), api), "1+2?")

    async def run() -> Any:
        async with AsyncOpenAI(base_url=url, api_key="x", max_retries=retries) as client:
            return await Runner.run(_agents(client, api), "1+2?")

    return asyncio.run(run())


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
@pytest.mark.parametrize("api", ["responses", "chat"])
def test_handoff_and_tool_become_scopes_and_tokens_are_metered_once(
    fp: FakeProvider, cap: Capture, api: str, sync: bool
) -> None:
    _script(fp)
    result = _run(fp.url + "/v1", api, sync)
    assert result.final_output == "3"

    calls = call_spans(cap)
    assert len(fp.requests) == len(calls) == 3  # requests seen by the server = metered calls
    assert all((c.attributes or {}).get("tokenmeter.usage.source") is None for c in calls)
    assert tokens(cap, "input") == 11 + 12 + 13
    assert tokens(cap, "cache_read") == 2
    assert tokens(cap, "output") == 3 + 4 + 5

    call = f"{calls[0].name}"
    assert tree(cap) == [
        (WORKFLOW, None, 0),
        ("invoke_agent triage", WORKFLOW, 1),
        (call, "invoke_agent triage", 1),
        ("invoke_agent math", WORKFLOW, 1),  # a handoff keeps the depth of the agent it replaces
        (call, "invoke_agent math", 1),
        ("execute_tool add", "invoke_agent math", 2),
        (call, "invoke_agent math", 1),
    ]
    triage, math, workflow = cap.span("invoke_agent triage"), cap.span("invoke_agent math"), cap.span(WORKFLOW)
    (event,) = [e for e in triage.events if e.name == "tokenmeter.handoff"]
    assert dict(event.attributes or {}) == {"tokenmeter.handoff.from": "triage", "tokenmeter.handoff.to": "math"}
    assert (math.attributes or {})["tokenmeter.handoff.from"] == "triage"
    assert (math.attributes or {})["gen_ai.agent.name"] == "math"
    assert (math.attributes or {})["tokenmeter.rollup.tokens.total"] == 12 + 4 + 2 + 13 + 5
    assert (workflow.attributes or {})["tokenmeter.rollup.tokens.total"] == 11 + 3 + 12 + 4 + 2 + 13 + 5
    assert (workflow.attributes or {})["tokenmeter.rollup.calls"] == 3
    assert cap.counter("tokenmeter.run.tokens", **{"gen_ai.workflow.name": "Agent workflow"}) == 50
    assert cap.count("tokenmeter.run.tokens") == 1
    # The agent's name reaches the call metrics.
    assert tokens(cap, "output", **{"gen_ai.agent.name": "math"}) == 4 + 5
    # The tool span names the model's call id: the one the SDK sent back with the tool's result.
    assert_tool_call(cap, "execute_tool add", fp.requests[-1].body)
    assert "gen_ai.tool.call.id" not in (cap.span("invoke_agent math").attributes or {})


def test_a_users_workflow_holds_the_agent_run(fp: FakeProvider, cap: Capture) -> None:
    _script(fp)
    with tokenmeter.workflow("support", team="care"):
        _run(fp.url + "/v1", "chat", sync=True)
    names = [n for n, _, _ in tree(cap)]
    assert names.count("invoke_workflow support") == 1 and WORKFLOW not in names
    assert tokens(cap, "input", **{"tokenmeter.team.name": "care", "gen_ai.workflow.name": "support"}) == 36


def test_guardrail_is_a_step(fp: FakeProvider, cap: Capture) -> None:
    @input_guardrail
    async def polite(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered=False)

    client = AsyncOpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0)
    agent = Agent(
        name="solo",
        instructions="Be brief.",
        input_guardrails=[polite],
        model=OpenAIChatCompletionsModel(MODEL, client),
    )
    fp.enqueue(Reply(text="hi", input_tokens=7, output_tokens=2))
    Runner.run_sync(agent, "hello")
    step = cap.span("step polite")
    assert (step.attributes or {})["tokenmeter.guardrail.triggered"] is False
    assert (step.attributes or {})["tokenmeter.step.kind"] == "guardrail"
    assert (step.attributes or {})["tokenmeter.step.depth"] == 2
    assert len(fp.requests) == len(call_spans(cap)) == 1


def test_budget_exceeded_stops_the_run_and_reaches_the_caller(fp: FakeProvider) -> None:
    from tokenmeter.testing import capture

    with capture(expected_output_tokens=1) as cap:
        _script(fp)
        with pytest.raises(tokenmeter.BudgetExceeded), tokenmeter.workflow("capped", max_tokens=20):
            # the first call (14 tokens) fits; the second, with the first one's tokens counted, does not
            _run(fp.url + "/v1", "responses", sync=False, retries=2)
        assert len(fp.requests) == 1  # refused before sending, not retried by the SDK or the Runner
        assert len(call_spans(cap)) == 1  # the refused call is counted blocked, with no call span
        assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 1
        math = cap.span("invoke_agent math")
        assert math.status.status_code.name == "ERROR"


def test_framework_usage_is_a_flagged_fallback_only_where_no_integration_metered(
    fp: FakeProvider, cap: Capture
) -> None:
    tokenmeter.uninstrument("openai")  # the model's client is not metered: the SDK's usage report is
    try:
        _script(fp)
        _run(fp.url + "/v1", "responses", sync=False)
    finally:
        tokenmeter.instrument("openai")
    calls = call_spans(cap)
    assert len(calls) == len(fp.requests) == 3
    for c in calls:
        attrs = dict(c.attributes or {})
        assert attrs["tokenmeter.usage.source"] == "framework"
        assert attrs["tokenmeter.usage.estimated"] is True
    assert tokens(cap, "input") == 36 and tokens(cap, "cache_read") == 2 and tokens(cap, "output") == 12
    assert [p for p, _, _ in tree(cap) if p.startswith("invoke_agent")] == ["invoke_agent triage", "invoke_agent math"]


def test_no_new_warnings(fp: FakeProvider, cap: Capture) -> None:
    def run() -> list[str]:
        _script(fp)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _run(fp.url + "/v1", "responses", sync=False)
        # ResourceWarnings of sockets depend on when the garbage collector runs: not tokenmeter's to compare.
        return sorted(f"{w.category.__name__}: {w.message}" for w in caught if w.category is not ResourceWarning)

    with_tokenmeter = run()
    tokenmeter.uninstrument("openai", "openai_agents")
    try:
        without = run()
    finally:
        tokenmeter.instrument("openai", "openai_agents")
    assert with_tokenmeter == without


def test_real_model_agent_metered_as_the_server_reports(real_llm: str, cap: Capture) -> None:
    client = AsyncOpenAI(base_url=real_llm + "/v1", api_key="local")
    agent = Agent(
        name="colours",
        instructions="You are terse.",
        model=OpenAIChatCompletionsModel("smollm2-135m", client),
        model_settings=agents.ModelSettings(max_tokens=16),
    )
    result = Runner.run_sync(agent, "Name three colours.")
    usage = result.context_wrapper.usage  # the server's own numbers, as the SDK received them
    assert usage.requests == 1 and usage.input_tokens > 0 and usage.output_tokens > 0
    assert tokens(cap, "input") == usage.input_tokens
    assert tokens(cap, "output") == usage.output_tokens
    assert tree(cap) == [
        (WORKFLOW, None, 0),
        ("invoke_agent colours", WORKFLOW, 1),
        ("chat smollm2-135m", "invoke_agent colours", 1),
    ]


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_streamed_run_metered_exactly(fp: FakeProvider, cap: Capture, api: str) -> None:
    async def run() -> Any:
        async with AsyncOpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0) as client:
            result = Runner.run_streamed(_agents(client, api), "1+2?")
            async for _event in result.stream_events():
                pass
            return result

    _script(fp)
    result = asyncio.run(run())
    assert result.final_output == "3"
    calls = call_spans(cap)
    assert len(fp.requests) == len(calls) == 3
    assert all((c.attributes or {}).get("tokenmeter.usage.estimated") is False for c in calls)
    assert tokens(cap, "input") == 36 and tokens(cap, "cache_read") == 2 and tokens(cap, "output") == 12
    assert [n for n, _, _ in tree(cap) if not n.startswith("chat")] == [
        WORKFLOW,
        "invoke_agent triage",
        "invoke_agent math",
        "execute_tool add",
    ]


def test_budget_exceeded_inside_a_tool_still_stops_the_run(fp: FakeProvider) -> None:
    from openai import OpenAI

    from tokenmeter.testing import capture

    with capture(expected_output_tokens=1) as cap:
        inner = OpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0)

        @function_tool
        def research(topic: str) -> str:
            """Research a topic with another model call."""
            reply = inner.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": topic * 40}])
            return reply.choices[0].message.content or ""

        async def run() -> Any:
            async with AsyncOpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0) as client:
                agent = Agent(name="solo", tools=[research], model=OpenAIChatCompletionsModel(MODEL, client))
                return await Runner.run(agent, "go")

        fp.enqueue(Reply(tool_call=("research", {"topic": "x"}), input_tokens=10, output_tokens=3))
        with pytest.raises(tokenmeter.BudgetExceeded), tokenmeter.workflow("capped", max_tokens=20):
            # the tool's call (a 40-token prompt) is refused; the SDK hands the tool's error to the model,
            # and the agent's next model call is refused too: the run stops, the caller sees BudgetExceeded
            asyncio.run(run())
        assert len(fp.requests) == len(call_spans(cap)) == 1
        assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 2
        assert cap.span("execute_tool research").status.status_code.name == "ERROR"
