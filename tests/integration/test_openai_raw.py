"""Issue 13 defects 1-2: raw and streamed-raw responses are metered exactly, whatever the order of first use.

``with_raw_response`` / ``with_streaming_response`` (chat and Responses, sync and async) are metered from
what the caller reads of the body; a client whose raw wrapper was cached before ``instrument()`` (as
langchain-openai's is) is still metered, exactly once.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import tokenmeter
from tokenmeter import Usage
from tokenmeter.testing import Capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from .checks import assert_metered, calls
from .drivers.openai import DRIVER, MESSAGES

TEXT = "Hello from the fake meter today."
REPLY = Reply(text=TEXT, input_tokens=30, cached_tokens=200, output_tokens=6, reasoning_tokens=40, chunks=3)
EXPECTED = Usage(input=30, cache_read=200, output=6, reasoning=40)
ASK = {"include_usage": True}


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    tokenmeter.instrument("openai")
    yield
    tokenmeter.uninstrument("openai")


def exact(cap: Capture) -> None:
    assert_metered(cap, provider="openai", model="gpt-4o", usage=EXPECTED)


def estimated(cap: Capture) -> None:
    assert calls(cap, "ok") == 1
    (span,) = [s for s in cap.spans if "gen_ai.provider.name" in (s.attributes or {})]
    assert (span.attributes or {})["tokenmeter.usage.estimated"] is True


def _lines_text(lines: list[str]) -> str:
    out = []
    for line in lines:
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            obj = json.loads(line[5:])
            for choice in obj.get("choices") or ():
                out.append((choice.get("delta") or {}).get("content") or "")
            if obj.get("type") == "response.output_text.delta":
                out.append(obj["delta"])
    return "".join(out)


# -- with_streaming_response, complete bodies ----------------------------------------------------------------
@pytest.mark.parametrize("read", ["parse", "json", "read", "text"])
def test_streaming_response_chat_body_is_exact(fp: FakeProvider, cap: Capture, read: str) -> None:
    fp.enqueue(REPLY)
    client = DRIVER.client(fp.url)
    with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES) as raw:
        got = getattr(raw, read)()
    if read == "parse":
        assert got.choices[0].message.content == TEXT
    exact(cap)


def test_streaming_response_responses_body_is_exact(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(REPLY)
    client = DRIVER.client(fp.url)
    with client.responses.with_streaming_response.create(model="gpt-4o", input="Say hello") as raw:
        assert raw.parse().output_text == TEXT
    exact(cap)


def test_streaming_response_closed_unread_is_estimated_once(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(REPLY)
    with DRIVER.client(fp.url).chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES):
        pass
    estimated(cap)


# -- with_streaming_response / with_raw_response, streams --------------------------------------------------------
def test_streaming_response_responses_stream_parse_is_exact(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(REPLY)
    client = DRIVER.client(fp.url)
    with client.responses.with_streaming_response.create(model="gpt-4o", input="Hi", stream=True) as raw:
        kinds = [event.type for event in raw.parse()]
    assert kinds[-1] == "response.completed"
    exact(cap)


def test_streaming_response_responses_stream_lines_are_exact(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(REPLY)
    client = DRIVER.client(fp.url)
    with client.responses.with_streaming_response.create(model="gpt-4o", input="Hi", stream=True) as raw:
        assert _lines_text(list(raw.iter_lines())) == TEXT
    exact(cap)


@pytest.mark.parametrize("read", ["parse", "iter_lines", "read"])
def test_streaming_response_chat_stream_the_caller_asked_usage_for_is_exact(
    fp: FakeProvider, cap: Capture, read: str
) -> None:
    fp.enqueue(REPLY)
    client = DRIVER.client(fp.url)
    kwargs: dict[str, Any] = {"model": "gpt-4o", "messages": MESSAGES, "stream": True, "stream_options": ASK}
    with client.chat.completions.with_streaming_response.create(**kwargs) as raw:
        if read == "parse":
            chunks = list(raw.parse())
            assert chunks[-1].usage is not None and not chunks[-1].choices  # the caller asked: the caller sees it
        elif read == "iter_lines":
            assert _lines_text(list(raw.iter_lines())) == TEXT
        else:
            raw.read()
    exact(cap)


@pytest.mark.parametrize("read", ["parse", "iter_lines"])
def test_raw_chat_stream_is_left_as_asked_and_estimated(fp: FakeProvider, cap: Capture, read: str) -> None:
    fp.enqueue(REPLY)
    client = DRIVER.client(fp.url)
    with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES, stream=True) as raw:
        if read == "parse":
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse())
        else:
            text = _lines_text(list(raw.iter_lines()))
    assert text == TEXT
    assert "stream_options" not in fp.requests[-1].json  # a raw stream is sent exactly as the caller wrote it
    estimated(cap)
    (span,) = [s for s in cap.spans if "gen_ai.provider.name" in (s.attributes or {})]
    assert (span.attributes or {})["gen_ai.usage.output_tokens"] > 0  # counted from the streamed text


def test_with_raw_response_stream_parse_is_metered(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(REPLY)
    client = DRIVER.client(fp.url)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options=ASK
    )
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    exact(cap)


def test_with_raw_response_body_is_exact(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(REPLY)
    raw = DRIVER.client(fp.url).chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == TEXT
    exact(cap)


def test_async_raw_responses_are_exact(fp: FakeProvider, cap: Capture) -> None:
    async def run() -> None:
        client = DRIVER.aclient(fp.url)
        fp.enqueue(REPLY)
        async with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES) as r:
            assert (await r.parse()).choices[0].message.content == TEXT
        fp.enqueue(REPLY)
        kwargs: dict[str, Any] = {"model": "gpt-4o", "input": "Hi", "stream": True}
        async with client.responses.with_streaming_response.create(**kwargs) as r:
            assert [e.type async for e in await r.parse()][-1] == "response.completed"
        fp.enqueue(REPLY)
        async with client.responses.with_streaming_response.create(**kwargs) as r:
            assert _lines_text([line async for line in r.iter_lines()]) == TEXT
        fp.enqueue(REPLY)
        raw = await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
        assert raw.parse().choices[0].message.content == TEXT

    asyncio.run(run())
    spans = [s for s in cap.spans if "gen_ai.provider.name" in (s.attributes or {})]
    assert len(spans) == 4
    for span in spans:
        a = span.attributes or {}
        assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (230, 46)
        assert a["tokenmeter.usage.estimated"] is False


# -- first use before instrument() --------------------------------------------------------------------------------
def test_a_raw_wrapper_cached_before_instrument_is_metered(fp: FakeProvider, cap: Capture) -> None:
    tokenmeter.uninstrument("openai")
    client = DRIVER.client(fp.url)
    fp.enqueue(REPLY)
    cached = client.chat.completions.with_raw_response  # openai caches this around the unpatched create
    cached.create(model="gpt-4o", messages=MESSAGES)
    streaming = client.responses.with_streaming_response
    tokenmeter.instrument("openai")
    assert calls(cap) == 0
    fp.enqueue(REPLY)
    assert client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES).parse().choices
    exact(cap)
    fp.enqueue(REPLY)
    with streaming.create(model="gpt-4o", input="Say hello") as raw:
        raw.parse()
    assert calls(cap, "ok") == 2
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": "cache_read"}) == 2 * 200
    assert all((s.attributes or {})["tokenmeter.usage.estimated"] is False for s in cap.spans)


def test_a_plain_client_used_before_instrument_meters_every_later_call(fp: FakeProvider, cap: Capture) -> None:
    tokenmeter.uninstrument("openai")
    client = DRIVER.client(fp.url)
    fp.enqueue(REPLY)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    tokenmeter.instrument("openai")
    for _ in range(3):
        fp.enqueue(REPLY)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        fp.enqueue(REPLY)
        client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert calls(cap, "ok") == 6
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": "cache_read"}) == 6 * 200


def test_a_dropped_raw_response_is_metered_once(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(REPLY)
    ctx = DRIVER.client(fp.url).chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES)
    raw = ctx.__enter__()
    del raw, ctx
    gc.collect()
    tokenmeter._orphans.drain()
    estimated(cap)


def test_langchain_openai_used_before_instrument(fp: FakeProvider, cap: Capture) -> None:
    """The issue's case with the real library (skipped unless langchain-openai is installed: the framework
    suites own that dependency): a ChatOpenAI invoked once before instrument() is metered afterwards."""
    langchain_openai = pytest.importorskip("langchain_openai")
    tokenmeter.uninstrument("openai")
    llm = langchain_openai.ChatOpenAI(model="gpt-4o", api_key="x", base_url=fp.url + "/v1", max_retries=0)
    fp.enqueue(REPLY)
    llm.invoke("hello")
    tokenmeter.instrument("openai")
    for _ in range(3):
        fp.enqueue(REPLY)
        llm.invoke("hello")
    fp.enqueue(REPLY)
    assert "".join(str(c.content) for c in llm.stream("hello")) == TEXT
    assert calls(cap, "ok") == 4
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": "cache_read"}) == 4 * 200
    assert all((s.attributes or {})["tokenmeter.usage.estimated"] is False for s in cap.spans)


def test_openai_agents_streamed_run_is_exact(fp: FakeProvider, cap: Capture) -> None:
    """The issue's case with the real OpenAI Agents SDK (skipped unless openai-agents is installed: the
    framework suites own that dependency): Runner.run_streamed goes through with_streaming_response."""
    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)
    client = openai.AsyncOpenAI(api_key="x", base_url=fp.url + "/v1", max_retries=0)
    model = agents.OpenAIResponsesModel(model="gpt-4o", openai_client=client)
    agent = agents.Agent(name="helper", instructions="Be brief.", model=model)

    async def run() -> Any:
        result = agents.Runner.run_streamed(agent, "hi")
        async for _ in result.stream_events():
            pass
        return result.final_output

    fp.enqueue(Reply(text=TEXT, input_tokens=46, output_tokens=11))
    try:
        assert asyncio.run(run()) == TEXT
    finally:  # a process-wide switch: left off, the Agents SDK adapter of later tests would see no spans
        agents.set_tracing_disabled(False)
    assert fp.requests[-1].headers.get("x-stainless-raw-response") == "stream"
    (span,) = [s for s in cap.spans if "gen_ai.provider.name" in (s.attributes or {})]
    a = span.attributes or {}
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (46, 11)
    assert a["tokenmeter.usage.estimated"] is False
