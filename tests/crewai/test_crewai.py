"""CrewAI: a real crew (agents, tasks, a tool, sequential and hierarchical processes, flows) on CrewAI's native
OpenAI provider (the real ``openai`` 2.x client) against FakeProvider over loopback HTTP, and against the real
small model: crews become workflows, tasks steps, agents agents and tools ``execute_tool``; tokens are metered
once, by the openai integration, as the server reported them.
"""

from __future__ import annotations

import pytest

pytest.importorskip("crewai", reason="CrewAI runs in .venv-crewai: make crewai-venv")

from crewai import LLM, Agent, Crew, Process, Task
from crewai.tools import tool
from openai import OpenAI

import tokenmeter
from tests.frameworks.conftest import call_spans, tokens, tree
from tokenmeter.testing import Capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from .crews import CALL, CREW, MODEL, TREE, add, kickoff, llm, math_crew, script


@pytest.mark.parametrize("mode", ["sync", "kickoff_async", "akickoff"])
def test_crew_tasks_agents_and_tool_become_scopes(fp: FakeProvider, cap: Capture, mode: str) -> None:
    script(fp)
    crew = math_crew(fp.url)
    out = kickoff(crew, mode)
    assert out.raw == "three"

    calls = call_spans(cap)
    assert len(fp.requests) == len(calls) == 3  # the tool round trip included: every request metered once
    assert all((c.attributes or {})["tokenmeter.usage.estimated"] is False for c in calls)
    assert tokens(cap, "input") == 10 + 20 + 30 and tokens(cap, "cache_read") == 3
    assert tokens(cap, "output") == 5 + 2 + 3 and tokens(cap, "reasoning") == 0
    usage = crew.usage_metrics  # what CrewAI itself read from the same responses
    assert usage is not None and usage.successful_requests == 3
    assert tokens(cap, "input") + tokens(cap, "cache_read") == usage.prompt_tokens
    assert tokens(cap, "output") == usage.completion_tokens

    assert tree(cap) == TREE
    workflow = dict(cap.span(CREW).attributes or {})
    assert workflow["tokenmeter.rollup.tokens.total"] == 73 and workflow["tokenmeter.rollup.calls"] == 3
    assert workflow["tokenmeter.framework.name"] == "crewai"
    calculator = dict(cap.span("invoke_agent calculator").attributes or {})
    assert calculator["tokenmeter.rollup.tokens.total"] == 10 + 3 + 5 + 20 + 2
    assert calculator["tokenmeter.rollup.calls"] == 2 and calculator["gen_ai.agent.name"] == "calculator"
    assert (cap.span("execute_tool add").attributes or {})["gen_ai.tool.name"] == "add"
    assert {(c.attributes or {})["gen_ai.agent.name"] for c in calls} == {"calculator", "writer"}
    assert cap.counter("tokenmeter.run.tokens", **{"gen_ai.workflow.name": "math crew"}) == 73
    assert cap.count("tokenmeter.run.tokens") == 1  # one run: the crew


def test_streamed_crew_metered_exactly(fp: FakeProvider, cap: Capture) -> None:
    # LLM(stream=True): CrewAI asks for the usage chunk itself; tokenmeter meters the stream it reads
    fp.enqueue(
        Reply(tool_call=("add", {"a": 1, "b": 2}), input_tokens=10, output_tokens=5, cached_tokens=3),
        Reply(text="3", input_tokens=20, output_tokens=2),
    )
    calc = Agent(role="calculator", goal="Add", backstory="Precise.", llm=llm(fp.url, stream=True), tools=[add])
    crew = Crew(agents=[calc], tasks=[Task(description="1+2?", expected_output="n", agent=calc, name="sum")])
    assert crew.kickoff().raw == "3"
    calls = call_spans(cap)
    assert len(fp.requests) == len(calls) == 2
    assert all(r.json["stream"] is True for r in fp.requests)
    assert all((c.attributes or {})["tokenmeter.usage.estimated"] is False for c in calls)
    assert tokens(cap, "input") == 30 and tokens(cap, "cache_read") == 3 and tokens(cap, "output") == 7
    assert [(n, p) for n, p, _ in tree(cap)] == [
        ("invoke_workflow crew", None),
        ("step sum", "invoke_workflow crew"),
        ("invoke_agent calculator", "step sum"),
        (CALL, "invoke_agent calculator"),
        ("execute_tool add", "invoke_agent calculator"),
        (CALL, "invoke_agent calculator"),
    ]


