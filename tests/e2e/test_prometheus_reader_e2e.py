"""PrometheusReader against a real VictoriaMetrics: hand-computed counter histories, and OTLP-named metrics.

* Histories with explicit timestamps (``/api/v1/import/prometheus``): a series older than the report, restarting
  inside an hour, a gap, a process born mid-report, a restart across an hour boundary. The reader's hourly figures
  are the hand-computed ones -- and PromQL's own ``increase()`` is not (it extrapolates and drops a new series'
  first sample), which is why the reader does not use it.
* VictoriaMetrics' default OTLP ingestion (no ``-opentelemetry.usePrometheusNaming``: ``tokenmeter.tokens``,
  ``tokenmeter.team.name``) and a Prometheus scraping ``configure(prometheus_address=...)`` read with the
  workload's exact totals.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from backends import Prometheus, VictoriaMetrics, free_port
from opentelemetry.sdk.trace import TracerProvider

import tokenmeter
from examples.agent_service import WorkloadResult, demo_options, run_workload
from tokenmeter.finops import PrometheusReader, PrometheusSourceError

H, M = 3600, 60
A = [
    (-2 * H, 100),
    (10 * M, 150),
    (50 * M, 180),
    (H + 10 * M, 200),
    (H + 20 * M, 20),
    (H + 40 * M, 50),
    (3 * H + 5 * M, 70),
    (5 * H + 10 * M, 90),
]
B = [(2 * H + 30 * M, 40), (2 * H + 45 * M, 60)]
C = [(20 * M, 500), (H + 30 * M, 30)]
EXPECTED = {
    (0, "input"): 80,
    (1, "input"): 70,
    (2, "input"): 60,
    (3, "input"): 20,
    (5, "input"): 20,
    (0, "output"): 500,
    (1, "output"): 30,
}


def _import(vm: VictoriaMetrics, lines: list[str]) -> None:
    request = urllib.request.Request(
        vm.base_url + "/api/v1/import/prometheus", data="\n".join(lines).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 204


def test_hourly_figures_are_exact_where_increase_is_not(victoriametrics: VictoriaMetrics, run_id: str) -> None:
    t0 = int(time.time()) // H * H - 7 * H  # within the fixture's 1-day retention
    env = f"prod-{run_id}"
    base = (
        f'tokenmeter_team_name="support",gen_ai_workflow_name="triage",gen_ai_request_model="gpt-4o",'
        f'gen_ai_provider_name="openai",gen_ai_operation_name="chat",tokenmeter_env="{env}"'
    )
    lines = []
    for instance, token_class, history in (("a", "input", A), ("b", "input", B), ("c", "output", C)):
        for offset, value in history:
            lines.append(
                f'tokenmeter_tokens_total{{{base},tokenmeter_token_class="{token_class}",'
                f'service_instance_id="{instance}"}} {value} {(t0 + offset) * 1000}'
            )
    _import(victoriametrics, lines)
    victoriametrics.force_flush()
    reader = PrometheusReader(victoriametrics.base_url, now=t0 + 5 * H + 30 * M)
    start = datetime.fromtimestamp(t0, UTC)
    rows: list[tuple[int, str, int]] = []
    deadline = time.monotonic() + 20
    while sum(n for *_, n in rows) != sum(EXPECTED.values()) and time.monotonic() < deadline:
        rows = [
            ((int(r.start.timestamp()) - t0) // H, r.token_class, r.tokens)
            for r in reader.usage(start, start + timedelta(hours=8), env=env, granularity="hour")
        ]
        time.sleep(0.3)
    got: dict[tuple[int, str], int] = {}
    for hour, token_class, n in rows:
        got[(hour, token_class)] = got.get((hour, token_class), 0) + n
    assert got == EXPECTED
    increase = 0.0
    for hour in range(6):
        result = victoriametrics.query(
            f'sum(increase(tokenmeter_tokens_total{{tokenmeter_env="{env}"}}[1h]))', at=t0 + (hour + 1) * H
        )
        increase += float(result[0]["value"][1]) if result else 0.0
    assert increase != sum(EXPECTED.values())


def test_otlp_metric_names_read_the_same(start_backend: Callable[..., VictoriaMetrics]) -> None:
    vm = start_backend(lambda: VictoriaMetrics(prometheus_naming=False), "victoriametrics")
    meter = tokenmeter.configure(
        **{**demo_options(8), "service_name": "otlp-names"},
        exporter="otlp",
        endpoint=vm.base_url + "/opentelemetry",
        tracer_provider=TracerProvider(),
    )
    try:
        result = run_workload(8, 5)
        assert meter.force_flush(timeout_millis=20_000)
    finally:
        tokenmeter.unconfigure()
    reader = PrometheusReader(vm.base_url)
    _same_as_the_workload(reader, result, before_read=vm.force_flush)  # make just-ingested samples searchable
    assert "OTLP metric names" in reader.describe()


def test_a_scraping_prometheus_reads_the_same(prometheus_factory: Callable[..., Prometheus]) -> None:
    port = free_port()
    prometheus = prometheus_factory(f"127.0.0.1:{port}", scrape_interval="1s")
    meter = tokenmeter.configure(
        **{**demo_options(8), "service_name": "scraped"},
        exporter="none",
        prometheus_address=f"127.0.0.1:{port}",
        tracer_provider=TracerProvider(),
    )
    try:
        result = run_workload(8, 6)
        assert meter.force_flush(timeout_millis=20_000)
        reader = PrometheusReader(prometheus.base_url)
        _same_as_the_workload(reader, result, timeout=40)  # ~5 s before Prometheus first scrapes a new target
        assert "Prometheus metric names" in reader.describe()
    finally:
        tokenmeter.unconfigure()


def _same_as_the_workload(
    reader: PrometheusReader,
    result: WorkloadResult,
    *,
    timeout: float = 20,
    before_read: Callable[[], object] = lambda: None,
) -> None:
    """The reader's tokens and cost per (model, token class) are what the provider reported for the workload."""
    prices = tokenmeter.PriceBook()
    want: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for call in result.calls:
        if call.usage is None:
            continue
        cost = prices.cost("openai", call.model, call.usage)
        for i, (token_class, n) in enumerate(call.usage.by_class()):
            if n:
                tokens, usd = want.get((call.model, token_class), (0, Decimal(0)))
                want[(call.model, token_class)] = (tokens + n, usd + (cost.by_class[i] if cost.by_class else 0))
    now = datetime.now(UTC)
    deadline = time.monotonic() + timeout
    while True:
        before_read()
        try:
            rows = list(reader.usage(now - timedelta(hours=1), now + timedelta(hours=1), granularity="hour"))
        except PrometheusSourceError:
            rows = []  # nothing arrived yet
        if sum(r.tokens for r in rows) >= sum(t for t, _ in want.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    got: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for r in rows:
        if r.tokens:
            tokens, usd = got.get((r.model, r.token_class), (0, Decimal(0)))
            got[(r.model, r.token_class)] = (tokens + r.tokens, usd + (r.cost_usd or 0))
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in want.items()}
    for key, (_, usd) in want.items():
        assert got[key][1] == pytest.approx(usd, rel=Decimal("1e-9"), abs=Decimal("1e-12")), key
