"""Pure usage mapping of the Anthropic and Bedrock integrations: SDK objects and dicts -> disjoint ``Usage``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from anthropic.types import Message, RawMessageDeltaEvent, RawMessageStartEvent
from hypothesis import given
from hypothesis import strategies as st

from tokenmeter import PriceBook, Usage
from tokenmeter._call import Request
from tokenmeter.integrations._anthropic_usage import Counts, MessageEvents
from tokenmeter.integrations._bedrock_bodies import (
    InvokeStreamAccumulator,
    invoke_result,
    request_facts,
    text_of_body,
    usage_from_invoke,
)
from tokenmeter.integrations.anthropic import usage_from_events, usage_from_message
from tokenmeter.integrations.bedrock import usage_from_converse, usage_from_headers

USAGE = {"input_tokens": 40, "cache_read_input_tokens": 900, "cache_creation_input_tokens": 70, "output_tokens": 12}
CACHED = Usage(input=40, cache_read=900, cache_write=70, output=12)


def _message(usage: dict[str, Any]) -> Message:
    return Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-6",
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
    )


def _start(usage: dict[str, Any]) -> dict[str, Any]:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "usage": usage}
    return {"type": "message_start", "message": message}


def _delta(usage: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage}


# -- Anthropic ----------------------------------------------------------------------------------


def test_anthropic_cache_tokens_are_beside_input() -> None:
    assert usage_from_message(_message(USAGE)) == CACHED
    assert usage_from_message({"usage": USAGE}) == CACHED
    assert usage_from_message(USAGE) == CACHED  # the usage object itself


def test_anthropic_cost_is_priced_per_class() -> None:
    usage = usage_from_message(USAGE)
    assert usage is not None
    cost = PriceBook().cost("anthropic", "claude-sonnet-4-6", usage)
    # $3 input, $0.30 cache read, $3.75 cache write, $15 output per million tokens
    expected = (40 * Decimal(3) + 900 * Decimal("0.3") + 70 * Decimal("3.75") + 12 * Decimal(15)) / 1_000_000
    assert cost.usd == expected


def test_anthropic_null_cache_fields_are_zero_not_estimated() -> None:
    usage = {
        "input_tokens": 5,
        "output_tokens": 2,
        "cache_read_input_tokens": None,
        "cache_creation_input_tokens": None,
    }
    assert usage_from_message({"usage": usage}) == Usage(input=5, output=2)


def test_anthropic_thinking_breakdown_becomes_reasoning_when_reported() -> None:
    with_details = {**USAGE, "output_tokens": 130, "output_tokens_details": {"thinking_tokens": 100}}
    assert usage_from_message(with_details) == Usage(input=40, cache_read=900, cache_write=70, output=30, reasoning=100)
    without = {**USAGE, "output_tokens": 130}
    assert usage_from_message(without) == Usage(input=40, cache_read=900, cache_write=70, output=130)
    impossible = {**USAGE, "output_tokens": 10, "output_tokens_details": {"thinking_tokens": 100}}
    assert usage_from_message(impossible) == Usage(input=40, cache_read=900, cache_write=70, output=10)


@pytest.mark.parametrize("bad", ["40", -1, 4.0, True])
def test_anthropic_malformed_field_is_missing_and_flagged(bad: Any) -> None:
    assert usage_from_message({**USAGE, "cache_read_input_tokens": bad}) == Usage(
        input=40, cache_write=70, output=12, estimated=True
    )
    assert usage_from_message({**USAGE, "input_tokens": bad}) == Usage(
        cache_read=900, cache_write=70, output=12, estimated=True
    )


@pytest.mark.parametrize("value", [None, {}, {"usage": None}, {"usage": {"input_tokens": "1", "output_tokens": -2}}])
def test_anthropic_no_usable_usage_is_none(value: Any) -> None:
    assert usage_from_message(value) is None


def test_anthropic_stream_last_delta_is_the_output_total_and_inputs_are_not_added() -> None:
    events = [
        RawMessageStartEvent.model_validate(_start({**USAGE, "output_tokens": 1})),
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        RawMessageDeltaEvent.model_validate(_delta({"output_tokens": 7})),
        # a server that repeats the (cumulative) input counts in message_delta must not double count them
        _delta(
            {"input_tokens": 40, "cache_read_input_tokens": 900, "cache_creation_input_tokens": 70, "output_tokens": 12}
        ),
    ]
    assert usage_from_events(events) == CACHED


def test_anthropic_stream_without_final_count_is_flagged() -> None:
    usage = usage_from_events([_start({**USAGE, "output_tokens": 1})])
    assert usage == Usage(input=40, cache_read=900, cache_write=70, output=1, estimated=True)
    assert usage_from_events([{"type": "ping"}]) is None


def test_anthropic_stream_result_estimates_what_is_missing() -> None:
    request = Request(
        provider="anthropic", model="claude-sonnet-4-6", messages=[{"role": "user", "content": "x " * 40}]
    )
    events = MessageEvents()
    events.add({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "word " * 30}})
    result = events.result(request)
    assert result.usage is not None and result.usage.estimated
    assert result.usage.input > 0 and result.usage.output > 0


def test_counts_estimators_fill_only_missing_classes() -> None:
    counts = Counts(input=10, cache_read=5)
    assert counts.usage(lambda: 999, lambda: 7) == Usage(input=10, cache_read=5, output=7, estimated=True)
    assert Counts().usage() is None
    assert Counts().usage(lambda: 3, lambda: 4) == Usage(input=3, output=4, estimated=True)


@given(
    st.recursive(
        st.none() | st.integers() | st.text() | st.floats(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_mappers_never_raise(junk: Any) -> None:
    results = [mapper(junk) for mapper in (usage_from_message, usage_from_converse, usage_from_headers)]
    results += [usage_from_events(junk if isinstance(junk, list) else [junk]), usage_from_invoke(junk, junk)]
    assert all(result is None or isinstance(result, Usage) for result in results)


# -- Bedrock ------------------------------------------------------------------------------------

CONVERSE = {
    "inputTokens": 40,
    "outputTokens": 12,
    "totalTokens": 1022,
    "cacheReadInputTokens": 900,
    "cacheWriteInputTokens": 70,
}


def test_converse_usage_excludes_cache_from_input() -> None:
    assert usage_from_converse({"usage": CONVERSE, "stopReason": "end_turn"}) == CACHED
    assert usage_from_converse(CONVERSE) == CACHED
    assert usage_from_converse({"metrics": {}, "usage": {"inputTokens": 3, "outputTokens": 4}}) == Usage(
        input=3, output=4
    )
    assert usage_from_converse({"output": {}}) is None
    assert usage_from_converse({"usage": {**CONVERSE, "outputTokens": "12"}}) == Usage(
        input=40, cache_read=900, cache_write=70, estimated=True
    )


def test_invoke_bodies_by_shape() -> None:
    nova = {
        "usage": {
            "inputTokens": 40,
            "outputTokens": 12,
            "cacheReadInputTokenCount": 900,
            "cacheWriteInputTokenCount": 70,
        }
    }
    assert usage_from_invoke(nova) == CACHED
    assert usage_from_invoke({"type": "message", "usage": USAGE}) == CACHED
    assert usage_from_invoke({"generation": "x", "prompt_token_count": 8, "generation_token_count": 3}) == Usage(
        input=8, output=3
    )
    assert usage_from_invoke({"usage": {"prompt_tokens": 8, "completion_tokens": 3}}) == Usage(input=8, output=3)
    assert usage_from_invoke({"text": "cohere reports nothing"}) is None


def test_invoke_headers_fill_what_the_body_lacks() -> None:
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": "40",
        "x-amzn-bedrock-output-token-count": "12",
        "x-amzn-bedrock-cache-read-input-token-count": "900",
        "x-amzn-bedrock-cache-write-input-token-count": "70",
    }
    assert usage_from_headers(headers) == CACHED
    assert usage_from_invoke({"text": "cohere"}, headers) == CACHED
    assert usage_from_invoke({"prompt_token_count": 50, "generation_token_count": 12}, headers) == Usage(
        input=50, cache_read=900, cache_write=70, output=12
    )
    assert usage_from_headers(
        {"x-amzn-bedrock-input-token-count": "-3", "x-amzn-bedrock-output-token-count": "2"}
    ) == Usage(output=2, estimated=True)
    assert usage_from_headers({}) is None


def test_invoke_result_estimates_without_any_usage() -> None:
    request = Request(
        provider="aws.bedrock", model="cohere.command-r-v1:0", messages=[{"role": "user", "content": "hi there"}]
    )
    result = invoke_result(json.dumps({"text": "a reply of several words"}).encode(), {}, request)
    assert result.usage is not None and result.usage.estimated and result.usage.output > 0 and result.usage.input > 0
    anthropic_body = {
        "type": "message",
        "model": "claude",
        "id": "m1",
        "content": [],
        "stop_reason": "end_turn",
        "usage": USAGE,
    }
    exact = invoke_result(json.dumps(anthropic_body).encode(), {}, request)
    assert exact.usage == CACHED and exact.response_model == "claude" and exact.finish_reasons == ["end_turn"]


def test_request_facts_per_family() -> None:
    anthropic = {"system": "be brief", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9}
    messages, prompt, max_tokens = request_facts(anthropic)
    assert messages == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert (prompt, max_tokens) == (None, 9)
    assert request_facts({"prompt": "hi", "max_gen_len": 5}) == (None, "hi", 5)
    assert request_facts({"messages": [], "inferenceConfig": {"max_new_tokens": 7}})[2] == 7
    cohere_messages, _, cohere_max = request_facts({"message": "hi", "preamble": "p", "max_tokens": 3})
    assert (
        cohere_messages == [{"role": "system", "content": "p"}, {"role": "user", "content": "hi"}] and cohere_max == 3
    )
    assert request_facts("not a body") == (None, None, None)


def test_text_of_body_shapes() -> None:
    assert text_of_body({"generation": "a"}) == "a"
    assert text_of_body({"output": {"message": {"content": [{"text": "b"}]}}}) == "b"
    assert text_of_body({"choices": [{"message": {"content": "c"}}]}) == "c"
    assert text_of_body({"contentBlockDelta": {"delta": {"text": "d"}}}) == "d"
    assert text_of_body(None) == ""


def _chunk(event: dict[str, Any]) -> dict[str, Any]:
    return {"chunk": {"bytes": json.dumps(event).encode()}}


def test_invoke_stream_anthropic_cut_short_uses_invocation_metrics() -> None:
    acc = InvokeStreamAccumulator(Request(provider="aws.bedrock", model="anthropic.claude-3-haiku-20240307-v1:0"))
    acc.on_chunk(_chunk(_start({**USAGE, "output_tokens": 1})))
    metrics = {"inputTokenCount": 40, "outputTokenCount": 12}
    acc.on_chunk(_chunk({"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics}))
    assert acc.result().usage == CACHED


def test_invoke_stream_llama_counts_are_cumulative() -> None:
    acc = InvokeStreamAccumulator(Request(provider="aws.bedrock", model="meta.llama3-70b-instruct-v1:0"))
    for chunk in (
        {"generation": "a", "prompt_token_count": 8, "generation_token_count": 1},
        {"generation": "b", "prompt_token_count": None, "generation_token_count": 2},
        {"generation": "", "prompt_token_count": None, "generation_token_count": 3, "stop_reason": "stop"},
    ):
        assert acc.on_chunk(_chunk(chunk)) is True
    assert acc.result().usage == Usage(input=8, output=3)
