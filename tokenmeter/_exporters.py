"""Providers tokenmeter builds when the application has none: OTLP, console, Prometheus, or nothing."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from ._config import Options
from ._errors import ConfigError


def _resource(options: Options) -> Resource:
    return Resource.create({SERVICE_NAME: options.service_name})


def _signal_url(options: Options, signal: str) -> str | None:
    if options.endpoint is None or options.protocol == "grpc":
        return options.endpoint
    return options.endpoint.rstrip("/") + f"/v1/{signal}"


def build_tracer_provider(options: Options) -> TracerProvider:
    """A tracer provider exporting as ``options.exporter`` says (``none``: spans are dropped)."""
    provider = TracerProvider(resource=_resource(options))
    if options.exporter == "otlp":
        exporter: Any
        if options.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

            exporter = GrpcSpanExporter(endpoint=options.endpoint)
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=_signal_url(options, "traces"))
        provider.add_span_processor(BatchSpanProcessor(exporter))
    elif options.exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return provider


def build_meter_provider(options: Options) -> MeterProvider:
    """A meter provider with the configured exporter and, if asked, a Prometheus scrape endpoint."""
    readers: list[MetricReader] = []
    interval = options.metric_export_interval_ms
    if options.exporter == "otlp":
        exporter: Any
        if options.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter

            exporter = GrpcMetricExporter(endpoint=options.endpoint)
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            exporter = OTLPMetricExporter(endpoint=_signal_url(options, "metrics"))
        readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=interval))
    elif options.exporter == "console":
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=interval))
    if options.prometheus_address:
        readers.append(_prometheus_reader(options.prometheus_address))
    return MeterProvider(resource=_resource(options), metric_readers=readers)


_prometheus_servers: dict[str, Any] = {}


def _prometheus_reader(address: str) -> MetricReader:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    host, _, port = address.rpartition(":")
    if address not in _prometheus_servers:
        # The HTTP server serves prometheus_client's global registry and outlives reconfiguration.
        try:
            _prometheus_servers[address] = start_http_server(int(port), addr=host or "127.0.0.1")
        except OSError as exc:
            raise ConfigError(f"prometheus_address {address!r}: cannot listen there ({exc}); pick a free port") from exc
    return PrometheusMetricReader()
