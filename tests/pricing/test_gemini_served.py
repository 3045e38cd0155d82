"""Gemini responses of recorded shapes, served over loopback to the real ``google-genai`` SDK.

Rates (USD per million tokens, Google's pricing page): gemini-2.5-flash 0.30 input (text), 1.00 input
audio, 0.03 cached text, 2.50 output (thinking included); Flex inference is 50% of standard.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from google import genai
from google.genai import types

import tokenmeter
from tokenmeter.testing import Capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from ..integration.checks import only_call_span

M = 10**6


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    tokenmeter.instrument("gemini")
    yield
    tokenmeter.uninstrument("gemini")


def _client(fp: FakeProvider) -> genai.Client:
    retry = types.HttpRetryOptions(attempts=1)
    options = types.HttpOptions(base_url=fp.url, api_version="v1beta", retry_options=retry)
    return genai.Client(api_key="test-key", http_options=options)


def _body(usage: dict[str, Any], text: str = "Done.") -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-gem-1",
    }


def test_an_omitted_zero_candidates_count_is_derived_from_the_total_and_stays_exact(
    fp: FakeProvider, cap: Capture
) -> None:
    # Gemini 3 with built-in tools: no candidatesTokenCount; the total says it was 0.
    usage = {"promptTokenCount": 812, "thoughtsTokenCount": 304, "totalTokenCount": 1116}
    fp.enqueue(Reply(body=_body(usage, text="")))
    client = _client(fp)
    client.models.generate_content(model="gemini-2.5-flash", contents="search the web")
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["tokenmeter.usage.estimated"] is False
    assert attrs["gen_ai.usage.input_tokens"] == 812
    assert attrs["gen_ai.usage.output_tokens"] == 304
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 304
    expected = Decimal("0.3") * 812 / M + Decimal("2.5") * 304 / M
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(expected), abs=1e-9)


def test_an_omitted_nonzero_count_is_the_total_minus_the_reported_parts(fp: FakeProvider, cap: Capture) -> None:
    usage = {
        "promptTokenCount": 812,
        "toolUsePromptTokenCount": 100,
        "thoughtsTokenCount": 304,
        "totalTokenCount": 1300,
    }
    fp.enqueue(Reply(body=_body(usage, text="The answer is 42, according to three sources.")))
    client = _client(fp)
    client.models.generate_content(model="gemini-2.5-flash", contents="search the web")
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["tokenmeter.usage.estimated"] is False
    assert attrs["gen_ai.usage.input_tokens"] == 912
    assert attrs["gen_ai.usage.output_tokens"] == 304 + 84


def test_a_remainder_several_omitted_counts_could_share_is_flagged_estimated(fp: FakeProvider, cap: Capture) -> None:
    usage = {"promptTokenCount": 10, "totalTokenCount": 500}
    fp.enqueue(Reply(body=_body(usage, text="short")))
    client = _client(fp)
    client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["tokenmeter.usage.estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] + attrs["gen_ai.usage.output_tokens"] == 500


def test_flex_tier_from_the_response_header_and_audio_prompt_tokens(fp: FakeProvider, cap: Capture) -> None:
    usage = {
        "promptTokenCount": 3000,
        "candidatesTokenCount": 200,
        "totalTokenCount": 3200,
        "cachedContentTokenCount": 1000,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1000}, {"modality": "AUDIO", "tokenCount": 2000}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 1000}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 200}],
    }
    fp.enqueue(Reply(body=_body(usage), headers={"x-gemini-service-tier": "flex"}))
    client = _client(fp)
    client.models.generate_content(
        model="gemini-2.5-flash", contents="transcribe", config=types.GenerateContentConfig(service_tier="flex")
    )
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["tokenmeter.response.service_tier"] == "flex"
    assert attrs["tokenmeter.usage.input_audio_tokens"] == 2000
    standard = Decimal("1.0") * 2000 / M + Decimal("0.03") * 1000 / M + Decimal("2.5") * 200 / M
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(standard / 2), abs=1e-9)
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.modality": "audio"}) == 2000


def test_priority_served_without_a_published_per_model_rate_is_unpriced_not_guessed(
    fp: FakeProvider, cap: Capture
) -> None:
    usage = {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}
    fp.enqueue(Reply(body=_body(usage), headers={"x-gemini-service-tier": "priority"}))
    client = _client(fp)
    client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["tokenmeter.response.service_tier"] == "priority"
    assert attrs["tokenmeter.cost.source"] == "unpriced"
    assert cap.counter("tokenmeter.tokens.unpriced") == 15


def test_a_standard_downgrade_of_a_priority_request_is_priced_standard(fp: FakeProvider, cap: Capture) -> None:
    usage = {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}
    fp.enqueue(Reply(body=_body(usage), headers={"x-gemini-service-tier": "standard"}))
    client = _client(fp)
    client.models.generate_content(
        model="gemini-2.5-flash", contents="hi", config=types.GenerateContentConfig(service_tier="priority")
    )
    attrs = dict(only_call_span(cap).attributes or {})
    expected = Decimal("0.3") * 10 / M + Decimal("2.5") * 5 / M
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(expected), abs=1e-9)


def test_a_stream_cut_before_its_last_chunk_is_not_derived_from_a_partial_total(fp: FakeProvider, cap: Capture) -> None:
    # An early chunk: the total so far is the prompt alone; the stream ends without a finish reason.
    chunk = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "partial answer words"}]}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 20, "totalTokenCount": 20},
        "modelVersion": "gemini-2.5-flash",
    }
    fp.enqueue(Reply(body=[chunk]))
    client = _client(fp)
    text = "".join(c.text or "" for c in client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert text == "partial answer words"
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["tokenmeter.usage.estimated"] is True
    assert attrs["gen_ai.usage.output_tokens"] > 0


def test_embed_content_is_an_embeddings_call_with_the_reported_input(fp: FakeProvider, cap: Capture) -> None:
    body = {
        "embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}],
        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
    }
    fp.enqueue(Reply(body=body))
    client = _client(fp)
    result = client.models.embed_content(model="gemini-embedding-001", contents=["hello there", "general kenobi"])
    assert result.embeddings is not None and len(result.embeddings) == 2
    span = only_call_span(cap)
    attrs = dict(span.attributes or {})
    assert span.name == "embeddings gemini-embedding-001"
    assert attrs["gen_ai.usage.input_tokens"] == 12 and attrs["gen_ai.usage.output_tokens"] == 0
    assert attrs["tokenmeter.usage.estimated"] is False


def test_embed_content_without_counts_is_estimated(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(body={"embeddings": [{"values": [0.1, 0.2]}]}))
    client = _client(fp)
    client.models.embed_content(model="gemini-embedding-001", contents="hello there")
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["tokenmeter.usage.estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] == 0
