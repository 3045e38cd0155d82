"""Self-test of the e2e backend fixtures with the plain OpenTelemetry SDK (no tokenmeter code).

Each test sends telemetry the way tokenmeter will, reads it back from the REAL backend and checks
exact values and the exact metric / label names the backend stores:

* counter ``tokenmeter.tokens`` (unit ``{token}``)      -> ``tokenmeter_tokens_total``
* histogram ``gen_ai.client.token.usage`` (``{token}``)  -> ``gen_ai_client_token_usage_{bucket,sum,count}``
* attribute ``gen_ai.token.type``                        -> label ``gen_ai_token_type``

in Prometheus (scraping opentelemetry-exporter-prometheus) and in VictoriaMetrics (OTLP/HTTP,
``-opentelemetry.usePrometheusNaming``). Only the Phoenix test is slow (~15 s server start).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import (
    BackendUnavailable,
    Phoenix,
    Prometheus,
    VictoriaMetrics,
    free_port,
    screenshot,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource

COUNTER = "tokenmeter.tokens"
HISTOGRAM = "gen_ai.client.token.usage"
METER = "tokenmeter.e2e.selftest"

# what a test must query (observed, see docs/backends.md)
PROM_COUNTER = "tokenmeter_tokens_total"
PROM_HISTOGRAM = "gen_ai_client_token_usage"


def _record(mp: MeterProvider, run_id: str) -> None:
    meter = mp.get_meter(METER)
    tokens = meter.create_counter(COUNTER, unit="{token}", description="LLM tokens")
    usage = meter.create_histogram(
        HISTOGRAM, unit="{token}", description="Measures number of input and output tokens used"
    )
    tokens.add(42, {"gen_ai.token.type": "input", "run": run_id})
    tokens.add(7, {"gen_ai.token.type": "output", "run": run_id})
    usage.record(42, {"gen_ai.token.type": "input", "run": run_id})
    usage.record(100, {"gen_ai.token.type": "input", "run": run_id})
    usage.record(7, {"gen_ai.token.type": "output", "run": run_id})


def _one(result: list[dict[str, Any]]) -> bool:
    return len(result) == 1


def _assert_loopback_only(server: Prometheus | VictoriaMetrics | Phoenix) -> None:
    listening = server.listening()
    assert listening, f"{server!r} listens on nothing?"
    assert all(a.startswith("127.") or a in ("::1", "::ffff:127.0.0.1") for a, _ in listening), listening


def _check_common_series(
    backend: Prometheus | VictoriaMetrics, run_id: str, le: Callable[[int], str]
) -> dict[str, str]:
    sel = f'run="{run_id}"'
    r = backend.wait_for(f'{PROM_COUNTER}{{{sel},gen_ai_token_type="input"}}', _one, timeout=20)
    assert backend.value(r) == 42.0
    labels: dict[str, str] = r[0]["metric"]
    assert backend.value(backend.query(f'{PROM_COUNTER}{{{sel},gen_ai_token_type="output"}}')) == 7.0
    assert backend.value(backend.query(f"sum({PROM_COUNTER}{{{sel}}})")) == 49.0

    h = f'{{{sel},gen_ai_token_type="input"}}'
    backend.wait_for(f"{PROM_HISTOGRAM}_count{h}", _one, timeout=20)
    assert backend.value(backend.query(f"{PROM_HISTOGRAM}_count{h}")) == 2.0
    assert backend.value(backend.query(f"{PROM_HISTOGRAM}_sum{h}")) == 142.0
    inp = f'{sel},gen_ai_token_type="input"'
    # default explicit bucket bounds 0,5,10,25,50,75,100,250,...,10000
    assert backend.value(backend.query(f'{PROM_HISTOGRAM}_bucket{{{inp},le="{le(25)}"}}')) == 0.0
    assert backend.value(backend.query(f'{PROM_HISTOGRAM}_bucket{{{inp},le="{le(50)}"}}')) == 1.0
    assert backend.value(backend.query(f'{PROM_HISTOGRAM}_bucket{{{inp},le="{le(100)}"}}')) == 2.0
    assert backend.value(backend.query(f'{PROM_HISTOGRAM}_bucket{{{inp},le="+Inf"}}')) == 2.0
    assert backend.value(backend.query(f'{PROM_HISTOGRAM}_sum{{{sel},gen_ai_token_type="output"}}')) == 7.0

    names = set(backend.metric_names())
    assert {PROM_COUNTER, f"{PROM_HISTOGRAM}_bucket", f"{PROM_HISTOGRAM}_sum", f"{PROM_HISTOGRAM}_count"} <= names
    # the unit {token} is dropped, and nothing keeps the OTel dotted name
    assert not [n for n in names if "token_total" in n or n.startswith(("tokenmeter.", "gen_ai."))], names
    return labels


# ------------------------------------------------------------------------------------------------
# Prometheus (pull): OTel PrometheusMetricReader + prometheus_client HTTP server on 127.0.0.1
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _prom_exporter(port: int) -> Iterator[MeterProvider]:
    """OTel PrometheusMetricReader served by prometheus_client on 127.0.0.1:port."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr="127.0.0.1")
    reader: MetricReader = PrometheusMetricReader()  # registers with prometheus_client's global REGISTRY
    mp = MeterProvider(resource=Resource.create({"service.name": "tokenmeter-e2e"}), metric_readers=[reader])
    try:
        yield mp
    finally:
        mp.shutdown()  # unregisters the collector
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_prometheus_scrapes_otel_prometheus_exporter(
    prometheus_factory: Callable[..., Prometheus], run_id: str
) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    with _prom_exporter(port) as mp:
        _record(mp, run_id)
        prom = prometheus_factory(target, scrape_interval="1s")
        _assert_loopback_only(prom)

        # the exporter prints bucket bounds as floats: le="50.0"
        labels = _check_common_series(prom, run_id, le=lambda b: f"{float(b)}")
        assert labels == {
            "__name__": PROM_COUNTER,
            "gen_ai_token_type": "input",
            "run": run_id,
            "otel_scope_name": METER,  # empty otel_scope_version/schema_url labels are dropped
            "job": "tokenmeter",
            "instance": target,
        }
        # resource attributes are not on the series in the pull model, only on target_info
        info = prom.query(f'target_info{{instance="{target}"}}')
        assert prom.value(info) == 1.0 and info[0]["metric"]["service_name"] == "tokenmeter-e2e"
        assert [t["health"] for t in prom.targets()] == ["up"]


