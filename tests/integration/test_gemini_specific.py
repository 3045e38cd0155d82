"""What only the ``google-genai`` SDK has: Vertex AI mode, model resource names, automatic function calling
(one user call, several HTTP requests), chats, thought parts, and the private methods the patches rely on."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest
import wrapt
from google.genai import caches, errors, models, types
from opentelemetry.trace import StatusCode

import tokenmeter
from tokenmeter import Usage
from tokenmeter.testing import Capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from .checks import assert_cost, assert_failed, assert_metered, calls, tokens
from .drivers import TOOL_ARGS, TOOL_NAME
from .drivers.gemini import gemini_client, response_text

MODEL = "gemini-2.5-flash"
TEXT = "Sunny and mild in Paris."
PATCHED = [
    (models.Models, "_generate_content"),
    (models.Models, "_generate_content_stream"),
    (models.AsyncModels, "_generate_content"),
    (models.AsyncModels, "_generate_content_stream"),
    (models.Models, "_embed_content"),
    (models.AsyncModels, "_embed_content"),
    (caches.Caches, "create"),
    (caches.Caches, "update"),
    (caches.Caches, "delete"),
    (caches.AsyncCaches, "create"),
    (caches.AsyncCaches, "update"),
    (caches.AsyncCaches, "delete"),
]


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    tokenmeter.instrument("gemini")
    try:
        yield
    finally:
        tokenmeter.uninstrument("gemini")


def test_the_patched_private_methods_exist_and_are_restored() -> None:
    # Every public path funnels through these; if an SDK release renames them, nothing would be metered.
    for owner, attr in PATCHED:
        assert isinstance(owner.__dict__[attr], wrapt.FunctionWrapper), attr
    tokenmeter.uninstrument("gemini")
    for owner, attr in PATCHED:
        assert not isinstance(owner.__dict__[attr], wrapt.FunctionWrapper), attr
    tokenmeter.instrument("gemini")
    assert all(isinstance(owner.__dict__[attr], wrapt.FunctionWrapper) for owner, attr in PATCHED)


def test_vertex_ai_mode_is_its_own_provider(fp: FakeProvider, cap: Capture) -> None:
    reply = Reply(text=TEXT, input_tokens=30, cached_tokens=20, output_tokens=6)
    fp.enqueue(reply)
    client = gemini_client(fp.url, vertexai=True)
    assert response_text(client.models.generate_content(model=MODEL, contents="Weather?")) == TEXT
    assert "/publishers/google/models/" in fp.requests[-1].path
    span = assert_metered(cap, provider="gcp.vertex_ai", model=MODEL, usage=Usage(input=30, cache_read=20, output=6))
    attrs = dict(span.attributes or {})
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == fp.port
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.response.id"]


def test_model_resource_names_are_metered_as_the_bare_model_and_sent_unchanged(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(text=TEXT, input_tokens=9, output_tokens=4))
    client = gemini_client(fp.url)
    client.models.generate_content(model=f"models/{MODEL}", contents="Weather?")
    assert fp.requests[-1].path.endswith(f"/models/{MODEL}:generateContent")
    assert_metered(cap, provider="gcp.gemini", model=MODEL, usage=Usage(input=9, output=4))


def get_weather(city: str) -> dict[str, Any]:
    """Weather of a city (the SDK calls this itself: automatic function calling)."""
    return {"city": city, "forecast": "sunny"}


def test_automatic_function_calling_meters_every_request(fp: FakeProvider, cap: Capture) -> None:
    first = Reply(input_tokens=40, output_tokens=9, tool_call=(TOOL_NAME, TOOL_ARGS))
    second = Reply(text=TEXT, input_tokens=75, cached_tokens=25, output_tokens=7, reasoning_tokens=11)
    fp.enqueue(first, second)
    client = gemini_client(fp.url)
    config = types.GenerateContentConfig(tools=[get_weather])
    response = client.models.generate_content(model=MODEL, contents="Weather in Paris?", config=config)
    assert response_text(response) == TEXT
    assert len(fp.requests) == 2  # the SDK ran get_weather and sent its result back
    # The response object only carries the second request's usage; the meter bills both.
    assert response.usage_metadata.prompt_token_count == 100
    expected = Usage(input=40 + 75, cache_read=25, output=9 + 7, reasoning=11)
    spans = [s for s in cap.spans if s.name == f"generate_content {MODEL}"]
    assert len(spans) == 2
    assert calls(cap, "ok") == 2
    for token_class, count in expected.by_class():
        assert tokens(cap, token_class) == count, token_class
    assert_cost(cap, "gcp.gemini", MODEL, expected)


def test_chat_sessions_are_metered(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(text=TEXT, input_tokens=8, output_tokens=5))
    client = gemini_client(fp.url)  # keep the client referenced: collecting it closes its HTTP connection
    chat = client.chats.create(model=MODEL)
    assert response_text(chat.send_message("Weather?")) == TEXT
    assert_metered(cap, provider="gcp.gemini", model=MODEL, usage=Usage(input=8, output=5))


def test_thought_parts_are_reasoning_and_hidden_from_the_text(fp: FakeProvider, cap: Capture) -> None:
    reply = Reply(text=TEXT, input_tokens=20, output_tokens=6, reasoning_tokens=150, chunks=2)
    fp.enqueue(reply)
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    client = gemini_client(fp.url)
    stream = client.models.generate_content_stream(model=MODEL, contents="Weather?", config=config)
    chunks = list(stream)
    assert any(p.thought for c in chunks for p in (c.candidates[0].content.parts or []))
    assert "".join(response_text(c) for c in chunks) == TEXT
    assert_metered(cap, provider="gcp.gemini", model=MODEL, usage=Usage(input=20, output=6, reasoning=150), stream=True)


def test_max_output_tokens_is_recorded(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(text=TEXT, input_tokens=8, output_tokens=5))
    config = {"max_output_tokens": 64}
    client = gemini_client(fp.url)
    client.models.generate_content(model=MODEL, contents="Weather?", config=config)
    span = cap.span(f"generate_content {MODEL}")
    assert (span.attributes or {})["gen_ai.request.max_tokens"] == 64


def test_stream_rejected_before_any_chunk_is_a_failed_call(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(status=429))
    client = gemini_client(fp.url)
    stream = client.models.generate_content_stream(model=MODEL, contents="Weather?")
    with pytest.raises(errors.ClientError) as raised:
        list(stream)
    assert raised.value.code == 429
    span = assert_failed(cap, provider="gcp.gemini", model=MODEL)
    assert (span.attributes or {})["error.type"] == "429"


def test_embed_rejected_names_the_http_status_like_generate(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(status=400))
    client = gemini_client(fp.url)
    with pytest.raises(errors.ClientError):
        client.models.embed_content(model="gemini-embedding-001", contents="hello")
    span = cap.span("embeddings gemini-embedding-001")
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "400"  # the status, as generate_content and the caches say
    assert calls(cap, "error") == 1


async def test_async_stream_closed_early_is_metered_once(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(text=TEXT, input_tokens=15, output_tokens=6, chunks=4))
    client = gemini_client(fp.url)
    stream = await client.aio.models.generate_content_stream(model=MODEL, contents="Weather?")
    async for _chunk in stream:
        break
    await stream.aclose()
    del stream, _chunk
    # The SDK's inner async generators are finalized by the event loop (asyncio's asyncgen hooks).
    for _ in range(10):
        gc.collect()
        await asyncio.sleep(0)
        if calls(cap):
            break
    assert calls(cap, "ok") == 1
    span = cap.span(f"generate_content {MODEL}")
    assert (span.attributes or {})["gen_ai.usage.input_tokens"] == 15
    gc.collect()
    assert calls(cap) == 1


async def test_async_rate_limit_is_a_failed_call(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(status=429))
    client = gemini_client(fp.url)
    with pytest.raises(errors.ClientError):
        await client.aio.models.generate_content(model=MODEL, contents="Weather?")
    assert_failed(cap, provider="gcp.gemini", model=MODEL)
