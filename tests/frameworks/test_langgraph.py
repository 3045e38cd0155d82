"""LangChain / LangGraph: graph nodes become steps, named graphs agents, tools ``execute_tool``; tokens once.

Real ``langgraph`` graphs call a real ``ChatOpenAI`` (langchain-openai, on the real ``openai`` client) that
talks to FakeProvider over loopback HTTP, or to the real small model.
"""

from __future__ import annotations

import asyncio
import operator
import warnings
from typing import Annotated, Any, TypedDict

import openai
import pytest

from .conftest import require

require("langgraph")
require("langchain_openai")

from langchain_core.tools import tool  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.types import RetryPolicy  # noqa: E402

import tokenmeter  # noqa: E402
from tokenmeter.testing import Capture, capture  # noqa: E402
from tokenmeter.testing.fakes import FakeProvider, Reply  # noqa: E402

from .conftest import assert_tool_call, call_spans, tokens, tree  # noqa: E402

FRAMEWORKS = ("langchain",)
MODEL = "gpt-4o-mini"
CALL = f"chat {MODEL}"


@pytest.fixture(autouse=True)
def _on(instrumented: None) -> None:
    return None


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _llm(fp: FakeProvider) -> ChatOpenAI:
    # Its own async HTTP client: langchain-openai shares one per base URL, bound to the first event loop.
    return ChatOpenAI(
        model=MODEL,
        base_url=fp.url + "/v1",
        api_key="x",  # type: ignore[arg-type]
        max_retries=0,
        http_async_client=openai.DefaultAsyncHttpxClient(),
    )


def _react(fp: FakeProvider) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_react_agent's own deprecation notice (moved to langchain)
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(_llm(fp), [add], name="calc")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_react_agent_tool_and_nodes_become_scopes(fp: FakeProvider, cap: Capture, mode: str) -> None:
    fp.enqueue(
        Reply(tool_call=("add", {"a": 1, "b": 2}), input_tokens=10, output_tokens=5, cached_tokens=3),
        Reply(text="3", input_tokens=20, output_tokens=2),
    )
    graph = _react(fp)
    state = {"messages": [("user", "1+2?")]}
    out = graph.invoke(state) if mode == "sync" else asyncio.run(graph.ainvoke(state))
    assert out["messages"][-1].content == "3"

    calls = call_spans(cap)
    assert len(fp.requests) == len(calls) == 2
    assert all((c.attributes or {}).get("tokenmeter.usage.source") is None for c in calls)
    assert tokens(cap, "input") == 30 and tokens(cap, "cache_read") == 3 and tokens(cap, "output") == 7
    assert tree(cap) == [
        ("invoke_workflow calc", None, 0),
        ("invoke_agent calc", "invoke_workflow calc", 1),
        ("step agent", "invoke_agent calc", 2),
        (CALL, "step agent", 2),
        ("step tools", "invoke_agent calc", 2),
        ("execute_tool add", "step tools", 3),
        ("step agent", "invoke_agent calc", 2),
        (CALL, "step agent", 2),
    ]
    agent = dict(cap.span("invoke_agent calc").attributes or {})
    assert agent["tokenmeter.rollup.tokens.total"] == 10 + 5 + 3 + 20 + 2
    assert agent["tokenmeter.rollup.calls"] == 2 and agent["tokenmeter.rollup.steps"] == 4
    assert cap.counter("tokenmeter.run.tokens", **{"gen_ai.workflow.name": "calc"}) == 40
    assert tokens(cap, "output", **{"gen_ai.agent.name": "calc", "tokenmeter.step.depth": "2"}) == 7
    assert_tool_call(cap, "execute_tool add", fp.requests[-1].body)  # on_tool_start's tool_call_id


class _Fan(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]


