"""What only the ``anthropic`` SDK has: the ``messages.stream()`` helper (which never calls ``create``),
thinking inside ``output_tokens``, ``parse``, beta messages, raw responses, and the Bedrock / Vertex clients."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
import wrapt
from anthropic.resources.beta.messages import messages as beta_messages
from anthropic.resources.messages import messages as messages_module

import tokenmeter
from tokenmeter import Usage
from tokenmeter.integrations import _anthropic_usage
from tokenmeter.integrations.anthropic import provider_of
from tokenmeter.testing import Capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from .checks import assert_failed, assert_metered, calls, only_call_span, tokens
from .drivers import API_KEY
from .drivers.anthropic import anthropic_expected, event_text, kwargs_for, message_text

MODEL = "claude-sonnet-4-6"
CHEAPER = "claude-haiku-4-5"
TEXT = "The helper streams this reply."
REPLY = Reply(text=TEXT, input_tokens=21, output_tokens=6, cached_tokens=300, cache_write_tokens=40, chunks=3)
PATCHED = [
    (module, cls, attr)
    for module in (messages_module, beta_messages)
    for cls in ("Messages", "AsyncMessages")
    for attr in ("create", "parse", "stream")
]


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    tokenmeter.instrument("anthropic")
    try:
        yield
    finally:
        tokenmeter.uninstrument("anthropic")


@pytest.fixture
def client(fp: FakeProvider) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fp.url, api_key=API_KEY, max_retries=0)


@pytest.fixture
def aclient(fp: FakeProvider) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fp.url, api_key=API_KEY, max_retries=0)


def _metered(cap: Capture, reply: Reply = REPLY, *, model: str = MODEL, stream: bool = True) -> Any:
    return assert_metered(cap, provider="anthropic", model=model, usage=anthropic_expected(reply), stream=stream)


def test_patches_are_applied_and_restored() -> None:
    for module, cls, attr in PATCHED:
        assert isinstance(getattr(module, cls).__dict__[attr], wrapt.FunctionWrapper), (cls, attr)
    tokenmeter.uninstrument("anthropic")
    for module, cls, attr in PATCHED:
        assert not isinstance(getattr(module, cls).__dict__[attr], wrapt.FunctionWrapper), (cls, attr)


# -- messages.stream() --------------------------------------------------------------------------


def test_stream_helper_text_stream_and_final_message(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(REPLY)
    with client.messages.stream(**kwargs_for(MODEL)) as stream:
        assert "".join(stream.text_stream) == TEXT
        final = stream.get_final_message()
        assert calls(cap) == 1  # metered when the events ran out, before leaving the block
    assert final.usage.input_tokens == 21 and message_text(final) == TEXT
    assert fp.requests[-1].json["stream"] is True
    _metered(cap)
    gc.collect()
    assert calls(cap) == 1


def test_stream_helper_get_final_message_alone(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(REPLY)
    with client.messages.stream(**kwargs_for(MODEL)) as stream:
        assert stream.get_final_text() == TEXT
    _metered(cap)


def test_stream_helper_left_early_is_metered_once_and_flagged(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(REPLY)
    with client.messages.stream(**kwargs_for(MODEL)) as stream:
        next(iter(stream.text_stream))
    span = only_call_span(cap)
    attrs = dict(span.attributes or {})
    # message_start reported the input side exactly; the final output count never arrived
    assert attrs["gen_ai.usage.input_tokens"] == 21 + 300 + 40
    assert attrs["tokenmeter.usage.estimated"] is True
    assert tokens(cap, "cache_read") == 300
    gc.collect()
    assert calls(cap) == 1


def test_stream_helper_never_entered_sends_nothing_and_ends_the_call(
    fp: FakeProvider, cap: Capture, client: Any
) -> None:
    manager = client.messages.stream(**kwargs_for(MODEL))
    del manager
    gc.collect()
    assert fp.requests == []
    span = only_call_span(cap)
    assert (span.attributes or {})["tokenmeter.usage.missing"] is True
    assert calls(cap) == 1 and tokens(cap) == 0


def test_stream_helper_rate_limited(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(Reply(status=429))
    with pytest.raises(anthropic.RateLimitError), client.messages.stream(**kwargs_for(MODEL)):
        pass
    assert_failed(cap, provider="anthropic", model=MODEL)


def test_stream_helper_policy_downgrade(fp: FakeProvider, cap: Capture, client: Any) -> None:
    class Gate:
        def before(self, call: Any) -> None:
            call.request.model = CHEAPER

        def after(self, *args: Any) -> None:
            pass

        def close(self) -> None:
            pass

    cap.meter.gate = Gate()
    fp.enqueue(REPLY)
    with client.messages.stream(**kwargs_for(MODEL)) as stream:
        stream.until_done()
    assert fp.requests[-1].model == CHEAPER
    _metered(cap, model=CHEAPER)


async def test_async_stream_helper(fp: FakeProvider, cap: Capture, aclient: Any) -> None:
    fp.enqueue(REPLY)
    async with aclient.messages.stream(**kwargs_for(MODEL)) as stream:
        assert "".join([text async for text in stream.text_stream]) == TEXT
        assert (await stream.get_final_message()).usage.output_tokens == 6
    _metered(cap)


async def test_async_stream_helper_left_early(fp: FakeProvider, cap: Capture, aclient: Any) -> None:
    fp.enqueue(REPLY)
    async with aclient.messages.stream(**kwargs_for(MODEL)) as stream:
        async for _text in stream.text_stream:
            break
    only_call_span(cap)
    assert calls(cap) == 1


# -- thinking, parse, beta, raw responses -------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_thinking_is_inside_output(fp: FakeProvider, cap: Capture, client: Any, stream: bool) -> None:
    reply = Reply(text=TEXT, input_tokens=25, output_tokens=8, reasoning_tokens=120)
    fp.enqueue(reply)
    response = client.messages.create(
        **kwargs_for(MODEL, stream=stream), thinking={"type": "enabled", "budget_tokens": 1024}
    )
    text = "".join(event_text(e) for e in response) if stream else message_text(response)
    assert text == TEXT
    expected = anthropic_expected(reply)
    assert expected == Usage(input=25, output=128)  # no separate thinking count from the API: reasoning 0
    assert_metered(cap, provider="anthropic", model=MODEL, usage=expected, stream=stream)


def test_parse_and_beta_create_are_metered(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(REPLY, REPLY)
    assert message_text(client.messages.parse(**kwargs_for(MODEL))) == TEXT
    assert message_text(client.beta.messages.create(**kwargs_for(MODEL))) == TEXT
    assert calls(cap, "ok") == 2
    assert tokens(cap) == 2 * anthropic_expected(REPLY).total


def test_raw_response_is_metered_and_still_parses(fp: FakeProvider, cap: Capture, client: Any) -> None:
    fp.enqueue(REPLY)
    raw = client.messages.with_raw_response.create(**kwargs_for(MODEL))
    assert raw.headers["request-id"].startswith("req_")
    assert message_text(raw.parse()) == TEXT
    _metered(cap, stream=False)


def test_a_fault_in_the_integration_never_reaches_the_caller(
    fp: FakeProvider, cap: Capture, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("integration bug")

    monkeypatch.setattr(_anthropic_usage, "read_usage", broken)
    fp.enqueue(REPLY, REPLY)
    assert message_text(client.messages.create(**kwargs_for(MODEL))) == TEXT
    assert "".join(event_text(e) for e in client.messages.create(**kwargs_for(MODEL, stream=True))) == TEXT
    assert calls(cap, "ok") == 2


# -- Bedrock / Vertex clients -------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_bedrock_client_is_metered_once_as_bedrock(fp: FakeProvider, cap: Capture, stream: bool) -> None:
    tokenmeter.instrument("bedrock")  # botocore patched too: the SDK's own SigV4 transport must not double count
    try:
        model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
        client = anthropic.AnthropicBedrock(
            base_url=fp.url, aws_region="us-east-1", aws_access_key="AKIDEXAMPLE", aws_secret_key="x", max_retries=0
        )
        fp.enqueue(REPLY)
        response = client.messages.create(**kwargs_for(model, stream=stream))
        text = "".join(event_text(e) for e in response) if stream else message_text(response)
        assert text == TEXT
        assert fp.requests[-1].path.endswith("/invoke-with-response-stream" if stream else "/invoke")
        assert_metered(cap, provider="aws.bedrock", model=model, usage=anthropic_expected(REPLY), stream=stream)
    finally:
        tokenmeter.uninstrument("bedrock")


def test_client_providers() -> None:
    vertex = anthropic.AnthropicVertex(region="us-east5", project_id="p", access_token="t")
    bedrock = anthropic.AsyncAnthropicBedrock(aws_region="us-east-1", aws_access_key="a", aws_secret_key="s")
    assert provider_of(vertex) == "gcp.vertex_ai"
    assert provider_of(bedrock) == "aws.bedrock"
    assert provider_of(anthropic.Anthropic(api_key="k")) == "anthropic"
