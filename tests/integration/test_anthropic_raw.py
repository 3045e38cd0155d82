"""Issue 13 defects 1-2 for anthropic: raw and streamed-raw responses metered exactly, whatever the order."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anthropic
import pytest

import tokenmeter
from tokenmeter.testing import Capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from .checks import assert_metered, calls
from .drivers import API_KEY
from .drivers.anthropic import anthropic_expected, kwargs_for, message_text

MODEL = "claude-sonnet-4-6"
REPLY = Reply(text="A raw reply, read late.", input_tokens=25, cached_tokens=100, cache_write_tokens=7, output_tokens=9)
EXPECTED = anthropic_expected(REPLY)


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    tokenmeter.instrument("anthropic")
    yield
    tokenmeter.uninstrument("anthropic")


def _client(fp: FakeProvider) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fp.url, api_key=API_KEY, max_retries=0)


def exact(cap: Capture, stream: bool = False) -> None:
    assert_metered(cap, provider="anthropic", model=MODEL, usage=EXPECTED, stream=stream)


@pytest.mark.parametrize("read", ["parse", "json", "read"])
def test_streaming_response_body_is_exact(fp: FakeProvider, cap: Capture, read: str) -> None:
    fp.enqueue(REPLY)
    with _client(fp).messages.with_streaming_response.create(**kwargs_for(MODEL)) as raw:
        got = getattr(raw, read)()
    if read == "parse":
        assert message_text(got) == REPLY.text
    exact(cap)


@pytest.mark.parametrize("read", ["parse", "iter_lines"])
def test_streaming_response_stream_is_exact(fp: FakeProvider, cap: Capture, read: str) -> None:
    fp.enqueue(REPLY)
    with _client(fp).messages.with_streaming_response.create(**kwargs_for(MODEL, stream=True)) as raw:
        items = list(raw.parse()) if read == "parse" else list(raw.iter_lines())
    assert items
    exact(cap, stream=True)


def test_raw_response_stream_is_exact(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(REPLY)
    raw = _client(fp).messages.with_raw_response.create(**kwargs_for(MODEL, stream=True))
    assert [e.type for e in raw.parse()][-1] == "message_stop"
    exact(cap, stream=True)


def test_async_streaming_response(fp: FakeProvider, cap: Capture) -> None:
    async def run() -> None:
        client = anthropic.AsyncAnthropic(base_url=fp.url, api_key=API_KEY, max_retries=0)
        async with client.messages.with_streaming_response.create(**kwargs_for(MODEL, stream=True)) as raw:
            assert [e.type async for e in await raw.parse()][-1] == "message_stop"

    fp.enqueue(REPLY)
    asyncio.run(run())
    exact(cap, stream=True)


def test_closed_unread_is_estimated(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(REPLY)
    with _client(fp).messages.with_streaming_response.create(**kwargs_for(MODEL)):
        pass
    assert calls(cap, "ok") == 1
    (span,) = cap.spans
    assert (span.attributes or {})["tokenmeter.usage.estimated"] is True


def test_a_raw_wrapper_cached_before_instrument_is_metered(fp: FakeProvider, cap: Capture) -> None:
    tokenmeter.uninstrument("anthropic")
    client = _client(fp)
    fp.enqueue(REPLY)
    cached = client.messages.with_raw_response
    cached.create(**kwargs_for(MODEL))
    tokenmeter.instrument("anthropic")
    fp.enqueue(REPLY)
    assert message_text(cached.create(**kwargs_for(MODEL)).parse()) == REPLY.text
    exact(cap)


def test_bedrock_client_beta_alias_is_metered_at_the_client_request(fp: FakeProvider, cap: Capture) -> None:
    """AnthropicBedrock's ``beta.messages`` alias the functions of import time (before instrument()): the
    client-request fallback meters them, once."""
    client = anthropic.AnthropicBedrock(
        base_url=fp.url, aws_region="us-east-1", aws_access_key="x", aws_secret_key="x", max_retries=0
    )
    fp.enqueue(REPLY)
    client.beta.messages.create(**kwargs_for("anthropic.claude-3-5-sonnet-20240620-v1:0"))
    assert calls(cap, "ok") == 1
    (span,) = cap.spans
    a = span.attributes or {}
    assert (a["gen_ai.provider.name"], a["tokenmeter.usage.estimated"]) == ("aws.bedrock", False)
    assert a["gen_ai.usage.input_tokens"] == EXPECTED.input_total
