"""The shared scenario suite: every scenario runs once per provider driver (see ``drivers/``).

Each scenario scripts the fake provider's reply with exact, disjoint token counts, drives the real SDK
through the driver and asserts what tokenmeter recorded: the span (name, kind, GenAI attributes), the
``tokenmeter.tokens`` counter per token class, ``tokenmeter.cost`` against the price book, and the
``tokenmeter.calls`` outcome. A scenario a driver does not support is skipped with the reason.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

import tokenmeter
from tokenmeter import Usage
from tokenmeter.testing import Capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from .checks import (
    assert_cost,
    assert_estimated,
    assert_failed,
    assert_metered,
    calls,
    chat_operation,
    only_call_span,
    require,
    strings_in_telemetry,
    tokens,
    usage_of,
)
from .drivers import API_KEY, PROMPT, TOOL_ARGS, TOOL_NAME, Driver, option

pytestmark = pytest.mark.usefixtures("instrumented")

TEXT = "Hello from the fake meter today."
PLAIN = Reply(text=TEXT, input_tokens=12, output_tokens=7)


def _check(cap: Capture, driver: Driver, reply: Reply, *, model: str | None = None, stream: bool = False) -> None:
    assert_metered(
        cap,
        provider=driver.provider,
        model=model or driver.model,
        usage=driver.expected(reply),
        check_response_model=option(driver, "reports_response_model"),
        stream=stream,
    )


def test_plain(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(PLAIN)
    client = driver.client(fp.url)
    assert driver.call(client, model=driver.model) == TEXT
    _check(cap, driver, PLAIN)
    assert fp.requests[-1].model == driver.model


@pytest.mark.parametrize("kind", ["cache_read", "cache_write"])
def test_cached(driver: Driver, fp: FakeProvider, cap: Capture, kind: str) -> None:
    require(driver, kind)
    cached = {"cached_tokens": 900} if kind == "cache_read" else {"cache_write_tokens": 700}
    reply = Reply(text=TEXT, input_tokens=40, output_tokens=9, **cached)
    fp.enqueue(reply)
    assert driver.call(driver.client(fp.url), model=driver.model) == TEXT
    expected = driver.expected(reply)
    assert (expected.cache_read if kind == "cache_read" else expected.cache_write) > 0
    _check(cap, driver, reply)


def test_reasoning(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    require(driver, "reasoning")
    model = option(driver, "reasoning_model")
    reply = Reply(text=TEXT, input_tokens=25, output_tokens=8, reasoning_tokens=120)
    fp.enqueue(reply)
    assert driver.call(driver.client(fp.url), model=model) == TEXT
    assert driver.expected(reply).reasoning > 0
    _check(cap, driver, reply, model=model)


def test_tool_call(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    require(driver, "tools")
    reply = Reply(input_tokens=60, output_tokens=14, tool_call=(TOOL_NAME, TOOL_ARGS))
    fp.enqueue(reply)
    driver.call(driver.client(fp.url), model=driver.model, tools=True)
    assert TOOL_NAME in fp.requests[-1].body.decode()
    _check(cap, driver, reply)


def test_stream(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    require(driver, "stream")
    reply = Reply(text=TEXT, input_tokens=15, output_tokens=6, chunks=3)
    fp.enqueue(reply)
    assert driver.call(driver.client(fp.url), model=driver.model, stream=True) == TEXT
    _check(cap, driver, reply, stream=True)
    gc.collect()
    assert calls(cap) == 1  # nothing left to finalize: metered once, at exhaustion


def test_stream_without_usage(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    require(driver, "stream")
    require(driver, "stream_without_usage")
    fp.enqueue(Reply(text=TEXT, usage="missing", chunks=3))
    assert driver.call(driver.client(fp.url), model=driver.model, stream=True) == TEXT
    span = assert_estimated(cap, provider=driver.provider, model=driver.model)
    assert usage_of(span).output_total > 0


def test_stream_early_break_metered_once(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    require(driver, "stream")
    require(driver, "early_break")
    fp.enqueue(Reply(text=TEXT, input_tokens=15, output_tokens=6, chunks=4))
    driver.stream_break(driver.client(fp.url), model=driver.model)
    gc.collect()
    only_call_span(cap)
    assert calls(cap) == 1
    gc.collect()
    assert calls(cap) == 1


def test_stream_context_close(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    require(driver, "stream")
    require(driver, "context_close")
    fp.enqueue(Reply(text=TEXT, input_tokens=15, output_tokens=6, chunks=4))
    driver.stream_close(driver.client(fp.url), model=driver.model)
    span = only_call_span(cap)
    assert span.name == f"{chat_operation(driver.provider)} {driver.model}"
    assert calls(cap) == 1
    gc.collect()
    assert calls(cap) == 1


async def test_async_plain(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    require(driver, "async")
    fp.enqueue(PLAIN)
    assert await driver.acall(driver.aclient(fp.url), model=driver.model) == TEXT
    _check(cap, driver, PLAIN)


async def test_async_stream(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    require(driver, "async")
    require(driver, "stream")
    reply = Reply(text=TEXT, input_tokens=15, output_tokens=6, chunks=3)
    fp.enqueue(reply)
    assert await driver.acall(driver.aclient(fp.url), model=driver.model, stream=True) == TEXT
    _check(cap, driver, reply, stream=True)


def test_rate_limited_without_retries(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(status=429))
    with pytest.raises(driver.rate_limit_error) as raised:
        driver.call(driver.client(fp.url, max_retries=0), model=driver.model)
    assert not isinstance(raised.value, tokenmeter.TokenmeterError)
    assert len(fp.requests) == 1
    span = assert_failed(cap, provider=driver.provider, model=driver.model)
    assert dict(span.attributes or {})["error.type"] == driver.rate_limit_error_type


def test_rate_limited_then_sdk_retry_succeeds(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    require(driver, "sdk_retry")
    fp.enqueue(Reply(status=429), PLAIN)
    assert driver.call(driver.client(fp.url, max_retries=2), model=driver.model) == TEXT
    assert len(fp.requests) == 2
    _check(cap, driver, PLAIN)
    assert calls(cap, "error") == 0
    # the SDK's own retry is visible: two attempts on the one call span, the retried one as an event
    span = only_call_span(cap)
    assert dict(span.attributes or {})["tokenmeter.sdk.attempts"] == 2
    retries = [dict(e.attributes or {}) for e in span.events if e.name == "tokenmeter.sdk.retry"]
    assert retries == [{"tokenmeter.sdk.attempt": 0, "http.response.status_code": 429}]
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.retried": True}) == 1


def test_stream_rate_limited_then_sdk_retry_succeeds(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    require(driver, "sdk_retry")
    require(driver, "stream")
    reply = Reply(text=TEXT, input_tokens=15, output_tokens=6, chunks=3)
    fp.enqueue(Reply(status=429), reply)
    assert driver.call(driver.client(fp.url, max_retries=2), model=driver.model, stream=True) == TEXT
    assert len(fp.requests) == 2
    _check(cap, driver, reply, stream=True)
    span = only_call_span(cap)
    assert dict(span.attributes or {})["tokenmeter.sdk.attempts"] == 2


def test_a_call_sent_once_has_no_sdk_attempts(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(PLAIN)
    assert driver.call(driver.client(fp.url, max_retries=2), model=driver.model) == TEXT
    span = only_call_span(cap)
    assert "tokenmeter.sdk.attempts" not in dict(span.attributes or {})
    assert [e for e in span.events if e.name == "tokenmeter.sdk.retry"] == []
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.retried": False}) == 1


def test_rate_limited_until_the_sdk_gives_up(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    require(driver, "sdk_retry")
    fp.enqueue(Reply(status=429), Reply(status=429))
    with pytest.raises(driver.rate_limit_error):
        driver.call(driver.client(fp.url, max_retries=1), model=driver.model)
    assert len(fp.requests) == 2
    span = assert_failed(cap, provider=driver.provider, model=driver.model)
    assert dict(span.attributes or {})["tokenmeter.sdk.attempts"] == 2
    retries = [dict(e.attributes or {}) for e in span.events if e.name == "tokenmeter.sdk.retry"]
    assert retries == [{"tokenmeter.sdk.attempt": 0, "http.response.status_code": 429}]


def test_server_error(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(status=500))
    with pytest.raises(driver.server_error):
        driver.call(driver.client(fp.url, max_retries=0), model=driver.model)
    assert_failed(cap, provider=driver.provider, model=driver.model)


@pytest.mark.parametrize("mode", ["malformed", "missing"])
def test_bad_usage_is_metered_and_flagged(driver: Driver, fp: FakeProvider, cap: Capture, mode: Any) -> None:
    fp.enqueue(Reply(text=TEXT, input_tokens=12, output_tokens=7, usage=mode))
    assert driver.call(driver.client(fp.url), model=driver.model) == TEXT
    assert_estimated(cap, provider=driver.provider, model=driver.model)


def test_uninstrument_stops_metering(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    client = driver.client(fp.url)
    tokenmeter.uninstrument(driver.name)
    fp.enqueue(PLAIN)
    assert driver.call(client, model=driver.model) == TEXT
    assert cap.spans == []
    assert calls(cap) == 0
    assert tokens(cap) == 0
    tokenmeter.instrument(driver.name)  # and back on: patches re-apply to already imported SDKs
    fp.enqueue(PLAIN)
    assert driver.call(client, model=driver.model) == TEXT
    _check(cap, driver, PLAIN)


def test_privacy_no_key_no_prompt_in_telemetry(driver: Driver, fp: FakeProvider, cap: Capture) -> None:
    client = driver.client(fp.url)
    fp.enqueue(PLAIN)
    driver.call(client, model=driver.model)
    fp.enqueue(Reply(status=429))
    with pytest.raises(driver.rate_limit_error):
        driver.call(driver.client(fp.url, max_retries=0), model=driver.model)
    if "stream" in driver.supports:
        fp.enqueue(Reply(text=TEXT, usage="missing"))  # estimated from the prompt: it was read, must not leak
        driver.call(client, model=driver.model, stream=True)
    assert API_KEY in " ".join(str(v) for r in fp.requests for v in r.headers.values())  # the SDK did send it
    assert PROMPT in " ".join(r.body.decode(errors="replace") for r in fp.requests)
    everything = strings_in_telemetry(cap)
    assert everything
    secret_bits = [API_KEY, PROMPT, "purple-walrus", "SECRET-4f9c", TEXT]
    leaks = [(bit, s) for s in everything for bit in secret_bits if bit in s]
    assert leaks == []


class _DowngradeGate:
    """A minimal policy gate that rewrites every call's model before it is sent."""

    def __init__(self, to: str) -> None:
        self.to = to
        self.settled: list[tuple[Usage | None, Any, BaseException | None]] = []

    def before(self, call: tokenmeter.MeteredCall) -> None:
        call.request.model = self.to

    def after(self, call: tokenmeter.MeteredCall, usage: Usage | None, cost: Any, error: BaseException | None) -> None:
        self.settled.append((usage, cost, error))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_policy_downgrade_sends_the_cheaper_model(driver: Driver, fp: FakeProvider, cap: Capture, stream: bool) -> None:
    if stream:
        require(driver, "stream")
    cheaper = option(driver, "cheaper_model")
    assert cheaper != driver.model
    gate = _DowngradeGate(cheaper)
    cap.meter.gate = gate
    fp.enqueue(PLAIN)
    assert driver.call(driver.client(fp.url), model=driver.model, stream=stream) == TEXT
    assert fp.requests[-1].model == cheaper
    expected = driver.expected(PLAIN)
    span = assert_metered(
        cap,
        provider=driver.provider,
        model=cheaper,
        usage=expected,
        check_response_model=option(driver, "reports_response_model"),
    )
    assert (span.attributes or {})["tokenmeter.request.original_model"] == driver.model
    assert len(gate.settled) == 1 and gate.settled[0][0] == expected and gate.settled[0][2] is None
    assert_cost(cap, driver.provider, cheaper, expected)
