"""Fixtures of the framework suite: real frameworks, their real OpenAI clients, FakeProvider on loopback.

Every test here drives a real agent framework (OpenAI Agents SDK, LangChain / LangGraph, pydantic-ai)
through its own OpenAI-compatible model client over real HTTP; tokens are scripted per reply, so the
server's usage is known exactly and compared class by class with what tokenmeter metered.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import pytest

import tokenmeter
from tests.real_llm.conftest import real_llm  # noqa: F401  (the real small model, same fixture)
from tokenmeter.testing import Capture


def require(module: str) -> None:
    """Skip (fail on CI) when a framework is not installed."""
    if importlib.util.find_spec(module) is None:
        reason = f"{module} not installed: run `make .venv/.installed` (dev extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def tree(cap: Capture) -> list[tuple[str, str | None, int | None]]:
    """Every finished span as ``(name, parent name, tokenmeter.step.depth)``, in start order."""
    spans = sorted(cap.spans, key=lambda s: s.start_time or 0)
    by_id = {s.context.span_id: s for s in spans}
    out = []
    for s in spans:
        parent = by_id.get(s.parent.span_id) if s.parent is not None else None
        depth = (s.attributes or {}).get("tokenmeter.step.depth")
        out.append((s.name, parent.name if parent is not None else None, depth))
    return out


def call_spans(cap: Capture) -> list[Any]:
    """The metered LLM call spans (CLIENT spans of tokenmeter)."""
    from opentelemetry.trace import SpanKind

    return [s for s in cap.spans if s.kind is SpanKind.CLIENT and (s.attributes or {}).get("gen_ai.provider.name")]


def assert_tool_call(cap: Capture, span_name: str, sent: bytes, tool_type: str | None = "function") -> str:
    """The tool span names the model's call id (one the framework sent back with the result) and type."""
    attrs = cap.span(span_name).attributes or {}
    assert attrs.get("gen_ai.tool.type") == tool_type
    call_id = attrs["gen_ai.tool.call.id"]
    assert isinstance(call_id, str) and call_id.startswith("call_")
    assert call_id.encode() in sent  # the id the model gave, echoed back with the tool's result
    return call_id


def tokens(cap: Capture, cls: str, **attrs: Any) -> float:
    return cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": cls}, **attrs)


@pytest.fixture
def instrumented(request: pytest.FixtureRequest) -> Iterator[None]:
    """``tokenmeter.instrument()`` of openai + the frameworks named by the test module's ``FRAMEWORKS``."""
    names = ("openai", *getattr(request.module, "FRAMEWORKS", ()))
    tokenmeter.instrument(*names)
    try:
        yield
    finally:
        tokenmeter.uninstrument(*names)
