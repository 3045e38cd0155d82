"""Helpers for testing code that uses tokenmeter: capture spans and metrics in memory.

with tokenmeter.testing.capture() as cap:
    my_agent()
assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": "input"}) == 120
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .. import _orphans
from .._meter import Meter, configure, unconfigure


class Capture:
    """Spans and metric points recorded while a :func:`capture` block is active."""

    def __init__(self, meter: Meter, spans: InMemorySpanExporter, reader: InMemoryMetricReader) -> None:
        self.meter = meter
        self.exporter = spans
        self.reader = reader

    @property
    def spans(self) -> list[ReadableSpan]:
        """Finished spans, oldest first."""
        _orphans.drain()
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name`` (AssertionError if none or several)."""
        found = [s for s in self.spans if s.name == name]
        assert len(found) == 1, f"expected one span {name!r}, found {len(found)}: {[s.name for s in self.spans]}"
        return found[0]

    def points(self, metric: str) -> list[Any]:
        """All data points of ``metric`` (counters: ``.value``; histograms: ``.sum``, ``.count``)."""
        _orphans.drain()  # streams dropped without being closed are metered before reading
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        out.extend(m.data.data_points)
        return out

    def counter(self, metric: str, **attributes: Any) -> float:
        """Sum of a counter's points whose attributes include ``attributes`` (or of a histogram's sums)."""
        total: float = 0
        for p in self.points(metric):
            attrs = dict(p.attributes or {})
            if all(attrs.get(k) == v for k, v in attributes.items()):
                total += p.value if hasattr(p, "value") else p.sum
        return total

    def count(self, metric: str, **attributes: Any) -> int:
        """Number of recorded values of a histogram whose attributes include ``attributes``."""
        points = self.points(metric)
        return sum(p.count for p in points if all(dict(p.attributes or {}).get(k) == v for k, v in attributes.items()))

    def clear(self) -> None:
        """Forget the spans captured so far (metrics are cumulative)."""
        self.exporter.clear()


@contextmanager
def capture(**options: Any) -> Iterator[Capture]:
    """Configure tokenmeter with in-memory exporters for the block; restore the no-op state after.

    Keyword options are passed to ``configure()`` (e.g. ``prices=...``, ``tiers=...``). The durable
    ledger is off unless ``ledger=...`` is given (``cap.meter.report()`` reads this process's rows).
    """
    options.setdefault("ledger", None)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    meter = configure(tracer_provider=tracer_provider, meter_provider=meter_provider, **options)
    try:
        yield Capture(meter, exporter, reader)
    finally:
        unconfigure()
        tracer_provider.shutdown()
        meter_provider.shutdown()
