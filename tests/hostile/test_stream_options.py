"""Issue 10 item 3: the injected ``stream_options.include_usage`` never changes what the caller sees.

A server that rejects ``stream_options`` (400) gets the request resent once as the caller wrote it, and
never again from this process; a ``"usage": null`` answer to include_usage is hidden. Sync and async.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import tokenmeter
from tokenmeter.integrations import _openai_streams
from tokenmeter.testing import Capture, capture

from ._raw import RawServer
from ._wire import TEXT, chat_stream, rejects_stream_options

MESSAGES = [{"role": "user", "content": "Greet me in five words"}]


@pytest.fixture
def cap() -> Iterator[Capture]:
    _openai_streams.REJECTED_HOSTS.clear()
    tokenmeter.instrument("openai")
    with capture() as c:
        yield c
    tokenmeter.uninstrument("openai")
    _openai_streams.REJECTED_HOSTS.clear()


def _loop_sync(srv: RawServer) -> str:
    """The usual caller loop: ``chunk.choices[0]`` on every chunk."""
    client = openai.OpenAI(api_key="x", base_url=srv.url + "/v1", max_retries=0)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream)


def _loop_async(srv: RawServer) -> str:
    async def run() -> str:
        client = openai.AsyncOpenAI(api_key="x", base_url=srv.url + "/v1", max_retries=0)
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])

    return asyncio.run(run())


LOOPS = {"sync": _loop_sync, "async": _loop_async}


def _span_attrs(cap: Capture) -> list[dict[str, Any]]:
    return [dict(s.attributes or {}) for s in cap.spans if "gen_ai.provider.name" in (s.attributes or {})]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_server_rejecting_stream_options_gets_the_callers_request(srv: RawServer, cap: Capture, mode: str) -> None:
    srv.enqueue(rejects_stream_options(chat_stream()))
    assert LOOPS[mode](srv) == "".join(TEXT)
    assert [b"stream_options" in s.body for s in srv.seen] == [True, False]
    (attrs,) = _span_attrs(cap)
    assert attrs["tokenmeter.usage.estimated"] is True and attrs["gen_ai.usage.output_tokens"] > 0
    assert "error.type" not in attrs
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "ok"}) == 1
    assert cap.counter("tokenmeter.calls.resent", **{"tokenmeter.resend.reason": "stream_options_rejected"}) == 1
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.retried": True}) == 0  # not an SDK retry

    # Remembered per host: the next stream is sent without stream_options straight away.
    srv.seen.clear()
    assert LOOPS[mode](srv) == "".join(TEXT)
    assert [b"stream_options" in s.body for s in srv.seen] == [False]
    assert cap.counter("tokenmeter.calls.resent") == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_null_usage_answer_is_hidden(srv: RawServer, cap: Capture, mode: str) -> None:
    srv.enqueue(chat_stream(final_usage=None))
    assert LOOPS[mode](srv) == "".join(TEXT)  # an empty-choices chunk would raise IndexError here
    assert b"stream_options" in srv.seen[0].body
    (attrs,) = _span_attrs(cap)
    assert attrs["tokenmeter.usage.estimated"] is True


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_usage_chunk_is_hidden_and_exact(srv: RawServer, cap: Capture, mode: str) -> None:
    srv.enqueue(chat_stream(final_usage={"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}))
    assert LOOPS[mode](srv) == "".join(TEXT)
    (attrs,) = _span_attrs(cap)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (11, 5)
    assert attrs["tokenmeter.usage.estimated"] is False


def test_an_unrelated_400_is_not_resent(srv: RawServer, cap: Capture) -> None:
    from ._raw import Raw
    from ._wire import dumps

    srv.enqueue(Raw(status=400, body=dumps({"error": {"message": "messages: too long", "type": "invalid"}})))
    with pytest.raises(openai.BadRequestError):
        _loop_sync(srv)
    assert len(srv.seen) == 1
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "error"}) == 1


def test_a_leading_filter_chunk_without_choices_reaches_the_caller(srv: RawServer, cap: Capture) -> None:
    """Chunks the server sends anyway (Azure's prompt-filter chunk) are the caller's: never hidden."""
    from ._raw import Raw
    from ._wire import DONE, SSE, chunk

    pieces = [chunk(choices=[], usage=None), chunk("Hi"), chunk(finish="stop"), DONE]
    srv.enqueue(Raw(body=pieces, headers=SSE))
    client = openai.OpenAI(api_key="x", base_url=srv.url + "/v1", max_retries=0)
    seen = [len(c.choices) for c in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)]
    assert seen == [0, 1, 1]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_trailing_empty_chunk_without_a_usage_key_is_hidden(srv: RawServer, cap: Capture, mode: str) -> None:
    """Some servers answer include_usage with an empty-choices chunk that drops the null ``usage`` key."""
    from ._raw import Raw, Seen
    from ._wire import DONE, SSE, asked_usage, chunk

    def respond(seen: Seen) -> Raw:
        pieces = [chunk(t) for t in TEXT] + [chunk(finish="stop")]
        if asked_usage(seen):
            pieces.append(chunk(choices=[]))
        return Raw(body=[*pieces, DONE], headers=SSE)

    srv.enqueue(respond)
    assert LOOPS[mode](srv) == "".join(TEXT)