def test_hierarchical_delegation_nests_the_coworker_under_the_managers_tool(fp: FakeProvider, cap: Capture) -> None:
    delegate = {"task": "add 1 and 2", "context": "math", "coworker": "calculator"}
    fp.enqueue(
        Reply(tool_call=("Delegate work to coworker", delegate), input_tokens=11, output_tokens=4),
        Reply(text="3", input_tokens=20, output_tokens=2),
        Reply(text="The answer is 3", input_tokens=30, output_tokens=3),
    )
    calc = Agent(role="calculator", goal="Add", backstory="Precise.", llm=llm(fp.url), allow_delegation=False)
    manager = Agent(role="manager", goal="Manage", backstory="Busy.", llm=llm(fp.url), allow_delegation=True)
    task = Task(description="What is 1+2?", expected_output="a number", name="sum")
    crew = Crew(agents=[calc], tasks=[task], process=Process.hierarchical, manager_agent=manager, name="math crew")
    assert crew.kickoff().raw == "The answer is 3"
    assert len(fp.requests) == len(call_spans(cap)) == 3
    assert tree(cap) == [
        (CREW, None, 0),
        ("step sum", CREW, 1),
        ("invoke_agent manager", "step sum", 2),
        (CALL, "invoke_agent manager", 2),
        ("execute_tool delegate_work_to_coworker", "invoke_agent manager", 3),
        ("invoke_agent calculator", "execute_tool delegate_work_to_coworker", 4),
        (CALL, "invoke_agent calculator", 4),
        (CALL, "invoke_agent manager", 2),
    ]
    # the server's usage, once (CrewAI's own crew.usage_metrics counts the coworker's call twice here)
    assert tokens(cap, "input") == 61 and tokens(cap, "output") == 9
    assert cap.counter("tokenmeter.run.tokens", **{"gen_ai.workflow.name": "math crew"}) == 70


def test_async_tasks_in_threads_nest_under_their_own_agent(fp: FakeProvider, cap: Capture) -> None:
    # Two tasks with async_execution run at once in CrewAI's worker threads; each agent has its own model,
    # echoed by the server, so every call span can be matched to the agent that made it.
    fp.enqueue(*(Reply(text="ok", input_tokens=7 * (i + 1), output_tokens=i + 1) for i in range(3)))
    calc = Agent(role="calculator", goal="Add", backstory="Precise.", llm=llm(fp.url, "gpt-4o-mini"))
    writer = Agent(role="writer", goal="Write", backstory="Terse.", llm=llm(fp.url, "gpt-4o"))
    first = Task(description="Add 1 and 2.", expected_output="a number", agent=calc, name="a", async_execution=True)
    second = Task(description="Say hi.", expected_output="a word", agent=writer, name="b", async_execution=True)
    last = Task(description="Sum up.", expected_output="a line", agent=calc, name="c", context=[first, second])
    Crew(agents=[calc, writer], tasks=[first, second, last], process=Process.sequential, name="math crew").kickoff()

    assert len(fp.requests) == len(call_spans(cap)) == 3
    assert sorted(tree(cap)) == sorted(
        [
            (CREW, None, 0),
            ("step a", CREW, 1),
            ("step b", CREW, 1),
            ("step c", CREW, 1),
            ("invoke_agent calculator", "step a", 2),
            ("invoke_agent writer", "step b", 2),
            ("invoke_agent calculator", "step c", 2),
            ("chat gpt-4o-mini", "invoke_agent calculator", 2),
            ("chat gpt-4o", "invoke_agent writer", 2),
            ("chat gpt-4o-mini", "invoke_agent calculator", 2),
        ]
    )
    assert tokens(cap, "input") == 7 + 14 + 21 and tokens(cap, "output") == 1 + 2 + 3
    assert cap.counter("tokenmeter.run.tokens", **{"gen_ai.workflow.name": "math crew"}) == 42 + 6


def test_user_scopes_and_calls_inside_a_tool_nest_under_it(fp: FakeProvider, cap: Capture) -> None:
    inner = OpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0)

    @tool("research")
    def research(topic: str) -> str:
        """Research a topic with another model call."""
        with tokenmeter.step("lookup"):
            reply = inner.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": topic}])
        return reply.choices[0].message.content or ""

    fp.enqueue(
        Reply(tool_call=("research", {"topic": "sums"}), input_tokens=10, output_tokens=3),
        Reply(text="found", input_tokens=4, output_tokens=1),
        Reply(text="3", input_tokens=20, output_tokens=2),
        Reply(text="three", input_tokens=30, output_tokens=3),
    )
    math_crew(fp.url, tools=[research]).kickoff()
    assert len(fp.requests) == len(call_spans(cap)) == 4
    assert ("step lookup", "execute_tool research", 4) in tree(cap)
    assert (CALL, "step lookup", 4) in tree(cap)


