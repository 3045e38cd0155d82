"""What only LiteLLM has: metered once although it drives the (instrumented) openai SDK underneath, provider
prefixes, LiteLLM's own usage chunk, Anthropic through LiteLLM's HTTP client, and embeddings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from . import NEEDS_LITELLM

litellm = pytest.importorskip("litellm", reason=NEEDS_LITELLM)

import openai  # noqa: E402

import tokenmeter  # noqa: E402
import tokenmeter._wrap  # noqa: E402
from tests.integration.checks import assert_cost, assert_estimated, assert_metered, calls  # noqa: E402
from tests.integration.drivers import API_KEY  # noqa: E402
from tokenmeter import Usage  # noqa: E402
from tokenmeter.testing import Capture, capture  # noqa: E402
from tokenmeter.testing.fakes import FakeProvider, Reply  # noqa: E402

from .drivers import ANTHROPIC, MESSAGES, OPENAI  # noqa: E402

pytestmark = pytest.mark.usefixtures("instrumented")

TEXT = "Hello from the fake meter today."
REPLY = Reply(text=TEXT, input_tokens=15, cached_tokens=30, output_tokens=6, chunks=3)
EXPECTED = Usage(input=15, cache_read=30, output=6)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """``(integration module, whether it started metering)`` for every patched call entered."""
    seen: list[tuple[str, bool]] = []
    original = tokenmeter._wrap.open_call

    def before(endpoint: Any, *args: Any) -> Any:
        outcome = original(endpoint, *args)
        seen.append((type(endpoint).__module__.rsplit(".", 1)[-1], outcome[0] is not None))
        return outcome

    monkeypatch.setattr(tokenmeter._wrap, "open_call", before)
    return seen


@pytest.fixture
def with_openai() -> Iterator[None]:
    # LiteLLM caches its openai clients, and a client's ``with_raw_response`` holds the ``create`` it saw
    # first: start from fresh clients so the openai SDK calls inside LiteLLM really reach the patched method.
    litellm.in_memory_llm_clients_cache.flush_cache()
    tokenmeter.instrument("openai")
    try:
        yield
    finally:
        tokenmeter.uninstrument("openai")


def _run(mode: str, url: str) -> None:
    client = OPENAI.client(url)
    if mode == "plain":
        assert OPENAI.call(client, model="gpt-4o") == TEXT
    elif mode == "stream":
        assert OPENAI.call(client, model="gpt-4o", stream=True) == TEXT
    else:
        import asyncio

        assert asyncio.run(OPENAI.acall(client, model="gpt-4o", stream=mode == "astream")) == TEXT


@pytest.mark.usefixtures("with_openai")
@pytest.mark.parametrize("mode", ["plain", "stream", "aplain", "astream"])
def test_metered_once_when_the_openai_sdk_underneath_is_instrumented_too(
    fp: FakeProvider, spy: list[tuple[str, bool]], mode: str
) -> None:
    with capture() as cap:
        # The openai integration is live in this environment: a direct call is metered by it.
        fp.enqueue(REPLY)
        direct = openai.OpenAI(base_url=fp.url + "/v1", api_key=API_KEY, max_retries=0)
        direct.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert spy == [("openai", True)] and calls(cap) == 1
        spy.clear()
        cap.clear()
    with capture() as cap:
        fp.enqueue(REPLY)
        _run(mode, fp.url)
        # LiteLLM (outermost) metered the call; the openai SDK call it made inside was not metered again.
        assert spy == [("litellm", True), ("openai", False)]
        assert_metered(cap, provider="openai", model="gpt-4o", usage=EXPECTED, stream="stream" in mode)


@pytest.mark.usefixtures("with_openai")
def test_embedding_metered_once(fp: FakeProvider, cap: Capture, spy: list[tuple[str, bool]]) -> None:
    fp.enqueue(Reply(input_tokens=7))
    response = litellm.embedding(model="openai/text-embedding-3-small", input=["a b c"], **OPENAI.client(fp.url))
    assert len(response.data) == 1
    assert [name for name, started in spy if started] == ["litellm"]
    span = assert_metered(
        cap, provider="openai", model="text-embedding-3-small", usage=Usage(input=7), operation="embeddings"
    )
    assert (span.attributes or {})["gen_ai.operation.name"] == "embeddings"


async def test_async_embedding(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(input_tokens=11))
    await litellm.aembedding(model="openai/text-embedding-3-small", input="one two", **OPENAI.client(fp.url))
    usage = Usage(input=11)
    assert_metered(cap, provider="openai", model="text-embedding-3-small", usage=usage, operation="embeddings")


def test_injected_stream_usage_is_hidden_and_requested_usage_is_shown(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(REPLY)
    chunks = list(litellm.completion(model="openai/gpt-4o", messages=MESSAGES, stream=True, **OPENAI.client(fp.url)))
    assert fp.requests[-1].json["stream_options"] == {"include_usage": True}
    assert all(getattr(c, "usage", None) is None for c in chunks)
    assert_metered(cap, provider="openai", model="gpt-4o", usage=EXPECTED, stream=True)
    fp.enqueue(REPLY)
    asked = {"include_usage": True}
    stream = litellm.completion(
        model="openai/gpt-4o", messages=MESSAGES, stream=True, stream_options=asked, **OPENAI.client(fp.url)
    )
    assert list(stream)[-1].usage.prompt_tokens == 45  # the caller asked for it: the caller sees it
    assert calls(cap) == 2


def test_injection_can_be_turned_off(fp: FakeProvider) -> None:
    with capture(inject_stream_usage=False) as cap:
        fp.enqueue(REPLY)
        assert OPENAI.call(OPENAI.client(fp.url), model="gpt-4o", stream=True) == TEXT
        assert "stream_options" not in fp.requests[-1].json
        assert_estimated(cap, provider="openai", model="gpt-4o")


def test_litellm_own_usage_count_is_flagged_estimated(fp: FakeProvider, cap: Capture) -> None:
    # The provider streamed no usage; LiteLLM still emits a usage chunk it counted itself.
    fp.enqueue(Reply(text=TEXT, usage="missing", chunks=3))
    stream = litellm.completion(
        model="openai/gpt-4o",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        **OPENAI.client(fp.url),
    )
    assert list(stream)[-1].usage.completion_tokens > 0
    assert_estimated(cap, provider="openai", model="gpt-4o")


def test_positional_model_and_messages_with_a_policy_downgrade(fp: FakeProvider, cap: Capture) -> None:
    class Downgrade:
        def before(self, call: tokenmeter.MeteredCall) -> None:
            call.request.model = "gpt-4o-mini"

        def after(self, *args: Any) -> None:
            pass

        def close(self) -> None:
            pass

    cap.meter.gate = Downgrade()
    fp.enqueue(Reply(text=TEXT, input_tokens=12, output_tokens=7))
    litellm.completion("openai/gpt-4o", MESSAGES, **OPENAI.client(fp.url))
    assert fp.requests[-1].model == "gpt-4o-mini"
    assert_metered(cap, provider="openai", model="gpt-4o-mini", usage=Usage(input=12, output=7))


# -- Anthropic through LiteLLM's own HTTP client ----------------------------------------------------
CACHED = Reply(text=TEXT, input_tokens=40, cached_tokens=900, cache_write_tokens=700, output_tokens=9, chunks=3)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_cache_read_and_write(fp: FakeProvider, cap: Capture, stream: bool) -> None:
    fp.enqueue(CACHED)
    assert ANTHROPIC.call(ANTHROPIC.client(fp.url), model="claude-sonnet-4-5", stream=stream) == TEXT
    assert fp.requests[-1].path == "/v1/messages"
    expected = Usage(input=40, cache_read=900, cache_write=700, output=9)
    assert_metered(cap, provider="anthropic", model="claude-sonnet-4-5", usage=expected, stream=stream)


async def test_anthropic_async_stream(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(CACHED)
    assert await ANTHROPIC.acall(ANTHROPIC.aclient(fp.url), model="claude-sonnet-4-5", stream=True) == TEXT
    expected = Usage(input=40, cache_read=900, cache_write=700, output=9)
    span = assert_metered(cap, provider="anthropic", model="claude-sonnet-4-5", usage=expected, stream=True)
    assert_cost(cap, "anthropic", "claude-sonnet-4-5", expected, span)


def test_anthropic_rate_limit(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(status=429))
    with pytest.raises(litellm.RateLimitError):
        ANTHROPIC.call(ANTHROPIC.client(fp.url), model="claude-sonnet-4-5")
    assert calls(cap, "error") == 1 and calls(cap) == 1


def test_uninstrument_restores_the_module_functions() -> None:
    assert litellm.completion is not litellm.main.completion  # patched (main's own global is left alone)
    tokenmeter.uninstrument("litellm")
    assert litellm.completion is litellm.main.completion
    assert litellm.acompletion is litellm.main.acompletion
    tokenmeter.instrument("litellm")
    assert litellm.completion is not litellm.main.completion


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_capture_content(fp: FakeProvider, stream: bool) -> None:
    import json

    with capture(capture_content=True) as cap:
        fp.enqueue(REPLY)
        result = litellm.completion(model="openai/gpt-4o", messages=MESSAGES, stream=stream, **OPENAI.client(fp.url))
        text = (
            "".join(c.choices[0].delta.content or "" for c in result if c.choices)
            if stream
            else result.choices[0].message.content
        )
        spans = [s for s in cap.spans if (s.attributes or {}).get("gen_ai.request.model") == "gpt-4o"]
        attrs = dict(spans[-1].attributes or {})
    inputs = json.loads(str(attrs["gen_ai.input.messages"]))
    assert inputs[-1]["role"] == "user" and inputs[-1]["parts"][0]["type"] == "text"
    out = json.loads(str(attrs["gen_ai.output.messages"]))
    assert "".join(p["content"] for p in out[0]["parts"] if p["type"] == "text") == text
