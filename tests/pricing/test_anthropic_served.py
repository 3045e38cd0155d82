"""Anthropic responses of recorded shapes, served over loopback to the real ``anthropic`` SDK.

Rates (USD per million tokens, Anthropic's pricing page): claude-haiku-4-5 1 input, 1.25 5-minute cache
write, 2 1-hour cache write, 0.10 cache read, 5 output; claude-opus-4-1 15 input, 75 output; the
Message Batches API is 50% of every rate.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import pytest

import tokenmeter
from tokenmeter.testing import Capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from ..integration.checks import only_call_span

M = 10**6


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    tokenmeter.instrument("anthropic")
    yield
    tokenmeter.uninstrument("anthropic")


def _message(usage: dict[str, Any], model: str = "claude-haiku-4-5-20251001") -> dict[str, Any]:
    return {
        "id": "msg_rec1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "Done."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


TTL_USAGE = {
    "input_tokens": 50,
    "cache_creation_input_tokens": 3000,
    "cache_read_input_tokens": 10000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    "output_tokens": 400,
    "service_tier": "standard",
}
TTL_COST = (
    Decimal(1) * 50 / M
    + Decimal("1.25") * 1000 / M
    + Decimal(2) * 2000 / M
    + Decimal("0.1") * 10000 / M
    + Decimal(5) * 400 / M
)


def test_cache_writes_are_priced_by_their_ttl(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(body=_message(TTL_USAGE)))
    client = anthropic.Anthropic(base_url=fp.url, api_key="sk-ant-test", max_retries=0)
    client.messages.create(model="claude-haiku-4-5", max_tokens=500, messages=[{"role": "user", "content": "hi"}])
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["tokenmeter.usage.cache_write_1h_tokens"] == 2000
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(TTL_COST), abs=1e-9)
    write_cost = Decimal("1.25") * 1000 / M + Decimal(2) * 2000 / M
    assert cap.counter("tokenmeter.cost", **{"tokenmeter.token.class": "cache_write"}) == pytest.approx(
        float(write_cost), abs=1e-9
    )


def test_streamed_cache_writes_are_priced_by_their_ttl(fp: FakeProvider, cap: Capture) -> None:
    start_usage = {**TTL_USAGE, "output_tokens": 1}
    events = [
        {"type": "message_start", "message": {**_message(start_usage), "content": [], "stop_reason": None}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Done."}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 400},
        },
        {"type": "message_stop"},
    ]
    fp.enqueue(Reply(body=events))
    client = anthropic.Anthropic(base_url=fp.url, api_key="sk-ant-test", max_retries=0)
    stream = client.messages.create(
        model="claude-haiku-4-5", max_tokens=500, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    for _ in stream:
        pass
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(TTL_COST), abs=1e-9)


def test_advisor_and_compaction_iterations_are_metered_at_their_own_model(fp: FakeProvider, cap: Capture) -> None:
    usage = {
        "input_tokens": 100,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 200,
        "iterations": [
            {
                "type": "message",
                "input_tokens": 100,
                "output_tokens": 200,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
            {
                "type": "advisor_message",
                "model": "claude-opus-4-1",
                "input_tokens": 4000,
                "output_tokens": 300,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
            {
                "type": "compaction",
                "input_tokens": 2500,
                "output_tokens": 150,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        ],
    }
    fp.enqueue(Reply(body=_message(usage)))
    client = anthropic.Anthropic(base_url=fp.url, api_key="sk-ant-test", max_retries=0)
    client.beta.messages.create(model="claude-haiku-4-5", max_tokens=500, messages=[{"role": "user", "content": "hi"}])
    attrs = dict(only_call_span(cap).attributes or {})
    # The top level (100 in / 200 out, the "message" iteration) plus the advisor and the compaction run.
    assert attrs["gen_ai.usage.input_tokens"] == 100 + 4000 + 2500
    assert attrs["gen_ai.usage.output_tokens"] == 200 + 300 + 150
    assert attrs["tokenmeter.usage.sub_inference.count"] == 2
    assert list(attrs["tokenmeter.usage.sub_inference.models"]) == ["claude-opus-4-1"]
    assert attrs["tokenmeter.usage.sub_inference.input_tokens"] == 6500
    expected = (
        Decimal(1) * (100 + 2500) / M  # haiku: the call and its compaction run
        + Decimal(5) * (200 + 150) / M
        + Decimal(15) * 4000 / M  # opus: the advisor
        + Decimal(75) * 300 / M
    )
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(expected), abs=1e-9)
    assert cap.counter("tokenmeter.tokens") == 100 + 4000 + 2500 + 200 + 300 + 150


def test_a_batch_served_usage_is_priced_at_the_batch_rate() -> None:
    from tokenmeter import PriceBook
    from tokenmeter.integrations._anthropic_usage import usage_from_message

    usage = usage_from_message({"usage": {**TTL_USAGE, "service_tier": "batch"}})
    assert usage is not None and usage.processing == "batch"
    cost = PriceBook().cost("anthropic", "claude-haiku-4-5", usage)
    assert cost.usd == pytest.approx(TTL_COST / 2, abs=Decimal("1e-9"))


def test_message_batch_results_are_metered_per_result_at_the_batch_rate(fp: FakeProvider, cap: Capture) -> None:
    batch = {
        "id": "msgbatch_01",
        "type": "message_batch",
        "processing_status": "ended",
        "request_counts": {"processing": 0, "succeeded": 2, "errored": 1, "canceled": 0, "expired": 0},
        "created_at": "2026-11-01T00:00:00Z",
        "ended_at": "2026-11-01T01:00:00Z",
        "expires_at": "2026-11-02T00:00:00Z",
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": f"{fp.url}/v1/messages/batches/msgbatch_01/results",
    }
    lines = [
        {"custom_id": "a", "result": {"type": "succeeded", "message": _message(TTL_USAGE)}},
        {
            "custom_id": "b",
            "result": {"type": "succeeded", "message": _message({"input_tokens": 1000, "output_tokens": 100})},
        },
        {
            "custom_id": "c",
            "result": {
                "type": "errored",
                "error": {"type": "error", "error": {"type": "overloaded_error", "message": "x"}},
            },
        },
    ]
    fp.enqueue(Reply(body=batch), Reply(body=lines))
    client = anthropic.Anthropic(base_url=fp.url, api_key="sk-ant-test", max_retries=0)
    seen = [r.custom_id for r in client.messages.batches.results("msgbatch_01")]
    assert seen == ["a", "b", "c"]
    spans = [s for s in cap.spans if (s.attributes or {}).get("tokenmeter.batch.id") == "msgbatch_01"]
    assert len(spans) == 2
    assert all((s.attributes or {})["tokenmeter.request.processing"] == "batch" for s in spans)
    expected = (TTL_COST + Decimal(1) * 1000 / M + Decimal(5) * 100 / M) / 2  # the Batch API: 50% of every rate
    assert cap.counter("tokenmeter.cost") == pytest.approx(float(expected), abs=1e-9)
    assert cap.counter("tokenmeter.calls") == 2


async def test_async_batch_results_are_metered(fp: FakeProvider, cap: Capture) -> None:
    batch = {
        "id": "msgbatch_02",
        "type": "message_batch",
        "processing_status": "ended",
        "request_counts": {"processing": 0, "succeeded": 1, "errored": 0, "canceled": 0, "expired": 0},
        "created_at": "2026-11-01T00:00:00Z",
        "ended_at": "2026-11-01T01:00:00Z",
        "expires_at": "2026-11-02T00:00:00Z",
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": f"{fp.url}/v1/messages/batches/msgbatch_02/results",
    }
    line = {"custom_id": "a", "result": {"type": "succeeded", "message": _message(TTL_USAGE)}}
    fp.enqueue(Reply(body=batch), Reply(body=[line]))
    client = anthropic.AsyncAnthropic(base_url=fp.url, api_key="sk-ant-test", max_retries=0)
    results = await client.messages.batches.results("msgbatch_02")
    assert [r.custom_id async for r in results] == ["a"]
    assert cap.counter("tokenmeter.cost") == pytest.approx(float(TTL_COST / 2), abs=1e-9)