def test_flow_methods_are_steps_and_a_crew_inside_is_a_step_of_the_flows_run(fp: FakeProvider, cap: Capture) -> None:
    from crewai.flow.flow import Flow, listen, start

    fp.enqueue(Reply(text="3", input_tokens=20, output_tokens=2), Reply(text="THREE", input_tokens=5, output_tokens=1))
    inner = OpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0)

    class MathFlow(Flow):  # type: ignore[type-arg]
        @start()
        def compute(self) -> str:
            calc = Agent(role="calculator", goal="Add", backstory="Precise.", llm=llm(fp.url))
            task = Task(description="1+2?", expected_output="n", agent=calc, name="sum")
            return str(Crew(agents=[calc], tasks=[task], name="math crew").kickoff().raw)

        @listen(compute)
        def announce(self, result: str) -> str:
            reply = inner.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": result}])
            return reply.choices[0].message.content or ""

    assert MathFlow().kickoff() == "THREE"
    assert len(fp.requests) == len(call_spans(cap)) == 2
    assert tree(cap) == [
        ("invoke_workflow MathFlow", None, 0),
        ("step compute", "invoke_workflow MathFlow", 1),
        ("step math crew", "step compute", 2),
        ("step sum", "step math crew", 3),
        ("invoke_agent calculator", "step sum", 4),
        (CALL, "invoke_agent calculator", 4),
        ("step announce", "invoke_workflow MathFlow", 1),
        (CALL, "step announce", 1),
    ]
    assert cap.count("tokenmeter.run.tokens") == 1  # one run: the flow (its crew is a step of it)
    assert cap.counter("tokenmeter.run.tokens", **{"gen_ai.workflow.name": "MathFlow"}) == 28


def test_agent_kickoff_outside_a_crew_is_its_own_run(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(text="hi", input_tokens=9, output_tokens=2))
    agent = Agent(role="greeter", goal="Greet", backstory="Kind.", llm=llm(fp.url))
    agent.kickoff("Say hi.")
    assert tree(cap) == [
        ("invoke_workflow greeter", None, 0),
        ("invoke_agent greeter", "invoke_workflow greeter", 1),
        (CALL, "invoke_agent greeter", 1),
    ]
    assert cap.counter("tokenmeter.run.tokens", **{"gen_ai.workflow.name": "greeter"}) == 11


def test_real_model_crew_metered_as_the_server_reports(real_llm: str, cap: Capture) -> None:
    def llm() -> LLM:
        return LLM(
            model="openai/smollm2-135m",
            base_url=real_llm + "/v1",
            api_key="local",
            max_tokens=16,
            temperature=0,
            max_retries=0,
        )

    poet = Agent(role="poet", goal="Name colours", backstory="Terse.", llm=llm(), max_iter=1)
    critic = Agent(role="critic", goal="Judge lists", backstory="Terse.", llm=llm(), max_iter=1)
    colours = Task(description="Name three colours.", expected_output="three colours", agent=poet, name="colours")
    verdict = Task(description="Is the list good?", expected_output="yes or no", agent=critic, name="verdict")
    crew = Crew(agents=[poet, critic], tasks=[colours, verdict], process=Process.sequential, name="art crew")
    crew.kickoff()

    usage = crew.usage_metrics  # the server's own numbers, as CrewAI read them from each response
    assert usage is not None and usage.successful_requests >= 2 and usage.completion_tokens > 0
    calls = call_spans(cap)
    assert len(calls) == usage.successful_requests
    assert all((c.attributes or {})["tokenmeter.usage.estimated"] is False for c in calls)
    assert tokens(cap, "input") + tokens(cap, "cache_read") == usage.prompt_tokens
    assert tokens(cap, "output") + tokens(cap, "reasoning") == usage.completion_tokens
    names = [(n, p) for n, p, _ in tree(cap) if not n.startswith("chat")]
    assert names == [
        ("invoke_workflow art crew", None),
        ("step colours", "invoke_workflow art crew"),
        ("invoke_agent poet", "step colours"),
        ("step verdict", "invoke_workflow art crew"),
        ("invoke_agent critic", "step verdict"),
    ]
    assert {p for n, p, _ in tree(cap) if n.startswith("chat")} == {"invoke_agent poet", "invoke_agent critic"}
    assert cap.counter("tokenmeter.run.tokens", **{"gen_ai.workflow.name": "art crew"}) == usage.total_tokens
