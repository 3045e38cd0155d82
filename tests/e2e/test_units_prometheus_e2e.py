"""Unit counts through a real Prometheus: an Anthropic web-search call (the real SDK, loopback fake server),
scraped from ``configure(prometheus_address=...)``, read back by ``PrometheusReader`` with its count and cost,
and exported to FOCUS with ``ConsumedQuantity`` = the searches. claude-haiku-4-5: web search $10 per 1,000."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import anthropic
import pytest
from backends import Prometheus, free_port
from opentelemetry.sdk.trace import TracerProvider

import tokenmeter
from tokenmeter.finops import PrometheusReader, PrometheusSourceError
from tokenmeter.finops.focus import focus_rows
from tokenmeter.testing.fakes import FakeProvider, Reply


def _message(searches: int) -> dict[str, object]:
    return {
        "id": "msg_prom_units",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Found it."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 2000, "output_tokens": 100, "server_tool_use": {"web_search_requests": searches}},
    }


def test_a_scraping_prometheus_keeps_the_unit_count(
    prometheus_factory: Callable[..., Prometheus], fp: FakeProvider
) -> None:
    port = free_port()
    prometheus = prometheus_factory(f"127.0.0.1:{port}", scrape_interval="1s")
    tokenmeter.instrument("anthropic")
    meter = tokenmeter.configure(
        service_name="units-scraped",
        exporter="none",
        ledger=None,
        prometheus_address=f"127.0.0.1:{port}",
        tracer_provider=TracerProvider(),
    )
    try:
        client = anthropic.Anthropic(base_url=fp.url, api_key="sk-ant-test", max_retries=0)
        with tokenmeter.workflow("research", team="search"):
            for searches in (3, 4):
                fp.enqueue(Reply(body=_message(searches)))
                client.messages.create(
                    model="claude-haiku-4-5", max_tokens=99, messages=[{"role": "user", "content": "q"}]
                )
        assert meter.force_flush(timeout_millis=20_000)
        reader = PrometheusReader(prometheus.base_url)
        now = datetime.now(UTC)
        deadline = time.monotonic() + 40  # ~5 s before Prometheus first scrapes a new target
        rows = []
        while time.monotonic() < deadline:
            try:
                rows = list(reader.usage(now - timedelta(hours=1), now + timedelta(hours=1), granularity="hour"))
            except PrometheusSourceError:
                rows = []
            if sum(r.units for r in rows if r.token_class == "web_search") >= 7:
                break
            time.sleep(0.3)
    finally:
        tokenmeter.unconfigure()
        tokenmeter.uninstrument("anthropic")
    searches = [r for r in rows if r.token_class == "web_search"]
    assert sum(r.units for r in searches) == 7
    assert sum(r.cost_usd or 0 for r in searches) == pytest.approx(Decimal("0.07"), abs=Decimal("1e-9"))
    month = datetime(now.year, now.month, 1, tzinfo=UTC)
    nxt = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    export = focus_rows(rows, period_start=month, period_end=nxt)
    unit_rows = [r for r in export.rows if r["ConsumedUnit"] == "Searches"]  # one per UTC day the calls spanned
    assert sum(r["ConsumedQuantity"] for r in unit_rows) == 7
    for row in unit_rows:
        assert row["PricingUnit"] == "1000 Searches" and row["SkuId"] == "anthropic/claude-haiku-4-5/web_search"
        assert row["ListUnitPrice"] == pytest.approx(Decimal(10), abs=Decimal("1e-6"))
