"""Bedrock responses of recorded shapes, served over loopback to the real ``boto3`` client.

Rates (USD per million tokens, the Bedrock pricing page as genai-prices carries it): Claude Sonnet 4.5
through a regional (``us.``) profile 3.30 input / 16.50 output; Titan Text Embeddings V2 0.02 input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

import tokenmeter
from tokenmeter import PriceBook, Usage
from tokenmeter.testing import Capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from ..integration.checks import only_call_span
from ..integration.drivers.bedrock_converse import bedrock_client

M = 10**6
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    tokenmeter.instrument("bedrock")
    yield
    tokenmeter.uninstrument("bedrock")


def _anthropic_events(output_by_model: int, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    message = {
        "id": "msg_bdrk_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 1200,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
        },
    }
    return [
        {"type": "message_start", "message": message},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"q": 1}'}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": output_by_model},
        },
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics},
    ]


def test_a_stream_meters_bedrocks_billed_count_and_keeps_the_models_own_beside_it(
    fp: FakeProvider, cap: Capture
) -> None:
    metrics = {"inputTokenCount": 1200, "outputTokenCount": 98, "invocationLatency": 900, "firstByteLatency": 300}
    fp.enqueue(Reply(body=_anthropic_events(130, metrics)))
    client = bedrock_client(fp.url)
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": "q"}],
    }
    response = client.invoke_model_with_response_stream(modelId=SONNET, body=json.dumps(body))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    assert chunks[-1]["type"] == "message_stop"
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["gen_ai.usage.output_tokens"] == 98
    assert attrs["tokenmeter.usage.model_reported.output_tokens"] == 130
    assert attrs["tokenmeter.usage.estimated"] is False
    expected = Decimal("3.3") * 1200 / M + Decimal("16.5") * 98 / M
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(expected), abs=1e-9)


def test_titan_embeddings_through_invoke_model_are_embeddings_with_no_output(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(
        Reply(
            body={
                "embedding": [0.1, -0.2, 0.3],
                "embeddingsByType": {"float": [0.1, -0.2, 0.3]},
                "inputTextTokenCount": 7,
            }
        )
    )
    client = bedrock_client(fp.url)
    body = {"inputText": "hello embeddings", "dimensions": 256, "normalize": True}
    client.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps(body))
    span = only_call_span(cap)
    attrs = dict(span.attributes or {})
    assert span.name == "embeddings amazon.titan-embed-text-v2:0"
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.usage.input_tokens"] == 7 and attrs["gen_ai.usage.output_tokens"] == 0
    assert attrs["tokenmeter.usage.estimated"] is False
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(Decimal("0.02") * 7 / M), abs=1e-12)


def test_cohere_embeddings_take_the_input_count_from_bedrocks_headers(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(
        Reply(
            body={"id": "e1", "embeddings": [[0.1, 0.2]], "texts": ["hi there"], "response_type": "embeddings_floats"},
            headers={"x-amzn-bedrock-input-token-count": "4"},
        )
    )
    client = bedrock_client(fp.url)
    client.invoke_model(
        modelId="cohere.embed-english-v3", body=json.dumps({"texts": ["hi there"], "input_type": "search_document"})
    )
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.usage.input_tokens"] == 4 and attrs["gen_ai.usage.output_tokens"] == 0
    assert attrs["tokenmeter.usage.estimated"] is False


def test_nova_multimodal_embeddings_behind_an_application_profile_are_embeddings(
    fp: FakeProvider, cap: Capture
) -> None:
    fp.enqueue(
        Reply(
            body={"embeddings": [{"embeddingType": "TEXT", "embedding": [0.5, 0.5]}]},
            headers={"x-amzn-bedrock-input-token-count": "9"},
        )
    )
    client = bedrock_client(fp.url)
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"
    body = {
        "taskType": "SINGLE_EMBEDDING",
        "singleEmbeddingParams": {
            "embeddingPurpose": "GENERIC_INDEX",
            "text": {"truncationMode": "END", "value": "hi"},
        },
    }
    client.invoke_model(modelId=arn, body=json.dumps(body))
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.usage.input_tokens"] == 9 and attrs["tokenmeter.usage.estimated"] is False


@pytest.mark.parametrize(
    "model",
    [
        SONNET,
        f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{SONNET}",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
        "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ],
)
def test_arns_profiles_and_region_prefixes_resolve_to_the_priced_model(model: str) -> None:
    cost = PriceBook().cost("aws.bedrock", model, Usage(input=1000, output=100))
    assert cost.usd == pytest.approx(Decimal("3.3") * 1000 / M + Decimal("16.5") * 100 / M, abs=Decimal("1e-9"))
