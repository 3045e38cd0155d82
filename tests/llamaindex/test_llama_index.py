"""LlamaIndex: a real ``FunctionAgent`` / ``Workflow`` on the real ``llama_index.llms.openai.OpenAI`` LLM (the
real ``openai`` 2.x client) against FakeProvider over loopback HTTP: steps, agents and tools become scopes and
tokens are metered once, by the openai integration.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest

pytest.importorskip("llama_index.core", reason="LlamaIndex runs in .venv-llamaindex: make llamaindex-venv")
pytest.importorskip("llama_index.llms.openai", reason="LlamaIndex runs in .venv-llamaindex: make llamaindex-venv")

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context, StartEvent, StopEvent, Workflow, step
from llama_index.llms.openai import OpenAI

import tokenmeter
from tests.frameworks.conftest import call_spans, tokens, tree
from tokenmeter.testing import Capture, capture
from tokenmeter.testing.fakes import FakeProvider, Reply

MODEL = "gpt-4o-mini"
CALL = f"chat {MODEL}"


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _agent(fp: FakeProvider) -> FunctionAgent:
    llm = OpenAI(model=MODEL, api_base=fp.url + "/v1", api_key="x", max_retries=0)
    return FunctionAgent(name="calc", tools=[FunctionTool.from_defaults(add)], llm=llm, system_prompt="math")


def _run(fp: FakeProvider) -> Any:
    async def run() -> Any:  # a workflow agent is built inside the event loop that runs it
        return await _agent(fp).run("1+2?")

    return asyncio.run(run())


def _script(fp: FakeProvider) -> None:
    fp.enqueue(
        Reply(tool_call=("add", {"a": 1, "b": 2}), input_tokens=10, output_tokens=5, cached_tokens=2),
        Reply(text="3", input_tokens=20, output_tokens=2),
    )


def test_function_agent_steps_and_tool_become_scopes(fp: FakeProvider, cap: Capture) -> None:
    _script(fp)
    result = _run(fp)
    assert str(result) == "3"
    calls = call_spans(cap)
    assert len(fp.requests) == len(calls) == 2
    assert all((c.attributes or {}).get("tokenmeter.usage.estimated") is False for c in calls)
    assert tokens(cap, "input") == 30 and tokens(cap, "cache_read") == 2 and tokens(cap, "output") == 7
    spans = tree(cap)
    assert spans[:2] == [("invoke_workflow calc", None, 0), ("invoke_agent calc", "invoke_workflow calc", 1)]
    assert [t for t in spans if t[0] == CALL] == [(CALL, "step run_agent_step", 2)] * 2
    assert ("execute_tool add", "step call_tool", 3) in spans
    assert all(parent == "invoke_agent calc" and depth == 2 for name, parent, depth in spans if name.startswith("step"))
    agent = dict(cap.span("invoke_agent calc").attributes or {})
    assert agent["tokenmeter.rollup.tokens.total"] == 39 and agent["tokenmeter.rollup.calls"] == 2
    assert cap.counter("tokenmeter.run.tokens", **{"gen_ai.workflow.name": "calc"}) == 39
    # The tool span names the model's call id (from the agent's ToolCall event), echoed back with the result.
    tool = dict(cap.span("execute_tool add").attributes or {})
    assert tool["gen_ai.tool.type"] == "function"
    call_id = tool["gen_ai.tool.call.id"]
    assert isinstance(call_id, str) and call_id.startswith("call_") and call_id.encode() in fp.requests[-1].body


class _Pipeline(Workflow):
    def __init__(self, llm: OpenAI) -> None:
        super().__init__(timeout=30)
        self.llm = llm

    @step
    async def draft(self, ctx: Context, ev: StartEvent) -> StopEvent:
        reply = await self.llm.acomplete(str(ev.get("topic")))
        return StopEvent(result=str(reply))


def test_custom_workflow_steps_inside_the_users_workflow(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(text="done", input_tokens=6, output_tokens=1))
    llm = OpenAI(model=MODEL, api_base=fp.url + "/v1", api_key="x", max_retries=0)

    async def run() -> Any:
        async with tokenmeter.workflow("publish", team="content"):
            return await _Pipeline(llm).run(topic="otel")

    assert str(asyncio.run(run())) == "done"
    assert tree(cap) == [
        ("invoke_workflow publish", None, 0),
        ("step draft", "invoke_workflow publish", 1),
        (CALL, "step draft", 1),
    ]
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.team.name": "content"}) == 7


def test_budget_exceeded_stops_the_agent_and_reaches_the_caller() -> None:
    with FakeProvider() as fp, capture(expected_output_tokens=1) as cap:
        _script(fp)

        async def run() -> Any:
            async with tokenmeter.workflow("capped", max_tokens=20):
                return await _agent(fp).run("1+2?")

        with pytest.raises(tokenmeter.BudgetExceeded):
            asyncio.run(run())
        assert len(fp.requests) == len(call_spans(cap)) == 1  # the refused call was never sent nor retried
        assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 1


def test_no_new_warnings(fp: FakeProvider, cap: Capture) -> None:
    def run() -> list[str]:
        _script(fp)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _run(fp)
        return sorted(f"{w.category.__name__}: {w.message}" for w in caught if w.category is not ResourceWarning)

    with_tokenmeter = run()
    tokenmeter.uninstrument("openai", "llama_index")
    try:
        without = run()
    finally:
        tokenmeter.instrument("openai", "llama_index")
    assert with_tokenmeter == without
