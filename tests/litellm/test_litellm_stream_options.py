"""Issue 10 item 3 through LiteLLM: a server rejecting ``stream_options`` gets the caller's request, once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tokenmeter
from tests.hostile._raw import RawServer
from tests.hostile._wire import TEXT, chat_stream, rejects_stream_options
from tokenmeter.integrations import _openai_streams
from tokenmeter.testing import Capture, capture

from . import NEEDS_LITELLM

litellm = pytest.importorskip("litellm", reason=NEEDS_LITELLM)


@pytest.fixture
def cap() -> Iterator[Capture]:
    _openai_streams.REJECTED_HOSTS.clear()
    tokenmeter.instrument("litellm")
    with capture() as c:
        yield c
    tokenmeter.uninstrument("litellm")
    _openai_streams.REJECTED_HOSTS.clear()


def test_a_server_rejecting_stream_options_gets_the_callers_request(cap: Capture) -> None:
    with RawServer() as srv:
        srv.enqueue(rejects_stream_options(chat_stream()))
        for sent in ([True, False], [False]):  # resent once; then remembered for the host
            srv.seen.clear()
            stream = litellm.completion(
                model="openai/gpt-4o",
                api_base=srv.url + "/v1",
                api_key="x",
                stream=True,
                max_retries=0,
                messages=[{"role": "user", "content": "hi"}],
            )
            assert "".join(c.choices[0].delta.content or "" for c in stream) == "".join(TEXT)
            assert [b"stream_options" in s.body for s in srv.seen] == sent
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "ok"}) == 2
    assert cap.counter("tokenmeter.calls.resent") == 1
    assert all((s.attributes or {})["tokenmeter.usage.estimated"] is True for s in cap.spans)
