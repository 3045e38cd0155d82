"""Issue 10 item 1: an implausible usage count is malformed, metered as estimated, and never reaches a sink.

A JSON integer of 10**30 tokens used to be taken as real: every later OTLP metrics export failed ("Value
out of range"), a memory-store budget blocked every call and the SQLite store lost the spend.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

import tokenmeter
from tokenmeter import MAX_TOKENS, Budget, Usage
from tokenmeter.testing import Capture, capture

from ._raw import Raw, RawServer

MESSAGES = [{"role": "user", "content": "Say hello to the hostile server please"}]
IMPLAUSIBLE: list[Any] = [10**30, MAX_TOKENS + 1, 2**63, -5, 1e30, 12.5, float("nan"), True, "12", [3], {"n": 1}]


def chat_body(prompt_tokens: Any, completion_tokens: Any = 4) -> bytes:
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    body = {
        "id": "chatcmpl-h",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there."}, "finish_reason": "stop"}],
        "usage": usage,
    }
    return json.dumps(body, allow_nan=True).encode()


@pytest.fixture(autouse=True)
def _openai_patched() -> Iterator[None]:
    tokenmeter.instrument("openai")
    yield
    tokenmeter.uninstrument("openai")


def _client(srv: RawServer) -> openai.OpenAI:
    return openai.OpenAI(api_key="x", base_url=srv.url + "/v1", max_retries=0)


def _export(cap: Capture) -> None:
    """Encode every metric point as OTLP protobuf does before sending (fails on out-of-range ints)."""
    data = cap.reader.get_metrics_data()
    assert data is not None
    encode_metrics(data).SerializeToString()


@pytest.mark.parametrize("bad", IMPLAUSIBLE, ids=repr)
def test_implausible_prompt_tokens_are_estimated_and_never_exported(srv: RawServer, bad: Any) -> None:
    with capture() as cap:
        srv.enqueue(Raw(body=chat_body(bad)))
        reply = _client(srv).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert reply.choices[0].message.content == "Hi there."
        (span,) = cap.spans
        attrs = dict(span.attributes or {})
        assert attrs["tokenmeter.usage.estimated"] is True
        assert 0 < attrs["gen_ai.usage.input_tokens"] < 100  # the local estimate of the prompt
        assert attrs["gen_ai.usage.output_tokens"] == 4  # the plausible half is kept
        assert cap.counter("tokenmeter.tokens") < 1000
        _export(cap)


def test_metrics_export_keeps_working_after_a_huge_count(srv: RawServer) -> None:
    with capture() as cap:
        client = _client(srv)
        srv.enqueue(Raw(body=chat_body(10**30, 10**30)), Raw(body=chat_body(7, 3)))
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        _export(cap)
        assert cap.counter("tokenmeter.calls") == 2
        assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": "output"}) < 100


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_huge_count_does_not_poison_a_budget(srv: RawServer, tmp_path: Path, store: str) -> None:
    url = "memory" if store == "memory" else f"sqlite://{tmp_path / 'b.db'}"
    budget = Budget("all", scope={}, limit_usd=5, window="1d")
    with capture(budgets=[budget], store=url) as cap:
        client = _client(srv)
        srv.enqueue(Raw(body=chat_body(10**30, 10**30)))
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
        for _ in range(3):  # a poisoned budget would refuse these
            srv.enqueue(Raw(body=chat_body(9, 4)))
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
        assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "ok"}) == 4
        assert cap.counter("tokenmeter.cost") < 0.01
        _export(cap)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_record_of_an_implausible_usage_is_refused_by_the_core(tmp_path: Path, store: str) -> None:
    url = "memory" if store == "memory" else f"sqlite://{tmp_path / 'b.db'}"
    with capture(budgets=[Budget("all", scope={}, limit_usd=5, window="1d")], store=url) as cap:
        tokenmeter.record("openai", "gpt-4o", Usage(input=10**30, output=3))
        (span,) = cap.spans
        assert (span.attributes or {}).get("tokenmeter.usage.missing") is True
        assert cap.counter("tokenmeter.tokens") == 0
        _export(cap)
        tokenmeter.record("openai", "gpt-4o", Usage(input=10, output=3))
        assert cap.counter("tokenmeter.tokens") == 13


def test_plausible_boundary() -> None:
    from tokenmeter.integrations._fields import count

    assert count(MAX_TOKENS) == MAX_TOKENS
    assert count(0) == 0
    for bad in IMPLAUSIBLE:
        assert count(bad) is None
    assert Usage(input=MAX_TOKENS).plausible
    assert not Usage(reasoning=MAX_TOKENS + 1).plausible


@pytest.mark.parametrize("bad", IMPLAUSIBLE, ids=repr)
def test_every_integration_reader_treats_an_implausible_count_as_missing(bad: Any) -> None:
    from tokenmeter.integrations import gemini
    from tokenmeter.integrations._anthropic_usage import usage_from_message
    from tokenmeter.integrations._bedrock_bodies import counts_from_headers, usage_from_invoke
    from tokenmeter.integrations.litellm import usage_from_litellm
    from tokenmeter.integrations.openai import usage_from_chat, usage_from_responses

    assert usage_from_chat({"prompt_tokens": bad, "completion_tokens": 5}) == Usage(output=5, estimated=True)
    assert usage_from_responses({"input_tokens": 7, "output_tokens": bad}) == Usage(input=7, estimated=True)
    assert usage_from_litellm({"prompt_tokens": 7, "completion_tokens": bad}) == Usage(input=7, estimated=True)
    assert usage_from_message({"input_tokens": bad, "output_tokens": 5}) == Usage(output=5, estimated=True)
    assert gemini.usage_from_metadata({"promptTokenCount": 9, "candidatesTokenCount": bad}) == Usage(input=9)
    assert usage_from_invoke({"usage": {"inputTokens": bad, "outputTokens": 2}}) == Usage(output=2, estimated=True)
    if not isinstance(bad, str):  # a header is always text: "12" there is a valid count
        assert counts_from_headers({"x-amzn-bedrock-input-token-count": str(bad)}).input is None


def test_bedrock_header_counts_are_ascii_and_bounded() -> None:
    from tokenmeter.integrations._bedrock_bodies import counts_from_headers

    assert counts_from_headers({"x-amzn-bedrock-input-token-count": " 42 "}).input == 42
    for bad in ("²", "9" * 5000, "-3", "1e3"):
        counts = counts_from_headers({"x-amzn-bedrock-input-token-count": bad})
        assert counts.input is None and counts.malformed