def _fan_out_graph(fp: FakeProvider, *, retry: RetryPolicy | None = None) -> Any:
    llm = _llm(fp)

    def node(name: str) -> Any:
        def sync(state: _Fan) -> dict[str, Any]:
            prompt = f"{name} {state['topic']}"
            return {"notes": [f"{name}:{llm.invoke(prompt).content}"]}

        async def run(state: _Fan) -> dict[str, Any]:
            prompt = f"{name} {state['topic']}"
            return {"notes": [f"{name}:{(await llm.ainvoke(prompt)).content}"]}

        from langchain_core.runnables import RunnableLambda

        return RunnableLambda(sync, afunc=run, name=name)

    builder = StateGraph(_Fan)
    for name in ("plan", "left", "right", "write"):
        builder.add_node(name, node(name), retry_policy=retry)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "left")  # parallel fan-out
    builder.add_edge("plan", "right")
    builder.add_edge("left", "write")
    builder.add_edge("right", "write")
    builder.add_edge("write", END)
    return builder.compile()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_parallel_fan_out_nodes_are_sibling_steps(fp: FakeProvider, cap: Capture, mode: str) -> None:
    fp.enqueue(*(Reply(text="ok", input_tokens=4, output_tokens=1) for _ in range(4)))
    graph = _fan_out_graph(fp)
    out = graph.invoke({"topic": "t", "notes": []}) if mode == "sync" else asyncio.run(graph.ainvoke({"topic": "t"}))
    assert len(out["notes"]) == 4
    assert len(fp.requests) == len(call_spans(cap)) == 4
    assert tokens(cap, "input") == 16 and tokens(cap, "output") == 4
    got = tree(cap)
    assert got[0] == ("invoke_workflow LangGraph", None, 0)
    steps = sorted(t for t in got if t[0].startswith("step "))
    assert steps == [(f"step {n}", "invoke_workflow LangGraph", 1) for n in ("left", "plan", "right", "write")]
    calls = sorted(t for t in got if t[0] == CALL)
    assert calls == sorted((CALL, f"step {n}", 1) for n in ("left", "plan", "right", "write"))
    for name in ("left", "right"):
        span = dict(cap.span(f"step {name}").attributes or {})
        assert span["tokenmeter.rollup.tokens.total"] == 5 and span["tokenmeter.rollup.calls"] == 1
    assert cap.count("tokenmeter.run.tokens") == 1
    assert cap.counter("tokenmeter.run.steps", **{"gen_ai.workflow.name": "LangGraph"}) == 4 + 4  # steps + calls


def test_budget_exceeded_is_not_retried_by_a_node_retry_policy() -> None:
    with FakeProvider() as fp, capture(expected_output_tokens=1) as cap:
        fp.enqueue(*(Reply(text="ok", input_tokens=4, output_tokens=1) for _ in range(8)))
        graph = _fan_out_graph(fp, retry=RetryPolicy(max_attempts=3, initial_interval=0.01))
        with pytest.raises(tokenmeter.BudgetExceeded), tokenmeter.workflow("capped", max_tokens=12):
            graph.invoke({"topic": "t", "notes": []})  # plan (5) fits, then left/right cannot both fit
        sent = len(fp.requests)
        assert sent == len(call_spans(cap)) and sent in (1, 2)  # nothing refused was sent, nothing retried
        blocked = cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"})
        assert blocked == 3 - sent  # each refused call refused once: no node retried it
        assert cap.span("invoke_workflow capped").status.status_code.name == "ERROR"


def test_usage_metadata_is_a_flagged_fallback_only_without_a_provider_integration(
    fp: FakeProvider, cap: Capture
) -> None:
    tokenmeter.uninstrument("openai")
    try:
        fp.enqueue(
            Reply(tool_call=("add", {"a": 1, "b": 2}), input_tokens=10, output_tokens=5, cached_tokens=3),
            Reply(text="3", input_tokens=20, output_tokens=2),
        )
        _react(fp).invoke({"messages": [("user", "1+2?")]})
    finally:
        tokenmeter.instrument("openai")
    calls = call_spans(cap)
    assert len(calls) == len(fp.requests) == 2
    for c in calls:
        attrs = dict(c.attributes or {})
        assert attrs["tokenmeter.usage.source"] == "framework" and attrs["tokenmeter.usage.estimated"] is True
        assert attrs["tokenmeter.framework.name"] == "langchain"
    assert tokens(cap, "input") == 30 and tokens(cap, "cache_read") == 3 and tokens(cap, "output") == 7
    assert [p for _, p, _ in tree(cap) if p is not None and p.startswith("step")] != []


