"""What only Bedrock has: InvokeModel body families (Anthropic, Nova, Llama, Cohere), the token-count headers,
a response body that must stay readable, ARN model ids, and a patch on every botocore client."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import wrapt
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from botocore.response import StreamingBody

import tokenmeter
from tokenmeter import PriceBook, Usage
from tokenmeter._call import Request
from tokenmeter.integrations import bedrock
from tokenmeter.testing import Capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from .checks import assert_estimated, assert_metered, calls, only_call_span, tokens
from .drivers.bedrock_converse import bedrock_client, bedrock_expected, converse_kwargs, converse_text

TEXT = "Bedrock answers in four words."
REPLY = Reply(text=TEXT, input_tokens=33, output_tokens=9, chunks=3)
NOVA, LLAMA, COHERE = "amazon.nova-pro-v1:0", "meta.llama3-70b-instruct-v1:0", "cohere.command-r-v1:0"
BODIES: dict[str, dict[str, Any]] = {
    NOVA: {"messages": [{"role": "user", "content": [{"text": "Hi"}]}], "inferenceConfig": {"max_new_tokens": 64}},
    LLAMA: {"prompt": "<|begin_of_text|>Hi", "max_gen_len": 64},
    COHERE: {"message": "Hi", "chat_history": [], "max_tokens": 64},
}


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    tokenmeter.instrument("bedrock")
    try:
        yield
    finally:
        tokenmeter.uninstrument("bedrock")


@pytest.fixture
def client(fp: FakeProvider) -> Any:
    return bedrock_client(fp.url)


def _stream_text(response: dict[str, Any]) -> str:
    out = []
    for event in response["body"]:
        chunk = json.loads(event["chunk"]["bytes"])
        out.append(chunk.get("generation") or chunk.get("text") or "")
        out.append(chunk.get("contentBlockDelta", {}).get("delta", {}).get("text", ""))
    return "".join(out)


def test_one_patch_on_botocore_restored_on_uninstrument() -> None:
    assert isinstance(BaseClient.__dict__["_make_api_call"], wrapt.FunctionWrapper)
    tokenmeter.uninstrument("bedrock")
    assert not isinstance(BaseClient.__dict__["_make_api_call"], wrapt.FunctionWrapper)


def test_other_aws_calls_pass_through_unmetered(fp: FakeProvider, cap: Capture, client: Any) -> None:
    s3 = boto3.client(
        "s3", endpoint_url=fp.url, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="s"
    )
    with pytest.raises(ClientError):
        s3.list_buckets()
    with pytest.raises(ClientError):  # a Bedrock Runtime operation that is not an LLM call
        client.apply_guardrail(guardrailIdentifier="g", guardrailVersion="1", source="INPUT", content=[])
    assert cap.spans == [] and calls(cap) == 0


@pytest.mark.parametrize("model", [NOVA, LLAMA, COHERE], ids=["nova", "llama", "cohere"])
def test_invoke_model_families(fp: FakeProvider, cap: Capture, client: Any, model: str) -> None:
    fp.enqueue(REPLY)
    response = client.invoke_model(modelId=model, body=json.dumps(BODIES[model]))
    body = json.loads(response["body"].read())  # still readable after the integration read it
    assert TEXT in json.dumps(body)
    expected = Usage(input=33, output=9)
    assert_metered(cap, provider="aws.bedrock", model=model, usage=expected, check_response_model=False)
    if model == COHERE:  # no usage in the body: the x-amzn-bedrock-*-token-count headers; and no price: never $0
        assert "usage" not in body and PriceBook().cost("aws.bedrock", model, expected).usd is None
        assert (only_call_span(cap).attributes or {})["tokenmeter.cost.source"] == "unpriced"
        assert int(cap.counter("tokenmeter.tokens.unpriced")) == 42


@pytest.mark.parametrize("model", [NOVA, LLAMA, COHERE], ids=["nova", "llama", "cohere"])
def test_invoke_model_stream_families(fp: FakeProvider, cap: Capture, client: Any, model: str) -> None:
    fp.enqueue(REPLY)
    response = client.invoke_model_with_response_stream(modelId=model, body=json.dumps(BODIES[model]))
    assert _stream_text(response) == TEXT
    assert_metered(
        cap,
        provider="aws.bedrock",
        model=model,
        usage=Usage(input=33, output=9),
        check_response_model=False,
        stream=True,
    )


def test_nova_invoke_cache_tokens(fp: FakeProvider, cap: Capture, client: Any) -> None:
    reply = Reply(text=TEXT, input_tokens=33, output_tokens=9, cached_tokens=500, cache_write_tokens=60)
    fp.enqueue(reply)
    client.invoke_model(modelId=NOVA, body=json.dumps(BODIES[NOVA]))
    expected = Usage(input=33, cache_read=500, cache_write=60, output=9)
    assert_metered(cap, provider="aws.bedrock", model=NOVA, usage=expected, check_response_model=False)


@pytest.mark.parametrize("mode", ["malformed", "missing"])
@pytest.mark.parametrize("model", [NOVA, LLAMA, COHERE], ids=["nova", "llama", "cohere"])
def test_invoke_bad_usage_is_estimated(fp: FakeProvider, cap: Capture, client: Any, model: str, mode: Any) -> None:
    fp.enqueue(Reply(text=TEXT, input_tokens=33, output_tokens=9, usage=mode))
    response = client.invoke_model(modelId=model, body=json.dumps(BODIES[model]))
    assert TEXT in response["body"].read().decode()
    assert_estimated(cap, provider="aws.bedrock", model=model)


def test_inference_profile_arn_is_kept_and_priced(fp: FakeProvider, cap: Capture, client: Any) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
    fp.enqueue(REPLY)
    assert converse_text(client.converse(**converse_kwargs(arn))) == TEXT
    assert fp.requests[-1].model == arn
    span = assert_metered(
        cap, provider="aws.bedrock", model=arn, usage=bedrock_expected(REPLY), check_response_model=False
    )
    assert (span.attributes or {})["tokenmeter.cost.source"].startswith("table:")


def test_converse_reasoning_is_inside_output(fp: FakeProvider, cap: Capture, client: Any) -> None:
    model = "anthropic.claude-3-7-sonnet-20250219-v1:0"
    reply = Reply(text=TEXT, input_tokens=20, output_tokens=9, reasoning_tokens=200)
    fp.enqueue(reply)
    client.converse(**converse_kwargs(model))
    expected = bedrock_expected(reply)
    assert expected == Usage(input=20, output=209)
    assert_metered(cap, provider="aws.bedrock", model=model, usage=expected, check_response_model=False)


def test_sdk_retry_of_a_stream_is_one_call(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(status=429), REPLY)
    response = bedrock_client(fp.url, max_retries=2).converse_stream(**converse_kwargs(NOVA))
    assert "".join(e.get("contentBlockDelta", {}).get("delta", {}).get("text", "") for e in response["stream"]) == TEXT
    assert len(fp.requests) == 2
    assert calls(cap, "ok") == 1 and calls(cap) == 1
    assert tokens(cap) == 42


def test_a_failing_body_read_fails_the_callers_read_the_same_way() -> None:
    class Broken(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise ConnectionResetError("peer went away")

    response: dict[str, Any] = {"body": StreamingBody(Broken(), 10), "ResponseMetadata": {"HTTPHeaders": {}}}
    with pytest.raises(ConnectionResetError):
        bedrock._Operation("InvokeModel").result(response, Request(provider="aws.bedrock", model=NOVA))
    with pytest.raises(ConnectionResetError, match="peer went away"):
        response["body"].read()
