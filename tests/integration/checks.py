"""Assertions shared by the scenario suite and the provider-specific integration tests."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from tokenmeter import TOKEN_CLASSES, PriceBook, Usage
from tokenmeter.testing import Capture

TOKENS = "tokenmeter.tokens"
COST = "tokenmeter.cost"
CALLS = "tokenmeter.calls"
CLASS = "tokenmeter.token.class"
OUTCOME = "tokenmeter.outcome"


def chat_operation(provider: str) -> str:
    """``gen_ai.operation.name`` of a chat call: the conventions name Gemini's ``generate_content``."""
    return "generate_content" if provider in ("gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai") else "chat"


def require(driver: Any, feature: str) -> None:
    """Skip the test when the driver does not support ``feature``."""
    if feature not in driver.supports:
        pytest.skip(f"{driver.provider} driver does not support {feature!r}")


def calls(cap: Capture, outcome: str | None = None) -> int:
    """How many calls ``tokenmeter.calls`` counted (with ``outcome``, or all)."""
    if outcome is None:
        return int(cap.counter(CALLS))
    return int(cap.counter(CALLS, **{OUTCOME: outcome}))


def tokens(cap: Capture, token_class: str | None = None) -> int:
    """Tokens counted by ``tokenmeter.tokens`` (one class, or all)."""
    if token_class is None:
        return int(cap.counter(TOKENS))
    return int(cap.counter(TOKENS, **{CLASS: token_class}))


def usage_of(span: ReadableSpan) -> Usage:
    """The usage a span reports, as far as the semconv attributes allow (input/output totals split by class)."""
    a = dict(span.attributes or {})
    cache_read = int(a.get("gen_ai.usage.cache_read.input_tokens", 0))
    cache_write = int(a.get("gen_ai.usage.cache_write.input_tokens", 0))
    reasoning = int(a.get("gen_ai.usage.reasoning.output_tokens", 0))
    return Usage(
        input=int(a["gen_ai.usage.input_tokens"]) - cache_read - cache_write,
        cache_read=cache_read,
        cache_write=cache_write,
        output=int(a["gen_ai.usage.output_tokens"]) - reasoning,
        reasoning=reasoning,
        estimated=bool(a.get("tokenmeter.usage.estimated", False)),
    )


def only_call_span(cap: Capture) -> ReadableSpan:
    """The one LLM-call span recorded (AssertionError if there are none or several)."""
    found = [s for s in cap.spans if s.kind == SpanKind.CLIENT and "gen_ai.provider.name" in (s.attributes or {})]
    assert len(found) == 1, f"expected exactly one call span, got {[s.name for s in cap.spans]}"
    return found[0]


def assert_cost(cap: Capture, provider: str, model: str, usage: Usage, span: ReadableSpan | None = None) -> None:
    """The ``tokenmeter.cost`` counter (per class and in total) and the span's cost equal the price book's."""
    expected = PriceBook().cost(provider, model, usage)
    if expected.usd is None:
        assert cap.counter(COST) == 0
        assert int(cap.counter("tokenmeter.tokens.unpriced")) == usage.total
        if span is not None:
            assert (span.attributes or {})["tokenmeter.cost.source"] == "unpriced"
        return
    assert expected.by_class is not None
    attributes = dict(span.attributes or {}) if span is not None else {}
    if attributes.get("tokenmeter.cost.source") == "provider":
        # A cost the provider (or LiteLLM) reported is the call's; the table's stays beside it.
        assert attributes["tokenmeter.cost.table_usd"] == pytest.approx(float(expected.usd), rel=1e-9, abs=1e-15)
        assert cap.counter(COST) == pytest.approx(attributes["tokenmeter.cost.usd"], rel=1e-9, abs=1e-15)
        return
    for token_class, class_cost in zip(TOKEN_CLASSES, expected.by_class, strict=True):
        assert cap.counter(COST, **{CLASS: token_class}) == pytest.approx(float(class_cost), rel=1e-9, abs=1e-15)
    assert cap.counter(COST) == pytest.approx(float(expected.usd), rel=1e-9, abs=1e-15)
    if span is not None:
        assert (span.attributes or {})["tokenmeter.cost.usd"] == pytest.approx(float(expected.usd), rel=1e-9)


