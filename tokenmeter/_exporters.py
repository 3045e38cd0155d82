"""Providers tokenmeter builds when the application has none: OTLP, console, Prometheus, or nothing.

Their exporters export only in the process that built them (:class:`_ThisProcessSpans`,
:class:`_ThisProcessMetrics`): a forked child inherits copies of the parent's providers, and what the
parent recorded must never be exported a second time from the child (it builds its own, see
``Meter._after_fork``). They are built with ``shutdown_on_exit=False``: tokenmeter's own exit hook shuts
them down within ``shutdown_timeout_ms`` instead of the SDK's unbounded one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter, SpanExportResult

from ._config import Options
from ._errors import ConfigError


def _resource(options: Options) -> Resource:
    # The SDK's detectors add a service.instance.id that is new in every process.
    return Resource.create({SERVICE_NAME: options.service_name})


def child_resource(parent: Resource) -> Resource:
    """A forked child's resource: the parent's with a new ``service.instance.id``, so the child's
    cumulative series never collide with its parent's or its siblings'. (Never ``Resource.create``
    in a fork hook: its detectors run on a thread pool whose threads the child does not have.)"""
    return parent.merge(Resource({SERVICE_INSTANCE_ID: str(uuid.uuid4())}))


def _signal_url(options: Options, signal: str) -> str | None:
    if options.endpoint is None or options.protocol == "grpc":
        return options.endpoint
    return options.endpoint.rstrip("/") + f"/v1/{signal}"


class _ThisProcessSpans(SpanExporter):
    """Exports only in the process that created it (a forked child's copy drops the parent's spans)."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner
        self._pid = os.getpid()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if os.getpid() != self._pid:
            return SpanExportResult.SUCCESS
        return self._inner.export(spans)

    def shutdown(self) -> None:
        if os.getpid() == self._pid:
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return os.getpid() != self._pid or self._inner.force_flush(timeout_millis)


class _ThisProcessMetrics(MetricExporter):
    """Exports only in the process that created it (see :class:`_ThisProcessSpans`)."""

    def __init__(self, inner: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self._inner = inner
        self._pid = os.getpid()

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        if os.getpid() != self._pid:
            return MetricExportResult.SUCCESS
        return self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return os.getpid() != self._pid or self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if os.getpid() == self._pid:
            self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def build_tracer_provider(options: Options, resource: Resource | None = None) -> TracerProvider:
    """A tracer provider exporting as ``options.exporter`` says (``none``: spans are dropped)."""
    provider = TracerProvider(resource=resource or _resource(options), shutdown_on_exit=False)
    exporter: Any = None
    if options.exporter == "otlp":
        if options.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

            exporter = GrpcSpanExporter(endpoint=options.endpoint)
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=_signal_url(options, "traces"))
    elif options.exporter == "console":
        exporter = ConsoleSpanExporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(_ThisProcessSpans(exporter)))
    return provider


def build_meter_provider(
    options: Options, resource: Resource | None = None, *, serve_prometheus: bool = True
) -> MeterProvider:
    """A meter provider with the configured exporter and, if asked, a Prometheus scrape endpoint.

    ``serve_prometheus=False`` in a forked child: the scrape endpoint belongs to the process that
    configured tokenmeter (its port cannot be bound twice).
    """
    readers: list[MetricReader] = []
    interval = options.metric_export_interval_ms
    exporter: Any = None
    if options.exporter == "otlp":
        if options.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter

            exporter = GrpcMetricExporter(endpoint=options.endpoint)
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            exporter = OTLPMetricExporter(endpoint=_signal_url(options, "metrics"))
    elif options.exporter == "console":
        exporter = ConsoleMetricExporter()
    if exporter is not None:
        readers.append(PeriodicExportingMetricReader(_ThisProcessMetrics(exporter), export_interval_millis=interval))
    if options.prometheus_address and serve_prometheus:
        readers.append(_prometheus_reader(options.prometheus_address))
    return MeterProvider(resource=resource or _resource(options), metric_readers=readers, shutdown_on_exit=False)


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
