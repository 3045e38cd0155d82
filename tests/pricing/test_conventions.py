"""Every ``gen_ai.*`` name tokenmeter emits is one the OpenTelemetry GenAI conventions define.

The names are read from the source (every string literal in ``tokenmeter/`` and ``integrations/``) and
from the spans and metrics of real calls, then checked against the constants of the installed
``opentelemetry-semantic-conventions`` package, plus an allow-list of names newer than the package
(each with the reason). A typo or a stale name fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics

import tokenmeter
from tokenmeter import Usage
from tokenmeter.testing import capture

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "conventions.md"

# Names newer than opentelemetry-semantic-conventions 0.66b2, with where they come from.
NEWER_THAN_PACKAGE = {
    "gen_ai.usage.cache_write.input_tokens": "semantic-conventions-genai: replaces cache_creation",
    "gen_ai.usage.cost.amount": "proposed, semantic-conventions-genai PR 443 (opt-in)",
    "gen_ai.usage.cost.currency": "proposed, semantic-conventions-genai PR 443 (opt-in)",
    "gen_ai.usage.cost.source": "proposed, semantic-conventions-genai PR 443 (opt-in)",
    "gen_ai.invoke_agent.duration": "semantic-conventions-genai PR 201",
    "gen_ai.execute_tool.duration": "semantic-conventions-genai PR 201",
    "gen_ai.invoke_workflow.duration": "the workflow counterpart (opentelemetry-util-genai's workflow instrument)",
}
_NAME = re.compile(r"""["'](gen_ai\.[a-z0-9_.]+)["']""")


def _package_names() -> set[str]:
    names: set[str] = set()
    for module in (gen_ai_attributes, gen_ai_metrics):
        for value in vars(module).values():
            if isinstance(value, str) and value.startswith("gen_ai."):
                names.add(value)
    return names


def _source_names() -> set[str]:
    names: set[str] = set()
    for folder in ("tokenmeter", "integrations"):
        for path in (ROOT / folder).rglob("*.py"):
            if "testing" in path.parts:
                continue
            names.update(_NAME.findall(path.read_text(encoding="utf-8")))
    return names


@pytest.fixture
def emitted() -> Iterator[set[str]]:
    names: set[str] = set()
    with capture(semconv_cost=True) as cap:
        with tokenmeter.workflow("w"), tokenmeter.agent("a"):
            tokenmeter.record("openai", "gpt-4o", Usage(input=10, cache_read=5, cache_write=3, output=4, reasoning=1))
            with tokenmeter.tool("t", call_id="call_1", type="function"):
                pass
        for span in cap.spans:
            names.update(k for k in (span.attributes or {}) if k.startswith("gen_ai."))
        for metric in cap.reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics:
            if metric.name.startswith("gen_ai."):
                names.add(metric.name)
            for point in metric.data.data_points:
                names.update(k for k in point.attributes if k.startswith("gen_ai."))
    yield names


def test_every_gen_ai_name_in_the_source_is_a_convention() -> None:
    known = _package_names() | set(NEWER_THAN_PACKAGE)
    unknown = sorted(_source_names() - known)
    assert not unknown, f"gen_ai.* names the conventions do not define (typo or stale?): {unknown}"


def test_every_gen_ai_name_emitted_by_a_call_is_a_convention(emitted: set[str]) -> None:
    assert {"gen_ai.usage.cache_write.input_tokens", "gen_ai.usage.cost.amount", "gen_ai.client.token.usage"} <= emitted
    unknown = sorted(emitted - _package_names() - set(NEWER_THAN_PACKAGE))
    assert not unknown, unknown


def test_every_emitted_name_is_documented(emitted: set[str]) -> None:
    documented = set(re.findall(r"`((?:gen_ai|tokenmeter|openai|server|error)\.[a-z0-9_.]+)`", DOCS.read_text()))
    missing = sorted((_source_names() | emitted) - documented)
    assert not missing, f"add these names to docs/conventions.md: {missing}"


def test_the_old_cache_write_name_is_kept_only_when_opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = Usage(input=1, cache_write=7, output=1)
    with capture() as cap:
        tokenmeter.record("openai", "gpt-4o", usage)
        attrs = dict(cap.spans[0].attributes or {})
    assert attrs["gen_ai.usage.cache_write.input_tokens"] == 7
    assert "gen_ai.usage.cache_creation.input_tokens" not in attrs
    assert "gen_ai.usage.cost.amount" not in attrs
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,gen_ai/dup")
    with capture() as cap:
        tokenmeter.record("openai", "gpt-4o", usage)
        attrs = dict(cap.spans[0].attributes or {})
    assert attrs["gen_ai.usage.cache_write.input_tokens"] == 7
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 7


def test_agent_and_workflow_spans_carry_usage_totals() -> None:
    with capture() as cap:
        with tokenmeter.workflow("w"), tokenmeter.agent("a"):
            tokenmeter.record("openai", "gpt-4o", Usage(input=10, cache_read=5, output=4, reasoning=1))
            tokenmeter.record("openai", "gpt-4o", Usage(input=1, output=1))
        scopes = [s for s in cap.spans if s.name.startswith(("invoke_agent", "invoke_workflow"))]
    assert len(scopes) == 2
    for span in scopes:
        attrs = dict(span.attributes or {})
        assert attrs["gen_ai.usage.input_tokens"] == 16 and attrs["gen_ai.usage.output_tokens"] == 6
        assert attrs["gen_ai.usage.reasoning.output_tokens"] == 1
    agent = next(s for s in scopes if s.name.startswith("invoke_agent"))
    assert dict(agent.attributes or {})["gen_ai.provider.name"] == "openai"


def test_an_agent_using_several_providers_names_none() -> None:
    with capture() as cap:
        with tokenmeter.agent("a"):
            tokenmeter.record("openai", "gpt-4o", Usage(input=1, output=1))
            tokenmeter.record("anthropic", "claude-haiku-4-5", Usage(input=1, output=1))
        agent = next(s for s in cap.spans if s.name.startswith("invoke_agent"))
    assert "gen_ai.provider.name" not in dict(agent.attributes or {})


def test_agent_tool_and_workflow_durations_are_histograms() -> None:
    with capture() as cap:
        with tokenmeter.workflow("w"), tokenmeter.agent("a"), tokenmeter.tool("search"):
            tokenmeter.record("openai", "gpt-4o", Usage(input=1, output=1))
        for name, key, value in (
            ("gen_ai.invoke_agent.duration", "gen_ai.agent.name", "a"),
            ("gen_ai.execute_tool.duration", "gen_ai.tool.name", "search"),
            ("gen_ai.invoke_workflow.duration", "gen_ai.workflow.name", "w"),
        ):
            points = cap.points(name)
            assert len(points) == 1 and points[0].count == 1, name
            assert dict(points[0].attributes) == {key: value}


def test_tool_spans_carry_the_call_id_and_type_only_on_themselves() -> None:
    with capture() as cap:
        with tokenmeter.tool("search", call_id="call_abc", type="datastore"):
            tokenmeter.record("openai", "gpt-4o", Usage(input=1, output=1))
        with tokenmeter.tool("plain"):
            pass
        tool = dict(cap.span("execute_tool search").attributes or {})
        call = dict(cap.span("chat gpt-4o").attributes or {})
        plain = dict(cap.span("execute_tool plain").attributes or {})
    assert tool["gen_ai.tool.call.id"] == "call_abc" and tool["gen_ai.tool.type"] == "datastore"
    assert "gen_ai.tool.call.id" not in call and "gen_ai.tool.type" not in call  # not inherited
    assert "gen_ai.tool.call.id" not in plain and "gen_ai.tool.type" not in plain  # unknown: left out