def assert_metered(
    cap: Capture,
    *,
    provider: str,
    model: str,
    usage: Usage,
    operation: str | None = None,
    response_model: str | None = None,
    check_response_model: bool = True,
    stream: bool = False,
) -> ReadableSpan:
    """Exactly one ok call of ``model`` metered with exactly ``usage``: span, token counters, cost, outcome."""
    operation = operation or chat_operation(provider)
    span = cap.span(f"{operation} {model}")
    assert span.kind == SpanKind.CLIENT
    assert span.status.status_code != StatusCode.ERROR
    a = dict(span.attributes or {})
    assert a["gen_ai.operation.name"] == operation
    assert a["gen_ai.provider.name"] == provider
    assert a["gen_ai.request.model"] == model
    if check_response_model:
        assert a.get("gen_ai.response.model") == (response_model or model)
    assert a["gen_ai.usage.input_tokens"] == usage.input_total
    assert a["gen_ai.usage.output_tokens"] == usage.output_total
    assert a["gen_ai.usage.cache_read.input_tokens"] == usage.cache_read
    assert a["gen_ai.usage.cache_write.input_tokens"] == usage.cache_write
    assert a["gen_ai.usage.reasoning.output_tokens"] == usage.reasoning
    assert a["tokenmeter.usage.estimated"] is usage.estimated
    assert "error.type" not in a
    if stream:
        assert a.get("gen_ai.request.stream") is True
    for token_class, count in usage.by_class():
        assert tokens(cap, token_class) == count, token_class
    assert tokens(cap) == usage.total
    assert calls(cap, "ok") == 1
    assert calls(cap) == 1
    assert_cost(cap, provider, model, usage, span)
    return span


def assert_estimated(cap: Capture, *, provider: str, model: str, operation: str | None = None) -> ReadableSpan:
    """Exactly one ok call, flagged estimated, with tokens counted and priced consistently."""
    span = cap.span(f"{operation or chat_operation(provider)} {model}")
    a = dict(span.attributes or {})
    assert a["gen_ai.provider.name"] == provider
    assert a["tokenmeter.usage.estimated"] is True
    usage = usage_of(span)
    assert usage.input_total > 0
    assert tokens(cap) == usage.total
    assert calls(cap, "ok") == 1
    assert calls(cap) == 1
    assert_cost(cap, provider, model, usage, span)
    return span


def assert_failed(cap: Capture, *, provider: str, model: str) -> ReadableSpan:
    """Exactly one call that failed: error span with ``error.type``, outcome error, no tokens."""
    span = cap.span(f"{chat_operation(provider)} {model}")
    a = dict(span.attributes or {})
    assert a["gen_ai.provider.name"] == provider
    assert isinstance(a.get("error.type"), str) and a["error.type"]
    assert span.status.status_code == StatusCode.ERROR
    assert calls(cap, "error") == 1
    assert calls(cap) == 1
    assert tokens(cap) == 0
    assert cap.counter(COST) == 0
    return span


def strings_in_telemetry(cap: Capture) -> list[str]:
    """Every string value in spans (attributes, events, links, resource) and metric point attributes."""
    out: list[str] = []

    def add(values: Any) -> None:
        for v in (values or {}).values():
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, (list, tuple)):
                out.extend(str(x) for x in v)

    for span in cap.spans:
        out.append(span.name)
        add(span.attributes)
        add(span.resource.attributes)
        if span.status.description:
            out.append(span.status.description)
        for event in span.events:
            out.append(event.name)
            add(event.attributes)
        for link in span.links:
            add(link.attributes)
    data = cap.reader.get_metrics_data()
    for rm in data.resource_metrics if data is not None else []:
        add(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    add(point.attributes)
    return out
