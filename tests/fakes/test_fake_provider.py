"""Self-tests of the fake provider: the REAL SDKs (openai, anthropic, boto3, google-genai) over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import boto3
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from pydantic import BaseModel

from tokenmeter.testing.fakes import FakeProvider, Reply, _eventstream

pytestmark = pytest.mark.integration

MSG: Any = [{"role": "user", "content": "What is the weather in Paris today?"}]  # 7 words + 4 = 11 default input
CACHED = Reply(input_tokens=10, cached_tokens=80, cache_write_tokens=20, output_tokens=5, reasoning_tokens=7)
TOOL = ("get_weather", {"city": "Paris", "days": 2})


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as fp:
        yield fp


@pytest.fixture()
def fp(server: FakeProvider) -> FakeProvider:
    server.clear()
    return server


def oai(fp: FakeProvider, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=fp.url + "/v1", api_key="sk-fake", max_retries=retries)


def claude(fp: FakeProvider, retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fp.url, api_key="sk-ant-fake", max_retries=retries)


@pytest.fixture(scope="module")
def bedrock(server: FakeProvider) -> Any:
    return _boto(server, retries=0)


def _boto(fp: FakeProvider, retries: int) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=fp.url,
        region_name="us-east-1",
        aws_access_key_id="AKIAFAKE",
        aws_secret_access_key="fake",
        config=Config(retries={"max_attempts": retries, "mode": "standard"}),  # retries, not attempts
    )


def gem(fp: FakeProvider) -> genai.Client:
    # keep the returned client referenced: a garbage-collected genai.Client closes its HTTP client
    return genai.Client(api_key="fake", http_options={"base_url": fp.url, "api_version": "v1beta"})


# --- server basics ----------------------------------------------------------------------------------------------


def test_lifecycle_loopback_and_unknown_route() -> None:
    fp = FakeProvider().start()
    try:
        assert fp.url.startswith("http://127.0.0.1:") and fp.port > 0
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(urllib.request.Request(fp.url + "/nope", data=b"{}"), timeout=5)
        assert info.value.code == 404
        assert fp.requests == []
    finally:
        fp.stop()
    fp.stop()  # idempotent


def test_default_reply_is_deterministic_and_queue_is_fifo_across_providers(fp: FakeProvider) -> None:
    client = oai(fp)
    first = client.chat.completions.create(model="gpt-4o", messages=MSG)
    second = client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert first.choices[0].message.content == "Hello from the fake."
    assert first.usage == second.usage
    assert first.usage is not None and (first.usage.prompt_tokens, first.usage.completion_tokens) == (11, 4)
    fp.enqueue(Reply(text="one", input_tokens=1), Reply(text="two", input_tokens=2))
    msg = claude(fp).messages.create(model="claude-x", max_tokens=50, messages=MSG)
    chat = client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert msg.content[0].type == "text" and msg.content[0].text == "one" and msg.usage.input_tokens == 1
    assert chat.choices[0].message.content == "two" and fp.pending == 0
    assert [r.provider for r in fp.requests] == ["openai", "openai", "anthropic", "openai"]
    assert fp.requests[2].model == "claude-x" and fp.requests[2].json["max_tokens"] == 50


def test_max_tokens_caps_default_output(fp: FakeProvider) -> None:
    resp = oai(fp).chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=2)
    assert resp.choices[0].finish_reason == "length" and resp.choices[0].message.content == "Hello from"
    assert resp.usage is not None and resp.usage.completion_tokens == 2


def test_eventstream_roundtrip_and_crc_check() -> None:
    data = _eventstream.event("chunk", {"a": 1}) + _eventstream.exception("throttlingException", "slow down")
    decoded = list(_eventstream.decode(data))
    assert decoded[0][0][":event-type"] == "chunk" and json.loads(decoded[0][1]) == {"a": 1}
    assert decoded[1][0][":message-type"] == "exception"
    with pytest.raises(ValueError):
        list(_eventstream.decode(data[:-1] + bytes([data[-1] ^ 1])))


# --- OpenAI -----------------------------------------------------------------------------------------------------


def test_openai_chat_cached_and_reasoning(fp: FakeProvider) -> None:
    fp.enqueue(CACHED)
    usage = oai(fp).chat.completions.create(model="o4-mini", messages=MSG).usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (110, 12, 122)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 80
    assert usage.prompt_tokens_details.cache_write_tokens == 20
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 7


def test_openai_chat_async_and_model_override(fp: FakeProvider) -> None:
    fp.enqueue(Reply(input_tokens=3, output_tokens=4, model="gpt-4o-2024-08-06"))

    async def run() -> Any:
        async with openai.AsyncOpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0) as client:
            return await client.chat.completions.create(model="gpt-4o", messages=MSG)

    resp = asyncio.run(run())
    assert resp.model == "gpt-4o-2024-08-06" and resp.usage.prompt_tokens == 3 and resp.usage.completion_tokens == 4
    assert fp.requests[0].headers["x-stainless-async"].startswith("async")


def test_openai_chat_tool_call(fp: FakeProvider) -> None:
    fp.enqueue(Reply(tool_call=TOOL))
    choice = oai(fp).chat.completions.create(model="gpt-4o", messages=MSG).choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == TOOL[1]


def test_openai_stream_without_include_usage_has_no_usage(fp: FakeProvider) -> None:
    fp.enqueue(Reply(input_tokens=5, output_tokens=6))
    chunks = list(oai(fp).chat.completions.create(model="gpt-4o", messages=MSG, stream=True))
    assert all(c.usage is None and c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from the fake."


def test_openai_stream_with_include_usage_50_chunks(fp: FakeProvider) -> None:
    fp.enqueue(Reply(input_tokens=1234, output_tokens=210, cached_tokens=0, chunks=50))
    stream = oai(fp).chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == 50
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (1234, 210, 1444)


def test_openai_stream_tool_call_and_helper(fp: FakeProvider) -> None:
    fp.enqueue(Reply(tool_call=TOOL, input_tokens=9, output_tokens=3))
    with oai(fp).chat.completions.stream(
        model="gpt-4o", messages=MSG, stream_options={"include_usage": True}
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == TOOL[1]
    assert final.usage is not None and (final.usage.prompt_tokens, final.usage.completion_tokens) == (9, 3)


class Weather(BaseModel):
    city: str
    degrees: int


def test_openai_parse_structured_output(fp: FakeProvider) -> None:
    resp = oai(fp).chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Weather)
    parsed = resp.choices[0].message.parsed
    assert isinstance(parsed, Weather) and parsed.degrees == 0


def test_openai_responses_create_and_stream(fp: FakeProvider) -> None:
    fp.enqueue(CACHED, CACHED)
    client = oai(fp)
    resp = client.responses.create(model="o4-mini", input="What is the weather in Paris?")
    assert resp.output_text == "Hello from the fake." and resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.total_tokens) == (110, 12, 122)
    assert resp.usage.input_tokens_details.cached_tokens == 80
    assert resp.usage.output_tokens_details.reasoning_tokens == 7
    with client.responses.stream(model="o4-mini", input=[{"role": "user", "content": "hi"}]) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Hello from the fake."
    assert final.usage is not None and final.usage.input_tokens == 110 and final.usage.output_tokens == 12
    assert fp.requests[1].stream and fp.requests[1].operation == "responses"


def test_openai_responses_raw_stream_events_and_tool_call(fp: FakeProvider) -> None:
    fp.enqueue(Reply(tool_call=TOOL, input_tokens=4, output_tokens=2))
    events = list(oai(fp).responses.create(model="gpt-4.1", input="hi", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1].response
    assert completed.usage is not None and completed.usage.input_tokens == 4
    call = completed.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments) == TOOL[1]


def test_openai_embeddings(fp: FakeProvider) -> None:
    client = oai(fp)
    resp = client.embeddings.create(model="text-embedding-3-small", input=["one two three", "four"])
    assert len(resp.data) == 2 and len(resp.data[0].embedding) == 8
    assert (resp.usage.prompt_tokens, resp.usage.total_tokens) == (4, 4)
    fp.enqueue(Reply(input_tokens=77))
    floats = client.embeddings.create(model="e", input="x", encoding_format="float", dimensions=3)
    assert len(floats.data[0].embedding) == 3 and floats.usage.prompt_tokens == 77


def test_azure_openai(fp: FakeProvider) -> None:
    client = openai.AzureOpenAI(azure_endpoint=fp.url, api_key="az", api_version="2024-10-21", max_retries=0)
    fp.enqueue(Reply(input_tokens=10, cached_tokens=5, output_tokens=3))
    resp = client.chat.completions.create(model="my-gpt4o", messages=MSG)
    assert resp.usage is not None and resp.usage.prompt_tokens == 15 and resp.model == "my-gpt4o"
    client.embeddings.create(model="my-embed", input="hello")
    chat, emb = fp.requests
    assert chat.path == "/openai/deployments/my-gpt4o/chat/completions" and chat.model == "my-gpt4o"
    assert chat.query["api-version"] == "2024-10-21" and chat.headers["api-key"] == "az"
    assert emb.operation == "embeddings" and emb.model == "my-embed"


def test_openai_errors_and_retry(fp: FakeProvider) -> None:
    fp.enqueue(Reply(status=429))
    with pytest.raises(openai.RateLimitError) as info:
        oai(fp).chat.completions.create(model="gpt-4o", messages=MSG)
    assert info.value.code == "rate_limit_exceeded"
    fp.enqueue(Reply(status=500))
    with pytest.raises(openai.InternalServerError):
        oai(fp).chat.completions.create(model="gpt-4o", messages=MSG)
    fp.enqueue(Reply(status=400))
    with pytest.raises(openai.BadRequestError):
        oai(fp).chat.completions.create(model="gpt-4o", messages=MSG)
    fp.clear()
    fp.enqueue(Reply(status=429), Reply(input_tokens=8, output_tokens=2))
    resp = oai(fp, retries=2).chat.completions.create(model="gpt-4o", messages=MSG)
    assert resp.usage is not None and resp.usage.prompt_tokens == 8
    assert [r.headers["x-stainless-retry-count"] for r in fp.requests] == ["0", "1"]


def test_openai_timeout_with_delay(fp: FakeProvider) -> None:
    fp.enqueue(Reply(delay_s=0.5))
    client = openai.OpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0, timeout=0.1)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o", messages=MSG)


def test_openai_missing_and_malformed_usage(fp: FakeProvider) -> None:
    fp.enqueue(
        Reply(usage="missing"), Reply(usage="missing"), Reply(usage="malformed", input_tokens=5, output_tokens=3)
    )
    client = oai(fp)
    assert client.chat.completions.create(model="m", messages=MSG).usage is None
    stream = client.chat.completions.create(
        model="m", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    assert all(c.usage is None for c in stream)
    usage = client.chat.completions.create(model="m", messages=MSG).usage
    assert usage is not None
    got: Any = (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)  # the SDK does not validate
    assert got == ("5", -4, None)


# --- Anthropic --------------------------------------------------------------------------------------------------


def test_anthropic_cache_and_thinking(fp: FakeProvider) -> None:
    fp.enqueue(CACHED)
    msg = claude(fp).messages.create(model="claude-opus-fake", max_tokens=100, messages=MSG)
    u = msg.usage
    assert (u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens, u.output_tokens) == (
        10,
        80,
        20,
        12,
    )
    assert [b.type for b in msg.content] == ["thinking", "text"] and msg.stop_reason == "end_turn"


def test_anthropic_tool_use(fp: FakeProvider) -> None:
    fp.enqueue(Reply(tool_call=TOOL))
    msg = claude(fp).messages.create(model="claude-x", max_tokens=100, messages=MSG)
    block = msg.content[-1]
    assert msg.stop_reason == "tool_use" and block.type == "tool_use" and block.input == TOOL[1]


def test_anthropic_raw_stream_usage_in_start_and_delta(fp: FakeProvider) -> None:
    fp.enqueue(Reply(input_tokens=10, cached_tokens=80, cache_write_tokens=20, output_tokens=30, chunks=5))
    events = list(claude(fp).messages.create(model="claude-x", max_tokens=100, messages=MSG, stream=True))
    start = next(e for e in events if e.type == "message_start").message.usage
    assert (start.input_tokens, start.cache_read_input_tokens, start.cache_creation_input_tokens) == (10, 80, 20)
    assert start.output_tokens == 1
    delta = [e for e in events if e.type == "message_delta"]
    assert len(delta) == 1 and delta[0].usage.output_tokens == 30
    assert len([e for e in events if e.type == "content_block_delta"]) == 5


def test_anthropic_stream_helper_sync_and_async(fp: FakeProvider) -> None:
    fp.enqueue(CACHED, CACHED)
    with claude(fp).messages.stream(model="claude-x", max_tokens=100, messages=MSG) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the fake." and final.usage.output_tokens == 12 and final.usage.input_tokens == 10

    async def run() -> Any:
        client = anthropic.AsyncAnthropic(base_url=fp.url, api_key="x", max_retries=0)
        async with client.messages.stream(model="c", max_tokens=9, messages=MSG) as s:
            return await s.get_final_message()

    final = asyncio.run(run())
    assert final.usage.cache_read_input_tokens == 80 and final.usage.output_tokens == 12


def test_anthropic_errors_and_retry(fp: FakeProvider) -> None:
    fp.enqueue(Reply(status=429))
    with pytest.raises(anthropic.RateLimitError) as info:
        claude(fp).messages.create(model="c", max_tokens=5, messages=MSG)
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    fp.enqueue(Reply(status=500))
    with pytest.raises(anthropic.InternalServerError):
        claude(fp).messages.create(model="c", max_tokens=5, messages=MSG)
    fp.enqueue(Reply(status=429), Reply(input_tokens=3))
    msg = claude(fp, retries=2).messages.create(model="c", max_tokens=5, messages=MSG)
    assert msg.usage.input_tokens == 3 and fp.pending == 0


def test_anthropic_malformed_usage(fp: FakeProvider) -> None:
    fp.enqueue(Reply(usage="malformed", input_tokens=5, output_tokens=3))
    u = claude(fp).messages.create(model="c", max_tokens=5, messages=MSG).usage
    got: Any = (u.input_tokens, u.output_tokens, u.cache_creation_input_tokens)  # the SDK does not validate
    assert got == ("5", -4, None)


def test_anthropic_on_bedrock(fp: FakeProvider) -> None:
    client = anthropic.AnthropicBedrock(
        base_url=fp.url, aws_region="us-east-1", aws_access_key="AKIAFAKE", aws_secret_key="x", max_retries=0
    )
    model = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
    fp.enqueue(CACHED, CACHED)
    msg = client.messages.create(model=model, max_tokens=50, messages=MSG)
    assert msg.usage.input_tokens == 10 and msg.usage.output_tokens == 12
    with client.messages.stream(model=model, max_tokens=50, messages=MSG) as stream:
        final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens == 80 and final.usage.output_tokens == 12
    assert [r.operation for r in fp.requests] == ["invoke", "invoke-with-response-stream"]
    assert fp.requests[0].model == model and fp.requests[0].path.startswith("/model/")


# --- Bedrock ----------------------------------------------------------------------------------------------------


def test_bedrock_converse_cache_and_reasoning(fp: FakeProvider, bedrock: Any) -> None:
    fp.enqueue(CACHED)
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-v1:0"
    resp = bedrock.converse(modelId=arn, messages=[{"role": "user", "content": [{"text": "hi there"}]}])
    u = resp["usage"]
    assert (u["inputTokens"], u["cacheReadInputTokens"], u["cacheWriteInputTokens"]) == (10, 80, 20)
    assert (u["outputTokens"], u["totalTokens"]) == (12, 122)
    assert resp["stopReason"] == "end_turn" and "reasoningContent" in resp["output"]["message"]["content"][0]
    assert fp.requests[0].model == arn and fp.requests[0].operation == "converse"


def test_bedrock_converse_default_and_tool(fp: FakeProvider, bedrock: Any) -> None:
    msgs = [{"role": "user", "content": [{"text": "one two three"}]}]
    resp = bedrock.converse(modelId="amazon.nova-lite-v1:0", messages=msgs, system=[{"text": "be brief"}])
    assert resp["usage"] == {"inputTokens": 13, "outputTokens": 4, "totalTokens": 17}
    fp.enqueue(Reply(tool_call=TOOL))
    resp = bedrock.converse(modelId="amazon.nova-lite-v1:0", messages=msgs)
    assert resp["stopReason"] == "tool_use"
    assert resp["output"]["message"]["content"][0]["toolUse"]["input"] == TOOL[1]


def test_bedrock_converse_stream(fp: FakeProvider, bedrock: Any) -> None:
    fp.enqueue(Reply(input_tokens=10, cached_tokens=80, output_tokens=5, chunks=3), Reply(tool_call=TOOL))
    msgs = [{"role": "user", "content": [{"text": "hi"}]}]
    events = list(bedrock.converse_stream(modelId="anthropic.claude-v2", messages=msgs)["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "Hello from the fake." and sum("contentBlockDelta" in e for e in events) == 3
    assert events[-1]["metadata"]["usage"] == {
        "inputTokens": 10,
        "outputTokens": 5,
        "totalTokens": 95,
        "cacheReadInputTokens": 80,
    }
    events = list(bedrock.converse_stream(modelId="anthropic.claude-v2", messages=msgs)["stream"])
    assert events[1]["contentBlockStart"]["start"]["toolUse"]["name"] == "get_weather"
    assert next(e for e in events if "messageStop" in e)["messageStop"]["stopReason"] == "tool_use"


INVOKE_CASES = [
    (
        "anthropic.claude-3-haiku-20240307-v1:0",
        {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
    ),
    ("us.amazon.nova-pro-v1:0", {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
    ("meta.llama3-70b-instruct-v1:0", {"prompt": "hi", "max_gen_len": 50}),
    ("cohere.command-r-plus-v1:0", {"message": "hi", "max_tokens": 50}),
]


def _body_usage(model: str, body: dict[str, Any]) -> tuple[Any, Any]:
    if "anthropic" in model:
        return body["usage"]["input_tokens"], body["usage"]["output_tokens"]
    if "nova" in model:
        return body["usage"]["inputTokens"], body["usage"]["outputTokens"]
    if "llama" in model:
        return body["prompt_token_count"], body["generation_token_count"]
    assert "usage" not in body and "text" in body
    return None, None


@pytest.mark.parametrize(("model", "body"), INVOKE_CASES)
def test_bedrock_invoke_families(fp: FakeProvider, bedrock: Any, model: str, body: dict[str, Any]) -> None:
    fp.enqueue(Reply(input_tokens=21, output_tokens=8))
    resp = bedrock.invoke_model(modelId=model, body=json.dumps(body))
    headers = resp["ResponseMetadata"]["HTTPHeaders"]
    assert (headers["x-amzn-bedrock-input-token-count"], headers["x-amzn-bedrock-output-token-count"]) == ("21", "8")
    expected = (None, None) if "cohere" in model else (21, 8)
    assert _body_usage(model, json.loads(resp["body"].read())) == expected


@pytest.mark.parametrize(("model", "body"), INVOKE_CASES)
def test_bedrock_invoke_stream_families(fp: FakeProvider, bedrock: Any, model: str, body: dict[str, Any]) -> None:
    fp.enqueue(Reply(input_tokens=21, output_tokens=8, chunks=4))
    resp = bedrock.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in resp["body"]]
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert (metrics["inputTokenCount"], metrics["outputTokenCount"]) == (21, 8)
    if "anthropic" in model:
        assert chunks[0]["message"]["usage"]["input_tokens"] == 21
        assert next(c for c in chunks if c["type"] == "message_delta")["usage"]["output_tokens"] == 8
    assert fp.requests[0].stream and fp.requests[0].model == model


def test_bedrock_invoke_cached_headers_and_missing_usage(fp: FakeProvider, bedrock: Any) -> None:
    model, body = INVOKE_CASES[0]
    fp.enqueue(CACHED, Reply(usage="missing"))
    headers = bedrock.invoke_model(modelId=model, body=json.dumps(body))["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-cache-read-input-token-count"] == "80"
    assert headers["x-amzn-bedrock-cache-write-input-token-count"] == "20"
    resp = bedrock.invoke_model(modelId=model, body=json.dumps(body))
    assert "x-amzn-bedrock-input-token-count" not in resp["ResponseMetadata"]["HTTPHeaders"]
    assert "usage" not in json.loads(resp["body"].read())


def test_bedrock_errors_and_retry(fp: FakeProvider, bedrock: Any) -> None:
    msgs = [{"role": "user", "content": [{"text": "hi"}]}]
    for status, code in ((429, "ThrottlingException"), (500, "InternalServerException"), (400, "ValidationException")):
        fp.enqueue(Reply(status=status))
        with pytest.raises(ClientError) as info:
            bedrock.converse(modelId="amazon.nova-lite-v1:0", messages=msgs)
        assert info.value.response["Error"]["Code"] == code
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    fp.clear()
    fp.enqueue(Reply(status=429), Reply(input_tokens=6))
    resp = _boto(fp, retries=2).converse(modelId="amazon.nova-lite-v1:0", messages=msgs)
    assert resp["usage"]["inputTokens"] == 6 and len(fp.requests) == 2


def test_bedrock_malformed_usage(fp: FakeProvider, bedrock: Any) -> None:
    fp.enqueue(Reply(usage="malformed", input_tokens=5, output_tokens=3))
    resp = bedrock.converse(modelId="amazon.nova-lite-v1:0", messages=[{"role": "user", "content": [{"text": "x"}]}])
    # botocore coerces the numeric string and drops the null: what a meter sees through boto3
    assert resp["usage"] == {"inputTokens": 5, "outputTokens": -4}


# --- Gemini -----------------------------------------------------------------------------------------------------


def test_gemini_generate_cache_and_thoughts(fp: FakeProvider) -> None:
    fp.enqueue(CACHED)
    client = gem(fp)

    resp = client.models.generate_content(model="gemini-2.5-flash", contents="What is the weather?")
    u = resp.usage_metadata
    assert u is not None
    assert (u.prompt_token_count, u.cached_content_token_count, u.candidates_token_count) == (110, 80, 5)
    assert (u.thoughts_token_count, u.total_token_count) == (7, 122)
    assert resp.text == "Hello from the fake."
    req = fp.requests[0]
    assert req.provider == "gemini" and req.model == "gemini-2.5-flash" and req.path.endswith(":generateContent")


def test_gemini_default_usage_omits_zero_classes(fp: FakeProvider) -> None:
    client = gem(fp)

    resp = client.models.generate_content(model="gemini-2.0-flash", contents="one two three")
    u = resp.usage_metadata
    assert u is not None and (u.prompt_token_count, u.candidates_token_count, u.total_token_count) == (7, 4, 11)
    assert u.cached_content_token_count is None and u.thoughts_token_count is None


def test_gemini_stream_final_chunk_has_usage(fp: FakeProvider) -> None:
    fp.enqueue(Reply(input_tokens=10, cached_tokens=5, output_tokens=6, reasoning_tokens=2, chunks=4))
    client = gem(fp)

    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert len(chunks) == 4 and "".join(c.text or "" for c in chunks) == "Hello from the fake."
    first, last = chunks[0].usage_metadata, chunks[-1].usage_metadata
    assert first is not None and first.prompt_token_count == 15 and first.candidates_token_count is None
    assert last is not None and (last.candidates_token_count, last.thoughts_token_count) == (6, 2)
    assert last.total_token_count == 23 and fp.requests[0].query == {"alt": "sse"}


def test_gemini_async_generate_and_stream(fp: FakeProvider) -> None:
    fp.enqueue(Reply(input_tokens=3, output_tokens=4), Reply(input_tokens=5, output_tokens=6))

    async def run() -> tuple[Any, list[Any]]:
        client = gem(fp)
        resp = await client.aio.models.generate_content(model="gemini-2.0-flash", contents="hi")
        stream = await client.aio.models.generate_content_stream(model="gemini-2.0-flash", contents="hi")
        return resp, [c async for c in stream]

    resp, chunks = asyncio.run(run())
    assert resp.usage_metadata.prompt_token_count == 3 and resp.usage_metadata.candidates_token_count == 4
    assert chunks[-1].usage_metadata.total_token_count == 11


def test_gemini_function_call_and_thoughts_included(fp: FakeProvider) -> None:
    fp.enqueue(Reply(tool_call=TOOL, reasoning_tokens=3))
    config = genai_types.GenerateContentConfig(thinking_config=genai_types.ThinkingConfig(include_thoughts=True))
    client = gem(fp)

    resp = client.models.generate_content(model="gemini-2.5-pro", contents="weather?", config=config)
    assert resp.function_calls and resp.function_calls[0].name == "get_weather"
    assert resp.function_calls[0].args == TOOL[1]
    parts = resp.candidates[0].content.parts  # type: ignore[index, union-attr]
    assert parts is not None and parts[0].thought is True


def test_gemini_errors_and_malformed(fp: FakeProvider) -> None:
    fp.enqueue(Reply(status=429), Reply(status=500), Reply(usage="malformed", input_tokens=5, output_tokens=3))
    client = gem(fp)
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="gemini-2.0-flash", contents="hi")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    with pytest.raises(genai_errors.ServerError):
        client.models.generate_content(model="gemini-2.0-flash", contents="hi")
    u = client.models.generate_content(model="gemini-2.0-flash", contents="hi").usage_metadata
    assert u is not None and (u.prompt_token_count, u.candidates_token_count, u.total_token_count) == (5, -4, None)


def test_gemini_retry_then_success(fp: FakeProvider) -> None:
    retry = genai_types.HttpRetryOptions(
        attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0, http_status_codes=[429]
    )
    options = genai_types.HttpOptions(base_url=fp.url, api_version="v1beta", retry_options=retry)
    client = genai.Client(api_key="fake", http_options=options)
    fp.enqueue(Reply(status=429), Reply(input_tokens=9))
    resp = client.models.generate_content(model="gemini-2.0-flash", contents="hi")
    assert resp.usage_metadata is not None and resp.usage_metadata.prompt_token_count == 9 and len(fp.requests) == 2


def test_gemini_stream_without_sse_is_a_json_array(fp: FakeProvider) -> None:
    url = fp.url + "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    with urllib.request.urlopen(urllib.request.Request(url, b'{"contents": []}'), timeout=5) as resp:
        chunks = json.loads(resp.read())
    assert len(chunks) == 4 and chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 4


def test_invoke_stream_bytes_are_base64_in_the_wire(fp: FakeProvider) -> None:
    """botocore decodes ``bytes``; on the wire they are base64 inside event-stream frames."""
    body = json.dumps({"prompt": "hi"}).encode()
    req = urllib.request.Request(fp.url + "/model/meta.llama3-8b-instruct-v1%3A0/invoke-with-response-stream", body)
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["content-type"] == "application/vnd.amazon.eventstream"
        frames = list(_eventstream.decode(resp.read()))
    payload = json.loads(base64.b64decode(json.loads(frames[0][1])["bytes"]))
    assert payload["prompt_token_count"] == 5 and fp.requests[0].model == "meta.llama3-8b-instruct-v1:0"
