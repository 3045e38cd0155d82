"""SDK retries are counted at the SDK's HTTP client, and only for the metered call's own server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import tokenmeter
from tokenmeter._call import Request, begin
from tokenmeter._context import CURRENT_CALL
from tokenmeter.testing import Capture
from tokenmeter.testing.fakes import FakeProvider, Reply

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def patched() -> Iterator[None]:
    original = httpx.Client.send
    tokenmeter.instrument("openai")
    try:
        yield
    finally:
        tokenmeter.uninstrument()
    assert httpx.Client.send is original  # uninstrument really restores the HTTP client


def test_requests_of_a_call_to_its_server_are_its_attempts(patched: None, fp: FakeProvider, cap: Capture) -> None:
    call = begin(Request(provider="openai", model="gpt-4o", server_address="127.0.0.1"))
    assert call is not None
    fp.enqueue(Reply(status=429), Reply(text="ok", input_tokens=3, output_tokens=1))
    other_host = fp.url.replace("127.0.0.1", "localhost")  # the same loopback server under another name
    token = CURRENT_CALL.set(call)
    try:
        with httpx.Client() as client:
            assert client.post(f"{fp.url}/v1/chat/completions", json=BODY).status_code == 429
            assert client.post(f"{fp.url}/v1/chat/completions", json=BODY).status_code == 200
            client.get(f"{other_host}/token")  # e.g. a credentials refresh: not an attempt of this call
    finally:
        CURRENT_CALL.reset(token)
    assert call.http_attempts == [(429, None), (200, None)]
    with httpx.Client() as client:  # outside any metered call nothing is counted
        client.get(f"{fp.url}/health")
    assert call.http_attempts == [(429, None), (200, None)]
    call.stop(tokenmeter.Usage(input=3, output=1))
    span = cap.span("chat gpt-4o")
    assert dict(span.attributes or {})["tokenmeter.sdk.attempts"] == 2


def test_a_connection_failure_is_an_attempt_with_its_error_type(patched: None, cap: Capture) -> None:
    call = begin(Request(provider="openai", model="gpt-4o", server_address="127.0.0.1"))
    assert call is not None
    token = CURRENT_CALL.set(call)
    try:
        with httpx.Client() as client, pytest.raises(httpx.ConnectError):
            client.get("http://127.0.0.1:9/")  # discard port: nothing listens
    finally:
        CURRENT_CALL.reset(token)
    assert call.http_attempts == [(None, "ConnectError")]
    call.fail(RuntimeError("gave up"))
