"""CrewAI: budgets and the per-run guard stop a crew unretried, CrewAI's own usage report is only a flagged
fallback, uninstrument removes the adapter, its faults never break a crew, and it adds no warnings.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

pytest.importorskip("crewai", reason="CrewAI runs in .venv-crewai: make crewai-venv")

from crewai.tools import tool
from openai import OpenAI

import tokenmeter
from tests.frameworks.conftest import call_spans, tokens, tree
from tokenmeter import Budget
from tokenmeter.testing import Capture, capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from .crews import CALL, CREW, MODEL, TREE, math_crew, script


def test_budget_exceeded_by_the_per_run_guard_stops_the_crew_unretried(fp: FakeProvider) -> None:
    with capture(expected_output_tokens=1) as cap:
        script(fp)
        crew = math_crew(fp.url)
        # CrewAI re-runs a failed agent task up to max_retry_limit (2) times; a refused call must not be re-run
        with pytest.raises(tokenmeter.BudgetExceeded), tokenmeter.workflow("capped", max_tokens=20):
            crew.kickoff()
        assert len(fp.requests) == len(call_spans(cap)) == 0  # the first call's prompt alone is over 20
        assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 1  # refused once
        # inside the user's run the crew is a step of it, so the run's guard covers the crew
        assert [n for n, _, _ in tree(cap)] == [
            "invoke_workflow capped",
            "step math crew",
            "step sum",
            "invoke_agent calculator",
        ]
        for name in ("invoke_workflow capped", "step math crew", "step sum", "invoke_agent calculator"):
            assert cap.span(name).status.status_code.name == "ERROR"


def test_budget_exceeded_by_a_budget_stops_the_crew_mid_run(fp: FakeProvider) -> None:
    # The budget covers the crew's own workflow; the first call fits, its tokens use it up, the next is refused.
    budget = Budget("crew cap", scope={"workflow": "math crew"}, limit_tokens=400, window="1d")
    with capture(budgets=[budget], expected_output_tokens=1) as cap:
        fp.enqueue(
            Reply(tool_call=("add", {"a": 1, "b": 2}), input_tokens=390, output_tokens=5),
            Reply(text="3", input_tokens=20, output_tokens=2),
        )
        with pytest.raises(tokenmeter.BudgetExceeded):
            math_crew(fp.url).kickoff()
        assert len(fp.requests) == len(call_spans(cap)) == 1
        assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 1
        assert tokens(cap, "input") == 390 and tokens(cap, "output") == 5
        names = [n for n, _, _ in tree(cap)]
        assert names == [CREW, "step sum", "invoke_agent calculator", CALL, "execute_tool add"]
        assert cap.span(CREW).status.status_code.name == "ERROR"
        assert cap.span("execute_tool add").status.status_code.name != "ERROR"  # the tool itself worked


def test_budget_exceeded_inside_a_tool_still_stops_the_crew(fp: FakeProvider) -> None:
    inner = OpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0)

    @tool("research")
    def research(topic: str) -> str:
        """Research a topic with another model call."""
        reply = inner.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": topic * 2000}])
        return reply.choices[0].message.content or ""

    with capture(expected_output_tokens=1) as cap:
        fp.enqueue(Reply(tool_call=("research", {"topic": "x "}), input_tokens=390, output_tokens=3))
        crew = math_crew(fp.url, tools=[research])
        with pytest.raises(tokenmeter.BudgetExceeded), tokenmeter.workflow("capped", max_tokens=450):
            # the first call fits and uses 393 tokens; the tool's call (a 2,000-word prompt) is refused, CrewAI
            # hands the tool's error to the model, whose next call is refused too: the crew stops, the caller
            # sees BudgetExceeded, and the agent's retry loop does not run the task again
            crew.kickoff()
        assert len(fp.requests) == len(call_spans(cap)) == 1
        assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 2
        assert cap.span("execute_tool research").status.status_code.name == "ERROR"
        assert cap.span("invoke_workflow capped").status.status_code.name == "ERROR"


def test_usage_report_is_a_flagged_fallback_only_without_a_provider_integration(fp: FakeProvider, cap: Capture) -> None:
    tokenmeter.uninstrument("openai")
    try:
        script(fp)
        math_crew(fp.url).kickoff()
    finally:
        tokenmeter.instrument("openai")
    calls = call_spans(cap)
    assert len(calls) == len(fp.requests) == 3
    for c in calls:
        attrs = dict(c.attributes or {})
        assert attrs["tokenmeter.usage.source"] == "framework" and attrs["tokenmeter.usage.estimated"] is True
        assert attrs["tokenmeter.framework.name"] == "crewai" and attrs["gen_ai.provider.name"] == "openai"
    assert tokens(cap, "input") == 60 and tokens(cap, "cache_read") == 3 and tokens(cap, "output") == 10
    assert tree(cap) == TREE


def test_uninstrument_removes_the_adapter_and_instrument_brings_it_back(fp: FakeProvider, cap: Capture) -> None:
    import crewai.agent.core
    from crewai.events.event_bus import CrewAIEventsBus

    plain = CrewAIEventsBus.__dict__["_prepare_event"]
    tokenmeter.uninstrument("crewai")
    try:
        assert tokenmeter.PolicyViolation not in crewai.agent.core._passthrough_exceptions
        assert CrewAIEventsBus.__dict__["_prepare_event"] is plain.__wrapped__
        script(fp)
        math_crew(fp.url).kickoff()
        assert [n for n, _, _ in tree(cap)] == [CALL] * 3  # still metered, no longer named
    finally:
        tokenmeter.instrument("crewai")
    assert tokenmeter.PolicyViolation in crewai.agent.core._passthrough_exceptions
    cap.exporter.clear()
    script(fp)
    math_crew(fp.url).kickoff()
    assert tree(cap) == TREE


def test_a_fault_in_the_adapter_is_logged_once_and_never_breaks_the_crew(
    fp: FakeProvider, cap: Capture, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tokenmeter.integrations import crewai as adapter

    class Broken:
        def get(self) -> Any:
            raise RuntimeError("boom")

    monkeypatch.setattr(adapter.ADAPTER, "_stack", Broken())
    script(fp)
    with caplog.at_level("DEBUG", logger="tokenmeter"):
        out = math_crew(fp.url).kickoff()
    assert out.raw == "three"  # the crew's result is unchanged
    assert len(fp.requests) == len(call_spans(cap)) == 3  # and every call is still metered
    assert tokens(cap, "input") == 60 and tokens(cap, "output") == 10
    faults = [r for r in caplog.records if "translating a CrewAI event failed" in r.getMessage()]
    assert faults and sum(r.levelname == "WARNING" for r in faults) <= 1


def test_no_new_warnings(fp: FakeProvider, cap: Capture) -> None:
    def run() -> list[str]:
        script(fp)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            math_crew(fp.url).kickoff()
        # ResourceWarnings of sockets depend on when the garbage collector runs: not tokenmeter's to compare.
        return sorted(f"{w.category.__name__}: {w.message}" for w in caught if w.category is not ResourceWarning)

    with_tokenmeter = run()
    tokenmeter.uninstrument("openai", "crewai")
    try:
        without = run()
    finally:
        tokenmeter.instrument("openai", "crewai")
    assert with_tokenmeter == without


def test_instrument_without_names_installs_the_adapter_when_crewai_is_importable() -> None:
    tokenmeter.uninstrument("crewai")
    before = set(tokenmeter.instrumented())
    active = tokenmeter.instrument()  # every installed integration
    try:
        assert "crewai" in active
    finally:
        extra = set(active) - before - {"crewai"}
        if extra:
            tokenmeter.uninstrument(*extra)
