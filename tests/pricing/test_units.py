"""Per-request units: web searches (and friends) of recorded response shapes, over loopback to the real SDKs.

Each cost is checked to 1e-9 USD against the hand-computed published figure:

* Anthropic web search: $10 per 1,000 searches (``usage.server_tool_use.web_search_requests``); web fetch
  has no charge beyond its tokens. claude-haiku-4-5: $1 / $5 per million input / output tokens.
* OpenAI Responses web search tool calls: $10 per 1,000 calls (each ``web_search_call`` output item);
  file search tool calls $2.50 per 1,000. gpt-4.1: $2 / $8 per million.
* Gemini grounding with Google Search: Gemini 2.x $35 per 1,000 grounded prompts (one per grounded
  call, whatever its queries); Gemini 3 $14 per 1,000 search queries. gemini-2.5-flash: $0.30 / $2.50,
  gemini-3-pro-preview: $2 / $12 per million (prompts up to 200k).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

import tokenmeter
from tokenmeter import Usage
from tokenmeter.testing import Capture, capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from ..integration.checks import only_call_span

M = 10**6


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    for name in ("anthropic", "openai", "gemini"):
        tokenmeter.instrument(name)
    yield
    for name in ("anthropic", "openai", "gemini"):
        tokenmeter.uninstrument(name)


def _span_cost(cap: Capture) -> dict[str, Any]:
    return dict(only_call_span(cap).attributes or {})


# -- Anthropic ----------------------------------------------------------------------------------
def _anthropic_message(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_ws1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "otel"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "text", "text": "Found it."},
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


ANTHROPIC_USAGE = {
    "input_tokens": 6039,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "output_tokens": 931,
    "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 2},
    "service_tier": "standard",
}
ANTHROPIC_TOKENS = Decimal(1) * 6039 / M + Decimal(5) * 931 / M
ANTHROPIC_SEARCHES = Decimal(10) * 3 / 1000


def test_anthropic_web_searches_are_counted_and_priced(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(body=_anthropic_message(ANTHROPIC_USAGE)))
    client = anthropic.Anthropic(base_url=fp.url, api_key="sk-ant-test", max_retries=0)
    client.messages.create(model="claude-haiku-4-5", max_tokens=2000, messages=[{"role": "user", "content": "q"}])
    attrs = _span_cost(cap)
    assert attrs["tokenmeter.usage.web_search"] == 3
    assert attrs["tokenmeter.usage.web_fetch"] == 2
    assert attrs["tokenmeter.cost.unit.web_search_usd"] == pytest.approx(float(ANTHROPIC_SEARCHES), abs=1e-9)
    assert attrs["tokenmeter.cost.unit.web_fetch_usd"] == 0.0  # published: no charge beyond the tokens
    assert "tokenmeter.cost.unpriced_units" not in attrs
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(ANTHROPIC_TOKENS + ANTHROPIC_SEARCHES), abs=1e-9)
    # The five token classes keep their meaning; the searches are their own part of the cost.
    assert cap.counter("tokenmeter.cost", **{"tokenmeter.token.class": "input"}) == pytest.approx(6039 / M, abs=1e-9)
    assert cap.counter("tokenmeter.cost", **{"tokenmeter.token.class": "web_search"}) == pytest.approx(0.03, abs=1e-9)
    assert cap.counter("tokenmeter.cost") == pytest.approx(float(ANTHROPIC_TOKENS + ANTHROPIC_SEARCHES), abs=1e-9)
    assert cap.counter("tokenmeter.units", **{"tokenmeter.unit": "web_search"}) == 3
    assert cap.counter("tokenmeter.units", **{"tokenmeter.unit": "web_fetch"}) == 2
    assert cap.counter("tokenmeter.tokens") == 6039 + 931  # units are not tokens


def test_anthropic_streamed_web_searches_take_the_final_count(fp: FakeProvider, cap: Capture) -> None:
    start = {**ANTHROPIC_USAGE, "output_tokens": 1, "server_tool_use": {"web_search_requests": 0}}
    message = {**_anthropic_message(start), "content": [], "stop_reason": None}
    events = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Found it."}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 931, "server_tool_use": {"web_search_requests": 3}},
        },
        {"type": "message_stop"},
    ]
    fp.enqueue(Reply(body=events))

    async def run() -> None:
        async with anthropic.AsyncAnthropic(base_url=fp.url, api_key="sk-ant-test", max_retries=0) as client:
            stream = await client.messages.create(
                model="claude-haiku-4-5", max_tokens=2000, messages=[{"role": "user", "content": "q"}], stream=True
            )
            async for _ in stream:
                pass

    asyncio.run(run())
    attrs = _span_cost(cap)
    assert attrs["tokenmeter.usage.web_search"] == 3
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(ANTHROPIC_TOKENS + ANTHROPIC_SEARCHES), abs=1e-9)


def test_a_malformed_search_count_is_left_out_and_the_tokens_stay_exact(fp: FakeProvider, cap: Capture) -> None:
    usage = {**ANTHROPIC_USAGE, "server_tool_use": {"web_search_requests": -3, "web_fetch_requests": "two"}}
    fp.enqueue(Reply(body=_anthropic_message(usage)))
    client = anthropic.Anthropic(base_url=fp.url, api_key="sk-ant-test", max_retries=0)
    client.messages.create(model="claude-haiku-4-5", max_tokens=2000, messages=[{"role": "user", "content": "q"}])
    attrs = _span_cost(cap)
    assert attrs["tokenmeter.usage.estimated"] is False
    assert "tokenmeter.usage.web_search" not in attrs and "tokenmeter.usage.web_fetch" not in attrs
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(ANTHROPIC_TOKENS), abs=1e-9)


# -- OpenAI Responses ----------------------------------------------------------------------------
def _search_item(n: int, status: str = "completed") -> dict[str, Any]:
    return {"type": "web_search_call", "id": f"ws_{n}", "status": status, "action": {"type": "search", "query": "q"}}


def _response(output: list[dict[str, Any]], model: str = "gpt-4.1-2025-04-14") -> dict[str, Any]:
    message = {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Found it.", "annotations": []}],
    }
    return {
        "id": "resp_ws1",
        "object": "response",
        "created_at": 1760000000,
        "status": "completed",
        "model": model,
        "output": [*output, message],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [{"type": "web_search"}],
        "usage": {
            "input_tokens": 8000,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 600,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 8600,
        },
    }


OPENAI_TOKENS = Decimal(2) * 8000 / M + Decimal(8) * 600 / M


def test_openai_responses_web_search_calls_are_counted_and_priced(fp: FakeProvider, cap: Capture) -> None:
    output = [
        _search_item(1),
        _search_item(2),
        {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["q"], "results": None},
        _search_item(3, status="failed"),  # a failed call is not a billed search
    ]
    fp.enqueue(Reply(body=_response(output)))
    client = openai.OpenAI(base_url=fp.url + "/v1", api_key="sk-test", max_retries=0)
    client.responses.create(model="gpt-4.1", input="search", tools=[{"type": "web_search"}])
    attrs = _span_cost(cap)
    assert attrs["tokenmeter.usage.web_search"] == 2
    assert attrs["tokenmeter.usage.file_search"] == 1
    searches = Decimal(10) * 2 / 1000 + Decimal("2.5") * 1 / 1000
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(OPENAI_TOKENS + searches), abs=1e-9)


def test_openai_streamed_responses_count_the_final_responses_search_calls(fp: FakeProvider, cap: Capture) -> None:
    final = _response([_search_item(1)])
    events = [
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": {**final, "status": "in_progress", "usage": None},
        },
        {
            "type": "response.output_text.delta",
            "sequence_number": 1,
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "delta": "Found it.",
            "logprobs": [],
        },
        {"type": "response.completed", "sequence_number": 2, "response": final},
    ]
    fp.enqueue(Reply(body=events))
    client = openai.OpenAI(base_url=fp.url + "/v1", api_key="sk-test", max_retries=0)
    for _ in client.responses.create(model="gpt-4.1", input="search", tools=[{"type": "web_search"}], stream=True):
        pass
    attrs = _span_cost(cap)
    assert attrs["tokenmeter.usage.web_search"] == 1
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(OPENAI_TOKENS + Decimal(10) / 1000), abs=1e-9)


# -- Gemini grounding ----------------------------------------------------------------------------
def _gemini_client(fp: FakeProvider) -> genai.Client:
    retry = types.HttpRetryOptions(attempts=1)
    return genai.Client(
        api_key="test-key", http_options=types.HttpOptions(base_url=fp.url, api_version="v1beta", retry_options=retry)
    )


def _grounded(model: str, queries: list[str]) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "It is sunny."}]},
                "finishReason": "STOP",
                "index": 0,
                "groundingMetadata": {
                    "webSearchQueries": queries,
                    "searchEntryPoint": {"renderedContent": "<div></div>"},
                    "groundingChunks": [{"web": {"uri": "https://example.com", "title": "example.com"}}],
                },
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 900,
            "candidatesTokenCount": 120,
            "toolUsePromptTokenCount": 300,
            "totalTokenCount": 1320,
        },
        "modelVersion": model,
        "responseId": "resp-grounded",
    }


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("model", "units", "expected"),
    [
        # Gemini 2.x: one grounded prompt, whatever its number of queries ($35 / 1,000)
        (
            "gemini-2.5-flash",
            1,
            Decimal("0.3") * (900 + 300) / M + Decimal("2.5") * 120 / M + Decimal(35) / 1000,
        ),
        # Gemini 3: each search query ($14 / 1,000)
        (
            "gemini-3-pro-preview",
            3,
            Decimal(2) * (900 + 300) / M + Decimal(12) * 120 / M + Decimal(14) * 3 / 1000,
        ),
    ],
)
def test_gemini_grounding_with_google_search_is_billed_as_published(
    fp: FakeProvider, cap: Capture, mode: str, model: str, units: int, expected: Decimal
) -> None:
    fp.enqueue(Reply(body=_grounded(model, ["weather paris", "paris forecast", "meteo paris"])))
    client = _gemini_client(fp)
    config = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    if mode == "sync":
        client.models.generate_content(model=model, contents="weather in Paris?", config=config)
    else:
        asyncio.run(client.aio.models.generate_content(model=model, contents="weather in Paris?", config=config))
    attrs = _span_cost(cap)
    assert attrs["tokenmeter.usage.web_search"] == units
    assert attrs["tokenmeter.usage.estimated"] is False
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(expected), abs=1e-9)


def test_gemini_without_grounding_has_no_search_units(fp: FakeProvider, cap: Capture) -> None:
    body = _grounded("gemini-2.5-flash", [])
    del body["candidates"][0]["groundingMetadata"]
    fp.enqueue(Reply(body=body))
    client = _gemini_client(fp)
    client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    attrs = _span_cost(cap)
    assert "tokenmeter.usage.web_search" not in attrs
    assert cap.counter("tokenmeter.units") == 0


# -- unknown rates, overrides, the ledger ------------------------------------------------------
def test_a_unit_without_a_published_rate_is_counted_and_named_unpriced_never_zero() -> None:
    with capture() as cap:
        # Anthropic publishes no file-search price: counted, left out of the cost, named on the span.
        usage = Usage(input=1000, output=100, units=(("file_search", 4),))
        tokenmeter.record("anthropic", "claude-haiku-4-5", usage)
        attrs = dict(cap.spans[0].attributes or {})
    assert attrs["tokenmeter.usage.file_search"] == 4
    assert attrs["tokenmeter.cost.unpriced_units"] == ("file_search",)
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(Decimal(1000) / M + Decimal(5) * 100 / M), abs=1e-9)
    assert "tokenmeter.cost.unit.file_search_usd" not in attrs
    assert cap.counter("tokenmeter.units", **{"tokenmeter.unit": "file_search"}) == 4


def test_a_multiplier_override_scales_the_unit_price_too() -> None:
    with capture(prices={"claude-haiku-4-5*": {"multiplier": 0.5}}) as cap:
        tokenmeter.record("anthropic", "claude-haiku-4-5", Usage(input=1000, units=(("web_search", 2),)))
        attrs = dict(cap.spans[0].attributes or {})
    expected = (Decimal(1000) / M + Decimal(10) * 2 / 1000) / 2
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(expected), abs=1e-9)


def test_perplexity_request_fee_from_the_table_is_part_of_the_cost() -> None:
    with capture() as cap:
        tokenmeter.record("perplexity", "sonar", Usage(input=1000, output=10))
        attrs = dict(cap.spans[0].attributes or {})
    # genai-prices: sonar $1 / $1 per million tokens and $12 per 1,000 requests
    expected = Decimal(1000) / M + Decimal(10) / M + Decimal(12) / 1000
    assert attrs["tokenmeter.cost.unit.request_usd"] == pytest.approx(0.012, abs=1e-9)
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(expected), abs=1e-9)


def test_the_ledger_and_report_have_a_cost_row_per_unit(tmp_path: Any) -> None:
    from datetime import UTC, datetime

    from tokenmeter.finops import SQLiteReader, build_report

    path = tmp_path / "ledger.db"
    tokenmeter.configure(ledger=f"sqlite:///{path}", exporter="none")
    try:
        usage = Usage(input=1000, output=100, units=(("web_search", 3),))
        tokenmeter.record("anthropic", "claude-haiku-4-5", usage)
    finally:
        tokenmeter.unconfigure()
    reader = SQLiteReader(str(path))
    rows = list(reader.usage(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)))
    by_class = {r.token_class: r for r in rows}
    assert by_class["web_search"].cost_usd == Decimal(10) * 3 / 1000
    assert by_class["web_search"].list_cost_usd == Decimal(10) * 3 / 1000
    assert by_class["web_search"].tokens == 0  # a cost row: token totals stay the five classes'
    assert sum(r.tokens for r in rows) == 1100
    total = Decimal(1000) / M + Decimal(500) / M + Decimal("0.03")
    assert sum((r.cost_usd or Decimal(0)) for r in rows) == total
    report = build_report(reader)
    assert report.total.calls == 1
    assert report.total.cost == total


def test_overrides_price_units_absolutely_and_a_units_only_entry_keeps_the_table_token_rates() -> None:
    prices = {
        "claude-haiku-4-5*": {"web_search": 8},  # negotiated: $8 per 1,000 searches, table token rates
        "gpt-4.1*": {"multiplier": 0.5, "web_search": 10},  # tokens at half, searches as given
        "gemini-2.5-flash-image": {"input": 0.3, "output": 30, "cache_storage": 2},  # USD per M token-hours
    }
    with capture(prices=prices) as cap:
        tokenmeter.record("anthropic", "claude-haiku-4-5", Usage(input=1000, units=(("web_search", 2),)))
        tokenmeter.record("openai", "gpt-4.1", Usage(input=1000, units=(("web_search", 2),)))
        storage = Usage(input=1000, units=(("cache_storage", 1000 * 7200),))
        tokenmeter.record("gcp.gemini", "gemini-2.5-flash-image", storage)
        haiku, gpt, image = (dict(s.attributes or {}) for s in cap.spans)
    assert haiku["tokenmeter.cost.source"] == "override"
    assert haiku["tokenmeter.cost.usd"] == pytest.approx(float(Decimal(1000) / M + Decimal(8) * 2 / 1000), abs=1e-9)
    assert gpt["tokenmeter.cost.usd"] == pytest.approx(float(Decimal(1000) / M + Decimal(10) * 2 / 1000), abs=1e-9)
    expected = Decimal("0.3") * 1000 / M + Decimal(2) * 1000 * 2 / M  # 1,000 tokens for 2 hours
    assert image["tokenmeter.cost.unit.cache_storage_usd"] == pytest.approx(float(Decimal(2) * 2000 / M), abs=1e-9)
    assert image["tokenmeter.cost.usd"] == pytest.approx(float(expected), abs=1e-9)


def test_a_bad_unit_rate_fails_at_configure_naming_the_option() -> None:
    with pytest.raises(tokenmeter.ConfigError, match=r"web_search must be a finite number >= 0 \(USD per 1,000\)"):
        tokenmeter.configure(exporter="none", ledger=None, prices={"gpt-4.1": {"web_search": -1}})