def test_session_prometheus_scrapes_reserved_port(prometheus: Prometheus, run_id: str) -> None:
    target = prometheus.scrape_targets[0]
    with _prom_exporter(int(target.rsplit(":", 1)[1])) as mp:
        mp.get_meter(METER).create_counter(COUNTER, unit="{token}").add(5, {"run": run_id})
        r = prometheus.wait_for(f'{PROM_COUNTER}{{run="{run_id}"}}', _one, timeout=20)
        assert prometheus.value(r) == 5.0 and r[0]["metric"]["instance"] == target


# ------------------------------------------------------------------------------------------------
# VictoriaMetrics: OTLP/HTTP protobuf metrics exporter
# ------------------------------------------------------------------------------------------------


def test_victoriametrics_receives_otlp_http_metrics(victoriametrics: VictoriaMetrics, run_id: str) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    _assert_loopback_only(victoriametrics)
    assert victoriametrics.otlp_metrics_url.startswith("http://127.0.0.1:")
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=victoriametrics.otlp_metrics_url), export_interval_millis=3_600_000
    )
    mp = MeterProvider(
        resource=Resource.create({"service.name": "tokenmeter-e2e", "deployment.environment": "e2e"}),
        metric_readers=[reader],
    )
    _record(mp, run_id)
    assert mp.force_flush(timeout_millis=10_000)
    mp.shutdown()

    # VictoriaMetrics prints bucket bounds like Go: le="50"
    labels = _check_common_series(victoriametrics, run_id, le=lambda b: str(b))
    # OTLP: resource attributes become labels on every series; no otel_scope_*, job or instance
    assert labels["service_name"] == "tokenmeter-e2e"
    assert labels["deployment_environment"] == "e2e"
    assert labels["telemetry_sdk_language"] == "python"
    assert "otel_scope_name" not in labels and "job" not in labels


