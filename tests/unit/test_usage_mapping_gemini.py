"""Gemini's ``usage_metadata`` -> disjoint ``Usage`` classes (pure functions, no HTTP)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from google.genai import types
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmeter import Request, Usage
from tokenmeter.integrations import gemini


def meta(**fields: Any) -> types.GenerateContentResponseUsageMetadata:
    return types.GenerateContentResponseUsageMetadata(**fields)


def test_prompt_includes_cached_and_candidates_exclude_thoughts() -> None:
    m = meta(
        prompt_token_count=1000,
        cached_content_token_count=600,
        candidates_token_count=50,
        thoughts_token_count=300,
        total_token_count=1350,
    )
    assert gemini.usage_from_metadata(m) == Usage(input=400, cache_read=600, output=50, reasoning=300)


def test_tool_use_prompt_tokens_are_billed_as_input() -> None:
    m = meta(prompt_token_count=100, tool_use_prompt_token_count=40, candidates_token_count=10)
    assert gemini.usage_from_metadata(m) == Usage(input=140, output=10)


def test_plain_and_zero_counts_omitted() -> None:
    # The API leaves zero counts out (no cachedContentTokenCount, no thoughtsTokenCount).
    assert gemini.usage_from_metadata(meta(prompt_token_count=12, candidates_token_count=7)) == Usage(12, output=7)
    assert gemini.usage_from_metadata(meta(prompt_token_count=12)) == Usage(input=12)


def test_raw_json_dicts_in_camel_or_snake_case() -> None:
    camel = {"promptTokenCount": 30, "cachedContentTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 2}
    snake = {"prompt_token_count": 30, "cached_content_token_count": 10, "candidates_token_count": 5}
    assert gemini.usage_from_metadata(camel) == Usage(input=20, cache_read=10, output=5, reasoning=2)
    assert gemini.usage_from_metadata(snake) == Usage(input=20, cache_read=10, output=5)


@pytest.mark.parametrize("missing", [None, meta(), {}, {"totalTokenCount": 9}, SimpleNamespace()])
def test_no_usable_usage_is_none(missing: Any) -> None:
    assert gemini.usage_from_metadata(missing) is None


@pytest.mark.parametrize("bad", [-1, "12", None, 1.5, True])
def test_malformed_fields_count_as_missing(bad: Any) -> None:
    m = {"promptTokenCount": 20, "cachedContentTokenCount": bad, "candidatesTokenCount": bad, "thoughtsTokenCount": 3}
    assert gemini.usage_from_metadata(m) == Usage(input=20, reasoning=3)
    counts = gemini.counts_from_metadata(m)
    assert counts is not None and counts.candidates is None and counts.cached is None


def test_cached_above_prompt_never_goes_negative() -> None:
    assert gemini.usage_from_metadata(meta(prompt_token_count=10, cached_content_token_count=15)) == Usage(
        cache_read=15
    )


_ODD_VALUES = st.one_of(st.integers(), st.none(), st.booleans(), st.floats(), st.sampled_from(["", "12", "x"]))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from([camel for _, camel in gemini._FIELDS]), _ODD_VALUES))
def test_never_raises_and_never_negative(raw: dict[str, Any]) -> None:
    usage = gemini.usage_from_metadata(raw)
    assert usage is None or all(v >= 0 for _, v in usage.by_class())


@pytest.mark.parametrize(
    ("reference", "bare"),
    [
        ("gemini-2.5-flash", "gemini-2.5-flash"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash", "gemini-2.0-flash"),
        ("google/gemini-2.5-flash", "gemini-2.5-flash"),
        ("tunedModels/my-model-123", "tunedModels/my-model-123"),
        ("projects/p/locations/l/endpoints/42", "projects/p/locations/l/endpoints/42"),
    ],
)
def test_model_name(reference: str, bare: str) -> None:
    assert gemini.model_name(reference) == bare


def _chunk(text: str | None, usage: dict[str, Any] | None, finish: str | None = None) -> types.GenerateContentResponse:
    parts = [{"text": text}] if text is not None else []
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if finish:
        candidate["finish_reason"] = finish
    return types.GenerateContentResponse.model_validate(
        {"candidates": [candidate], "usage_metadata": usage, "model_version": "gemini-2.5-flash", "response_id": "r1"}
    )


def _request() -> Request:
    return Request(provider="gcp.gemini", model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi there"}])


def test_stream_takes_the_last_reported_usage() -> None:
    # The real API reports running totals on every chunk; the last one is complete.
    acc = gemini._Responses(_request())
    acc.on_chunk(_chunk("Hel", {"prompt_token_count": 9, "candidates_token_count": 1}))
    acc.on_chunk(_chunk("lo", {"prompt_token_count": 9, "candidates_token_count": 2}))
    acc.on_chunk(_chunk("", {"prompt_token_count": 9, "candidates_token_count": 3, "thoughts_token_count": 4}, "STOP"))
    result = acc.result()
    assert result.usage == Usage(input=9, output=3, reasoning=4)
    assert result.response_model == "gemini-2.5-flash"
    assert result.response_id == "r1"
    assert list(result.finish_reasons or []) == ["stop"]


def test_stream_cut_before_the_output_count_estimates_the_output() -> None:
    acc = gemini._Responses(_request())
    acc.on_chunk(_chunk("Hello there, friend", {"prompt_token_count": 9}))
    usage = acc.result().usage
    assert usage is not None and usage.estimated
    assert usage.input == 9 and usage.output > 0


def test_no_usage_at_all_is_estimated_from_prompt_and_text() -> None:
    acc = gemini._Responses(_request())
    acc.on_chunk(_chunk("Hello there", None, "STOP"))
    usage = acc.result().usage
    assert usage is not None and usage.estimated and usage.input > 0 and usage.output > 0


def test_nothing_received_bills_nothing() -> None:
    assert gemini._Responses(_request()).result().usage is None


def test_request_reads_model_limits_and_texts_without_raising_on_odd_contents() -> None:
    endpoint = gemini._GenerateContent(stream=False)
    client = SimpleNamespace(_api_client=SimpleNamespace(vertexai=False, _http_options=SimpleNamespace(base_url=None)))
    config = types.GenerateContentConfig(max_output_tokens=50, system_instruction="be brief")
    contents = ["first", {"role": "user", "parts": [{"text": "second"}, {"inline_data": {}}]}, 42, None]
    request = endpoint.request(client, (), {"model": "models/gemini-2.5-pro", "contents": contents, "config": config})
    assert request.provider == "gcp.gemini"
    assert request.model == "gemini-2.5-pro"
    assert request.max_tokens == 50
    assert [m["content"] for m in request.messages or []] == ["be brief", "first", "second", "", ""]
    # prepare() keeps the caller's reference unless a policy rewrote the model
    kwargs = {"model": "models/gemini-2.5-pro"}
    assert endpoint.prepare(request, (), kwargs)[1] == kwargs
    request.model = "gemini-2.5-flash"
    assert endpoint.prepare(request, (), kwargs)[1] == {"model": "gemini-2.5-flash"}
