"""PrometheusReader reads per-request unit counts (``tokenmeter_units_total``) beside their cost.

The series are named and labelled as the real OpenTelemetry Prometheus exporter writes them (checked against its
``/metrics`` output: ``tokenmeter_units_total{tokenmeter_unit="web_search"}`` beside
``tokenmeter_cost_USD_total{tokenmeter_token_class="web_search"}``), served by the loopback fake of the HTTP API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.unit.fake_prometheus import FakePrometheus
from tokenmeter.finops import PrometheusReader, build_report
from tokenmeter.finops.focus import focus_rows

T0 = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp())
NOW = T0 + 5 * 3600
START, END = datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0, UTC) + timedelta(days=1)
BASE = {
    "tokenmeter_team_name": "search",
    "gen_ai_workflow_name": "research",
    "tokenmeter_model_tier": "standard",
    "gen_ai_provider_name": "anthropic",
    "gen_ai_request_model": "claude-haiku-4-5",
    "gen_ai_operation_name": "chat",
    "tokenmeter_env": "prod",
    "service_instance_id": "a",
}


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    with FakePrometheus() as f:
        yield f


def test_unit_counts_are_read_beside_their_cost(fake: FakePrometheus) -> None:
    fake.add("tokenmeter_tokens_total", {**BASE, "tokenmeter_token_class": "input"}, [(T0 + 600, 1000)])
    fake.add("tokenmeter_cost_USD_total", {**BASE, "tokenmeter_token_class": "input"}, [(T0 + 600, 0.001)])
    fake.add("tokenmeter_calls_total", {**BASE, "tokenmeter_outcome": "ok"}, [(T0 + 600, 2)])
    fake.add("tokenmeter_units_total", {**BASE, "tokenmeter_unit": "web_search"}, [(T0 + 600, 3), (T0 + 4000, 5)])
    fake.add(
        "tokenmeter_cost_USD_total",
        {**BASE, "tokenmeter_token_class": "web_search"},
        [(T0 + 600, 0.03), (T0 + 4000, 0.05)],
    )
    # a unit with no rate: counted, no cost series -> unpriced, never $0
    fake.add("tokenmeter_units_total", {**BASE, "tokenmeter_unit": "code_execution"}, [(T0 + 600, 4)])
    reader = PrometheusReader(fake.url, now=NOW)
    rows = list(reader.usage(START, END, granularity="hour"))
    searches = sorted((r.start, r.units, r.cost_usd) for r in rows if r.token_class == "web_search")
    assert searches == [(START, 3, Decimal("0.03")), (START + timedelta(hours=1), 2, Decimal("0.02"))]
    (code,) = [r for r in rows if r.token_class == "code_execution"]
    assert (code.units, code.cost_usd, code.tokens) == (4, None, 0)
    report = build_report(reader, START, END)
    assert (report.units["web_search"].count, report.units["web_search"].cost) == (5, Decimal("0.05"))
    assert report.units["code_execution"].unpriced == 4
    month = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    export = focus_rows(reader.usage(START, END, granularity="day"), period_start=month[0], period_end=month[1])
    (row,) = [r for r in export.rows if r["ConsumedUnit"] == "Searches"]
    assert (row["ConsumedQuantity"], row["BilledCost"], row["ListUnitPrice"]) == (5, Decimal("0.05"), 10)
    assert export.unpriced_units == {"code_execution": 4}
