"""Property-based usage payloads (hypothesis) on top of the fixed corpus: whatever usage a server reports,
the caller sees the same with and without tokenmeter, and nothing recorded breaks an OTLP export."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import TALLY
from ._corpus import Case, _anthropic_events, _chat_stream, _gemini, _message, _openai_chat_body
from ._raw import Raw, RawServer
from ._wire import SSE, dumps
from .test_corpus import run_both

COUNT = st.one_of(
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**32, 2**32 + 1, 2**53, 2**63, 2**64, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


def usage_of(keys: list[str], details: dict[str, list[str]]) -> st.SearchStrategy[Any]:
    """A usage object over ``keys`` (each may be missing), with nested details; or a non-object."""
    fields = {k: COUNT for k in keys}
    for name, inner in details.items():
        fields[name] = st.one_of(COUNT, st.fixed_dictionaries({}, optional={k: COUNT for k in inner}))
    return st.one_of(st.fixed_dictionaries({}, optional=fields), COUNT)


CHAT = usage_of(
    ["prompt_tokens", "completion_tokens", "total_tokens"],
    {
        "prompt_tokens_details": ["cached_tokens", "cache_write_tokens"],
        "completion_tokens_details": ["reasoning_tokens"],
    },
)
ANTHROPIC = usage_of(
    ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"],
    {"output_tokens_details": ["thinking_tokens"]},
)
GEMINI = usage_of(["promptTokenCount", "candidatesTokenCount", "cachedContentTokenCount", "thoughtsTokenCount"], {})
SETTINGS = settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
)


def _check(srv: RawServer, case: Case) -> None:
    without, with_tm, spans = run_both(srv, case, False)
    TALLY["examples"] += 1
    if without != with_tm:
        TALLY["differences"] += 1
    assert with_tm == without
    for span in spans:
        for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"):
            value = (span.attributes or {}).get(key, 0)
            assert isinstance(value, int) and 0 <= value and math.isfinite(value)


@SETTINGS
@given(usage=CHAT, stream=st.booleans())
def test_openai_chat_usage(raw_server: RawServer, usage: Any, stream: bool) -> None:
    answer = _chat_stream(usage) if stream else Raw(body=_openai_chat_body(usage))
    _check(raw_server, Case("openai-chat", "generated", stream, answer))


@SETTINGS
@given(usage=ANTHROPIC, delta=ANTHROPIC, stream=st.booleans())
def test_anthropic_usage(raw_server: RawServer, usage: Any, delta: Any, stream: bool) -> None:
    answer = Raw(body=_anthropic_events(usage, delta), headers=SSE) if stream else Raw(body=dumps(_message(usage)))
    _check(raw_server, Case("anthropic", "generated", stream, answer))


@SETTINGS
@given(usage=GEMINI)
def test_gemini_usage(raw_server: RawServer, usage: Any) -> None:
    _check(raw_server, Case("gemini", "generated", False, Raw(body=dumps(_gemini(usage)))))


@pytest.fixture(autouse=True)
def _fresh(raw_server: RawServer) -> None:
    raw_server.reset()