def test_victoriametrics_without_prometheus_naming_keeps_otel_names(
    start_backend: Callable[..., VictoriaMetrics], run_id: str
) -> None:
    """Documents the alternative: without -opentelemetry.usePrometheusNaming the dotted OTel names stay."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    vm = start_backend(lambda: VictoriaMetrics(prometheus_naming=False), "victoriametrics")
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=vm.otlp_metrics_url), export_interval_millis=3_600_000
    )
    mp = MeterProvider(resource=Resource.create({"service.name": "tokenmeter-e2e"}), metric_readers=[reader])
    _record(mp, run_id)
    assert mp.force_flush(timeout_millis=10_000)
    mp.shutdown()
    r = vm.wait_for(f'{{__name__="tokenmeter.tokens",run="{run_id}","gen_ai.token.type"="input"}}', _one, timeout=20)
    assert vm.value(r) == 42.0
    r = vm.query(f'{{__name__="gen_ai.client.token.usage_sum",run="{run_id}","gen_ai.token.type"="input"}}')
    assert vm.value(r) == 142.0
    assert r[0]["metric"]["service.name"] == "tokenmeter-e2e"
    assert set(vm.metric_names()) >= {
        "tokenmeter.tokens",
        "gen_ai.client.token.usage_bucket",
        "gen_ai.client.token.usage_sum",
        "gen_ai.client.token.usage_count",
    }


# ------------------------------------------------------------------------------------------------
# Phoenix: OTLP/HTTP span exporter, read back through the REST API
# ------------------------------------------------------------------------------------------------


def test_phoenix_receives_otlp_http_spans(phoenix: Phoenix, run_id: str) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    _assert_loopback_only(phoenix)
    assert phoenix.grpc_endpoint is None  # gRPC is off unless Phoenix(grpc=True)
    project = f"tokenmeter-e2e-{run_id}"
    tp = TracerProvider(
        resource=Resource.create({"service.name": "tokenmeter-e2e", "openinference.project.name": project})
    )
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=phoenix.otlp_traces_url)))
    with tp.get_tracer("tokenmeter.e2e").start_as_current_span("chat gpt-4o-mini") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.system", "openai")
        span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        span.set_attribute("gen_ai.usage.input_tokens", 42)
        span.set_attribute("gen_ai.usage.output_tokens", 7)
        span.set_attribute("tokenmeter.run", run_id)
        ctx = span.get_span_context()
    tp.shutdown()

    spans = phoenix.wait_for_spans(project, _one, timeout=30)
    s = spans[0]
    assert s["name"] == "chat gpt-4o-mini"
    assert s["context"] == {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
    assert s["parent_id"] is None
    attrs = s["attributes"]  # flat dict, dotted keys, typed values; resource attributes are not included
    assert attrs["gen_ai.usage.input_tokens"] == 42
    assert attrs["gen_ai.usage.output_tokens"] == 7
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["tokenmeter.run"] == run_id
    # Phoenix maps gen_ai.* to OpenInference: span kind LLM and llm.token_count.*
    assert s["span_kind"] == "LLM"
    assert attrs["llm.token_count.prompt"] == 42
    assert attrs["llm.token_count.completion"] == 7
    assert attrs["llm.token_count.total"] == 49
    assert phoenix.spans(f"no-such-project-{run_id}") == []


# ------------------------------------------------------------------------------------------------
# screenshot helper (optional: needs `scripts/backends.sh install chromium`)
# ------------------------------------------------------------------------------------------------


def test_screenshot_of_prometheus_ui(prometheus_factory: Callable[..., Prometheus], tmp_path: Path) -> None:
    import shutil

    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium not installed (optional) -- run `scripts/backends.sh install chromium`")
    prom = prometheus_factory()
    try:
        png = screenshot(f"{prom.base_url}/graph", tmp_path / "prometheus.png", window_size=(1000, 600))
    except BackendUnavailable as e:
        pytest.fail(str(e))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5_000
