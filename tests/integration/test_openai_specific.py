"""What only the ``openai`` SDK has: usage mapping, stream-usage injection, helpers, Responses, embeddings, raw."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types import CompletionUsage
from openai.types.responses import ResponseUsage
from pydantic import BaseModel

import tokenmeter
from tokenmeter import PolicyViolation, Usage, count_tokens
from tokenmeter.integrations import openai as tm_openai
from tokenmeter.integrations.openai import usage_from_chat, usage_from_embeddings, usage_from_responses
from tokenmeter.testing import Capture, capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from .checks import assert_estimated, assert_metered, calls, only_call_span
from .drivers.openai import DRIVER, MESSAGES

TEXT = "Hello from the fake meter today."
REPLY = Reply(text=TEXT, input_tokens=30, cached_tokens=200, output_tokens=6, reasoning_tokens=40, chunks=3)
EXPECTED = Usage(input=30, cache_read=200, output=6, reasoning=40)


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    tokenmeter.instrument("openai")
    yield
    tokenmeter.uninstrument("openai")


@pytest.fixture
def client(fp: FakeProvider) -> openai.OpenAI:
    return DRIVER.client(fp.url)


@pytest.fixture
def aclient(fp: FakeProvider) -> openai.AsyncOpenAI:
    return DRIVER.aclient(fp.url)


def metered(cap: Capture, usage: Usage = EXPECTED, model: str = "gpt-4o", **kw: Any) -> Any:
    return assert_metered(cap, provider="openai", model=model, usage=usage, **kw)


# -- pure usage mapping ------------------------------------------------------------------------------
def test_chat_usage_splits_cached_and_reasoning_out_of_the_totals() -> None:
    raw = {
        "prompt_tokens": 1000,
        "completion_tokens": 300,
        "total_tokens": 1300,
        "prompt_tokens_details": {"cached_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 250},
    }
    expected = Usage(input=200, cache_read=800, output=50, reasoning=250)
    assert usage_from_chat(raw) == expected
    assert usage_from_chat(CompletionUsage.model_validate(raw)) == expected
    assert usage_from_chat({"prompt_tokens": 7, "completion_tokens": 2}) == Usage(input=7, output=2)
    assert usage_from_chat(None) is None


def test_responses_and_embeddings_usage() -> None:
    raw = {
        "input_tokens": 500,
        "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 50},
        "output_tokens": 90,
        "output_tokens_details": {"reasoning_tokens": 60},
        "total_tokens": 590,
    }
    assert usage_from_responses(ResponseUsage.model_validate(raw)) == Usage(350, 100, 50, 30, 60)
    assert usage_from_embeddings({"prompt_tokens": 12, "total_tokens": 12}) == Usage(input=12)
    assert usage_from_embeddings({"prompt_tokens": "12"}) is None


@pytest.mark.parametrize("bad", ["12", -1, None, True, 1.5, [3]])
def test_malformed_counts_are_missing_never_raised(bad: Any) -> None:
    half = usage_from_chat({"prompt_tokens": bad, "completion_tokens": 5})
    assert half == Usage(output=5, estimated=True)
    details = {"prompt_tokens": 9, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": bad}}
    assert usage_from_chat(details) == Usage(input=9, output=5)
    assert usage_from_chat({"prompt_tokens": bad, "completion_tokens": bad}) is None
    assert usage_from_chat({"prompt_tokens_details": "nonsense"}) is None


def test_details_larger_than_their_total_are_clamped() -> None:
    raw = {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 50},
        "completion_tokens_details": {"reasoning_tokens": 9},
    }
    assert usage_from_chat(raw) == Usage(cache_read=10, reasoning=4)


@given(st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7))
def test_split_preserves_the_billed_total(prompt: int, cached: int, completion: int, reasoning: int) -> None:
    usage = usage_from_chat(
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
    )
    assert usage is not None and not usage.estimated
    assert usage.input_total == prompt and usage.output_total == completion
    assert usage.cache_read == min(cached, prompt) and usage.reasoning == min(reasoning, completion)


# -- chat streams: include_usage injection --------------------------------------------------------
def test_injected_usage_chunk_is_hidden_and_caller_options_kept(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(REPLY)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_obfuscation": False}
    )
    chunks = list(stream)
    assert all(chunk.choices for chunk in chunks)
    assert fp.requests[-1].json["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    metered(cap, stream=True)


def test_caller_asking_for_usage_sees_the_usage_chunk(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(REPLY)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 230
    metered(cap, stream=True)


def test_injection_can_be_turned_off(fp: FakeProvider, client: Any) -> None:
    with capture(inject_stream_usage=False) as cap:
        fp.enqueue(REPLY)
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        )
        assert "stream_options" not in fp.requests[-1].json
        span = assert_estimated(cap, provider="openai", model="gpt-4o")
    a = span.attributes or {}
    assert a["gen_ai.usage.input_tokens"] == count_tokens(MESSAGES, "gpt-4o")
    assert a["gen_ai.usage.output_tokens"] == count_tokens(text, "gpt-4o")


def test_stream_helper_is_metered_once(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(REPLY)
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "content.done" in events and final.choices[0].message.content == TEXT
    gc.collect()
    metered(cap, stream=True)


def test_stream_helper_left_early_is_metered_at_exit(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(REPLY)
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        next(iter(stream))
    assert calls(cap) == 1  # the helper (still referenced) closed the metered stream: no GC needed
    assert (only_call_span(cap).attributes or {})["tokenmeter.usage.estimated"] is True
    del stream
    gc.collect()
    assert calls(cap) == 1


async def test_async_stream_helper(fp: FakeProvider, cap: Capture, aclient: Any) -> None:
    fp.enqueue(REPLY)
    async with aclient.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == TEXT
    metered(cap, stream=True)
    fp.enqueue(REPLY)
    async with aclient.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as early:
        await early.__anext__()
    assert calls(cap) == 2


class Weather(BaseModel):
    city: str
    celsius: int


def test_parse_structured_output(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(Reply(input_tokens=40, output_tokens=11))
    completion = client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Weather)
    assert isinstance(completion.choices[0].message.parsed, Weather)
    metered(cap, Usage(input=40, output=11))


def test_request_and_response_attributes(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(Reply(text=TEXT, input_tokens=5, output_tokens=3))
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_completion_tokens=64)
    a = metered(cap, Usage(input=5, output=3)).attributes
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == fp.port
    assert a["gen_ai.response.id"] == response.id
    assert list(a["gen_ai.response.finish_reasons"]) == ["stop"]


# -- Responses API -------------------------------------------------------------------------------------
def test_responses_create(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(REPLY)
    response = client.responses.create(model="o4-mini", input="What is the weather?", instructions="Be brief.")
    assert response.output_text == TEXT
    metered(cap, model="o4-mini")


def test_responses_stream_create_and_helper(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(REPLY, REPLY)
    events = list(client.responses.create(model="gpt-4o", input=MESSAGES, stream=True))
    assert events[-1].type == "response.completed"
    with client.responses.stream(model="gpt-4o", input=MESSAGES) as stream:
        final = stream.get_final_response()
    assert final.output_text == TEXT
    spans = [s for s in cap.spans if s.name == "chat gpt-4o"]
    assert len(spans) == 2 and calls(cap, "ok") == 2
    assert all((s.attributes or {})["gen_ai.usage.input_tokens"] == 230 for s in spans)
    fp.enqueue(REPLY)
    with client.responses.stream(model="gpt-4o", input=MESSAGES) as early:
        next(iter(early))
    assert calls(cap) == 3


async def test_async_responses(fp: FakeProvider, cap: Capture, aclient: Any) -> None:
    fp.enqueue(REPLY)
    response = await aclient.responses.create(model="gpt-4o", input="hi", stream=True)
    assert [e.type async for e in response][-1] == "response.completed"
    metered(cap, stream=True)


# -- embeddings and legacy completions ---------------------------------------------------------------
def test_embeddings(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(Reply(input_tokens=17))
    result = client.embeddings.create(model="text-embedding-3-small", input=["one two", "three"])
    assert len(result.data) == 2
    metered(cap, Usage(input=17), model="text-embedding-3-small", operation="embeddings")


async def test_embeddings_without_usage_are_estimated(fp: FakeProvider, cap: Capture, aclient: Any) -> None:
    fp.enqueue(Reply(usage="missing"))
    await aclient.embeddings.create(model="text-embedding-3-small", input="one two three")
    span = assert_estimated(cap, provider="openai", model="text-embedding-3-small", operation="embeddings")
    assert (span.attributes or {})["gen_ai.usage.input_tokens"] == count_tokens(
        "one two three", "text-embedding-3-small"
    )


def test_legacy_completions(cap: Capture) -> None:
    body = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"index": 0, "text": "Hi.", "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
    }
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=body))
    client = openai.OpenAI(
        api_key="x", base_url="http://127.0.0.1:9/v1", http_client=httpx2.Client(transport=transport)
    )
    assert client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi").choices[0].text == "Hi."
    metered(cap, Usage(input=4, output=2), model="gpt-3.5-turbo-instruct", operation="text_completion")


# -- raw responses, providers, patching, robustness ----------------------------------------------------
def test_with_raw_response_variants(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(REPLY)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == TEXT
    metered(cap)
    cap.clear()
    fp.enqueue(REPLY)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert "stream_options" not in fp.requests[-1].json  # the caller's raw stream is left exactly as asked
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse()) == TEXT
    fp.enqueue(REPLY)
    with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES) as streamed:
        assert streamed.parse().choices[0].message.content == TEXT
    assert calls(cap, "ok") == 3
    # Bodies are exact; the raw stream carried no usage (none was asked, none injected): estimated.
    assert [(s.attributes or {})["tokenmeter.usage.estimated"] for s in cap.spans] == [True, False]


def test_provider_detection(fp: FakeProvider) -> None:
    azure = openai.AzureOpenAI(azure_endpoint=fp.url, api_key="x", api_version="2024-10-21")
    assert tm_openai.provider_of(azure) == "azure.ai.openai"
    by_host = openai.OpenAI(api_key="x", base_url="https://my-res.openai.azure.com/openai/v1")
    assert tm_openai.provider_of(by_host) == "azure.ai.openai"
    compatible = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:8000/v1")
    assert tm_openai.provider_of(compatible) == "openai"
    configured = SimpleNamespace(base_url="https://bedrock-mantle.us-east-1.api.aws/v1")
    configured._provider_runtime = SimpleNamespace(name="bedrock")  # openai>=3: OpenAI(provider=bedrock(...))
    assert tm_openai.provider_of(configured) == "aws.bedrock"


def test_uninstrument_restores_originals_and_instrument_is_idempotent(fp: FakeProvider, cap: Capture) -> None:
    from openai.resources.chat.completions.completions import Completions

    tokenmeter.uninstrument("openai")
    original = Completions.__dict__["create"]
    tokenmeter.instrument("openai")
    tm_openai.instrument()  # applying twice must not wrap twice
    assert Completions.__dict__["create"] is not original
    fp.enqueue(REPLY)
    DRIVER.call(DRIVER.client(fp.url), model="gpt-4o")
    metered(cap)
    tm_openai.uninstrument()
    tm_openai.uninstrument()
    assert Completions.__dict__["create"] is original


def test_an_uncommon_status_is_named_by_its_code(fp: FakeProvider, cap: Capture, client: Any) -> None:
    # openai raises the generic APIStatusError for statuses without a named subclass: error.type is the status
    fp.enqueue(Reply(status=418))
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert type(raised.value) is openai.APIStatusError
    assert dict(only_call_span(cap).attributes or {})["error.type"] == "418"
    assert cap.counter("tokenmeter.calls", **{"error.type": "418"}) == 1


def test_faults_inside_tokenmeter_never_reach_the_caller(
    fp: FakeProvider, cap: Capture, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tokenmeter bug")

    monkeypatch.setattr(tm_openai, "read", boom)
    monkeypatch.setattr(tm_openai.ChatStream, "_accumulate", boom)
    fp.enqueue(REPLY, REPLY)
    assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content == TEXT
    assert DRIVER.call(client, model="gpt-4o", stream=True) == TEXT
    assert calls(cap, "ok") == 2


def test_policy_block_sends_nothing(fp: FakeProvider, cap: Capture, client: Any) -> None:
    class Block:
        def before(self, call: Any) -> None:
            raise PolicyViolation("no frontier models here")

        def after(self, *args: Any) -> None:
            pass

        def close(self) -> None:
            pass

    cap.meter.gate = Block()
    with pytest.raises(PolicyViolation):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert fp.requests == []
    assert calls(cap, "blocked") == 1
