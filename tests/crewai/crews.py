"""The crew the CrewAI tests drive: two agents (one with a tool), two tasks, sequential, on CrewAI's native
OpenAI provider (the real ``openai`` 2.x client) pointed at a loopback server. Imported only by test modules
that found CrewAI importable."""

from __future__ import annotations

import asyncio
from typing import Any

from crewai import LLM, Agent, Crew, Process, Task
from crewai.tools import tool

from tokenmeter.testing.fakes import FakeProvider, Reply

MODEL = "gpt-4o-mini"
CALL = f"chat {MODEL}"
CREW = "invoke_workflow math crew"


@tool("add")
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def llm(url: str, model: str = MODEL, **options: Any) -> LLM:
    """CrewAI's native OpenAI provider on ``url`` (no SDK retries)."""
    return LLM(model=f"openai/{model}", base_url=url + "/v1", api_key="x", max_retries=0, **options)


def math_crew(url: str, *, tools: list[Any] | None = None) -> Crew:
    """The "math crew": calculator (with ``tools``, default ``add``) on task "sum", writer on task "words"."""
    calc = Agent(role="calculator", goal="Add numbers", backstory="Precise.", llm=llm(url), tools=tools or [add])
    writer = Agent(role="writer", goal="Write numbers in words", backstory="Terse.", llm=llm(url))
    total = Task(description="What is 1+2?", expected_output="a number", agent=calc, name="sum")
    words = Task(
        description="Write the sum in words.", expected_output="words", agent=writer, name="words", context=[total]
    )
    return Crew(agents=[calc, writer], tasks=[total, words], process=Process.sequential, name="math crew")


def script(fp: FakeProvider) -> None:
    """The server's replies for :func:`math_crew`: a tool call, the calculator's answer, the writer's."""
    fp.enqueue(
        Reply(tool_call=("add", {"a": 1, "b": 2}), input_tokens=10, output_tokens=5, cached_tokens=3),
        Reply(text="3", input_tokens=20, output_tokens=2),
        Reply(text="three", input_tokens=30, output_tokens=3),
    )


def kickoff(crew: Crew, mode: str) -> Any:
    """``crew.kickoff()`` (sync), in a worker thread (``kickoff_async``) or natively async (``akickoff``)."""
    if mode == "sync":
        return crew.kickoff()
    if mode == "kickoff_async":  # the sync kickoff in a worker thread
        return asyncio.run(crew.kickoff_async())
    return asyncio.run(crew.akickoff())  # native async


TREE = [  # what math_crew + script make: (span, parent, tokenmeter.step.depth) in start order
    (CREW, None, 0),
    ("step sum", CREW, 1),
    ("invoke_agent calculator", "step sum", 2),
    (CALL, "invoke_agent calculator", 2),
    ("execute_tool add", "invoke_agent calculator", 3),
    (CALL, "invoke_agent calculator", 2),
    ("step words", CREW, 1),
    ("invoke_agent writer", "step words", 2),
    (CALL, "invoke_agent writer", 2),
]