@pytest.mark.parametrize("stream_mode", ["messages", "updates"])
def test_streamed_graph_metered_once(fp: FakeProvider, cap: Capture, stream_mode: str) -> None:
    fp.enqueue(
        Reply(tool_call=("add", {"a": 1, "b": 2}), input_tokens=10, output_tokens=5),
        Reply(text="three", input_tokens=20, output_tokens=2),
    )
    list(_react(fp).stream({"messages": [("user", "1+2?")]}, stream_mode=stream_mode))
    calls = call_spans(cap)
    assert len(fp.requests) == len(calls) == 2
    assert all((c.attributes or {}).get("tokenmeter.usage.estimated") is False for c in calls)
    assert tokens(cap, "input") == 30 and tokens(cap, "output") == 7
    assert [n for n, _, _ in tree(cap) if n != CALL] == [
        "invoke_workflow calc",
        "invoke_agent calc",
        "step agent",
        "step tools",
        "execute_tool add",
        "step agent",
    ]


def test_no_new_warnings(fp: FakeProvider, cap: Capture) -> None:
    def run() -> list[str]:
        fp.enqueue(*(Reply(text="ok", input_tokens=4, output_tokens=1) for _ in range(4)))
        graph = _fan_out_graph(fp)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            graph.invoke({"topic": "t", "notes": []})
        return sorted(f"{w.category.__name__}: {w.message}" for w in caught if w.category is not ResourceWarning)

    with_tokenmeter = run()
    tokenmeter.uninstrument("openai", "langchain")
    try:
        without = run()
    finally:
        tokenmeter.instrument("openai", "langchain")
    assert with_tokenmeter == without


def test_real_model_graph_metered_as_the_server_reports(real_llm: str, cap: Capture) -> None:
    llm = ChatOpenAI(model="smollm2-135m", base_url=real_llm + "/v1", api_key="local", max_tokens=16)  # type: ignore[arg-type]
    seen: list[Any] = []

    def answer(state: _Fan) -> dict[str, Any]:
        message = llm.invoke("Name three colours.")
        seen.append(message.usage_metadata)  # the server's own numbers, as langchain received them
        return {"notes": [str(message.content)]}

    builder = StateGraph(_Fan)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    builder.compile(name="colours").invoke({"topic": "colours", "notes": []})
    (usage,) = seen
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert tokens(cap, "input") == usage["input_tokens"]
    assert tokens(cap, "output") == usage["output_tokens"]
    assert tree(cap) == [
        ("invoke_workflow colours", None, 0),
        ("invoke_agent colours", "invoke_workflow colours", 1),
        ("step answer", "invoke_agent colours", 2),
        ("chat smollm2-135m", "step answer", 2),
    ]


def test_a_users_scope_inside_an_async_node_nests_under_the_node(fp: FakeProvider, cap: Capture) -> None:
    llm = _llm(fp)

    async def research(state: _Fan) -> dict[str, Any]:
        async with tokenmeter.step("summarise"):  # the user's own scope, inside LangGraph's node
            message = await llm.ainvoke("summarise")
        return {"notes": [str(message.content)]}

    builder = StateGraph(_Fan)
    builder.add_node("research", research)
    builder.add_edge(START, "research")
    builder.add_edge("research", END)
    fp.enqueue(Reply(text="ok", input_tokens=4, output_tokens=1))
    asyncio.run(builder.compile().ainvoke({"topic": "t", "notes": []}))
    assert tree(cap) == [
        ("invoke_workflow LangGraph", None, 0),
        ("step research", "invoke_workflow LangGraph", 1),
        ("step summarise", "step research", 2),
        (CALL, "step summarise", 2),
    ]
    # and nothing leaks into the caller's context afterwards
    assert tokenmeter.current_scope().run is None


def test_instrument_installs_importable_frameworks_and_langgraph_names_the_langchain_adapter() -> None:
    active = tokenmeter.instrument()
    assert {"openai", "openai_agents", "langchain", "pydantic_ai"} <= set(active)
    assert "langgraph" in tokenmeter.instrument("langgraph")
    tokenmeter.uninstrument("langgraph")  # the same adapter: both names go
    assert "langchain" not in tokenmeter.instrumented() and "langgraph" not in tokenmeter.instrumented()
    tokenmeter.uninstrument()
    assert tokenmeter.instrumented() == []
    tokenmeter.instrument("openai", "langchain")  # what the fixture restores
