"""Cardinality caps, never-break-the-host fault injection, and exact counters under concurrency."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import tokenmeter
from tokenmeter import Usage
from tokenmeter.testing import Capture, capture


def test_each_dimension_is_capped_then_folded_into_other() -> None:
    with capture(cardinality_limit=3, metric_attributes=["tenant"]) as cap:
        for i in range(10):
            with tokenmeter.attributes(team=f"team-{i}", tenant=f"c{i}"):
                tokenmeter.record("openai", "gpt-4o", Usage(input=1))
        teams = {dict(p.attributes or {})["tokenmeter.team.name"] for p in cap.points("tokenmeter.tokens")}
        assert teams == {"team-0", "team-1", "team-2", "_other"}
        assert cap.counter("tokenmeter.tokens", **{"tokenmeter.team.name": "_other"}) == 7
        customers = {dict(p.attributes or {})["tenant"] for p in cap.points("tokenmeter.tokens")}
        assert customers == {"c0", "c1", "c2", "_other"}
        # spans keep the real values
        assert {dict(s.attributes or {})["tokenmeter.team.name"] for s in cap.spans} == {f"team-{i}" for i in range(10)}


def test_combinations_past_max_attribute_sets_overflow_with_totals_kept() -> None:
    # 10 teams x 10 workflows are each within the per-dimension cap, but 100 combinations are not:
    # past max_attribute_sets the rest is counted under otel.metric.overflow, and no token is lost.
    with capture(cardinality_limit=100, max_attribute_sets=20) as cap:
        for team in range(10):
            for workflow in range(10):
                with tokenmeter.attributes(team=f"t{team}", workflow=f"w{workflow}"):
                    tokenmeter.record("openai", "gpt-4o", Usage(input=3, output=1))
        points = cap.points("tokenmeter.calls")
        kept = [p for p in points if "otel.metric.overflow" not in dict(p.attributes or {})]
        overflow = [dict(p.attributes or {}) for p in points if "otel.metric.overflow" in dict(p.attributes or {})]
        assert len(kept) == 20 and sum(p.value for p in kept) == 20
        assert overflow == [
            {
                "otel.metric.overflow": True,
                "gen_ai.provider.name": "openai",
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "tokenmeter.outcome": "ok",
            }
        ]
        assert cap.counter("tokenmeter.calls", **{"otel.metric.overflow": True}) == 80
        assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": "input"}) == 300
        assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": "output"}) == 100
        # the semconv histograms and the spans keep their attributes
        assert sum(p.count for p in cap.points("gen_ai.client.operation.duration")) == 100
        assert len({dict(s.attributes or {})["gen_ai.workflow.name"] for s in cap.spans}) == 10


def test_extra_attributes_stay_off_metrics_unless_allowed(cap: Capture) -> None:
    with tokenmeter.attributes(team="t", tenant="acme", request_id="r-1"):
        tokenmeter.record("openai", "gpt-4o", Usage(input=1))
    for p in cap.points("tokenmeter.tokens"):
        assert "tenant" not in dict(p.attributes or {})
        assert "request_id" not in dict(p.attributes or {})
    assert dict(cap.span("chat gpt-4o").attributes or {})["tenant"] == "acme"


def test_a_failing_price_lookup_never_breaks_the_host(
    cap: Capture, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("price table exploded")

    monkeypatch.setattr(cap.meter.prices, "cost", broken)
    monkeypatch.setattr(tokenmeter._safe, "_seen", set())  # other tests may have logged these sites
    with caplog.at_level(logging.WARNING, logger="tokenmeter"):
        for _ in range(3):
            tokenmeter.record("openai", "gpt-4o", Usage(input=1))

        @tokenmeter.workflow("w")
        def run() -> str:
            tokenmeter.record("openai", "gpt-4o", Usage(input=1))
            return "result"

        assert run() == "result"
        first = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        for _ in range(5):
            tokenmeter.record("openai", "gpt-4o", Usage(input=1))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == first  # each fault site is logged once, then at debug level
    assert 1 <= len(warnings) <= 2 and len(set(warnings)) == len(warnings)
    assert cap.counter("tokenmeter.calls") == 9  # every call still metered, as unpriced


def test_a_failing_attribute_build_never_breaks_the_host(cap: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(key: Any) -> Any:
        raise ValueError("bad attributes")

    monkeypatch.setattr(cap.meter.instruments, "call_attributes", broken)
    tokenmeter.record("openai", "gpt-4o", Usage(input=1))
    assert tokenmeter.count_tokens("hello", "gpt-4o") >= 1


class _ExplodingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise ConnectionError("collector down")

    def shutdown(self) -> None:
        pass


def test_a_failing_exporter_never_breaks_the_host() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(_ExplodingExporter()))
    tokenmeter.configure(tracer_provider=tp)
    try:
        with tokenmeter.workflow("w"):
            tokenmeter.record("openai", "gpt-4o", Usage(input=1))
    finally:
        tokenmeter.unconfigure()


def test_a_failing_scope_span_never_breaks_the_host(cap: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer broken")

    monkeypatch.setattr(cap.meter.tracer, "start_span", broken)

    @tokenmeter.workflow("w")
    def run() -> int:
        tokenmeter.record("openai", "gpt-4o", Usage(input=2))
        return 7

    assert run() == 7


@pytest.fixture
def unsampled() -> Iterator[Capture]:
    """Spans are not sampled (metrics must still be recorded), which also keeps the load test quick."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    reader = InMemoryMetricReader()
    meter = tokenmeter.configure(
        tracer_provider=TracerProvider(sampler=ALWAYS_OFF), meter_provider=MeterProvider(metric_readers=[reader])
    )
    try:
        yield Capture(meter, InMemorySpanExporter(), reader)
    finally:
        tokenmeter.unconfigure()


def test_sixteen_threads_times_ten_thousand_records_are_counted_exactly(unsampled: Capture) -> None:
    cap = unsampled
    threads_n, per_thread = 16, 10_000
    usage = Usage(input=3, cache_read=2, output=1)
    barrier = threading.Barrier(threads_n)

    def work(i: int) -> None:
        barrier.wait()
        with tokenmeter.attributes(team=f"t{i % 4}"):
            for _ in range(per_thread):
                tokenmeter.record("openai", "gpt-4o", usage)

    with tokenmeter.workflow("load"):
        threads = [threading.Thread(target=tokenmeter.in_context(work), args=(i,)) for i in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    n = threads_n * per_thread
    assert cap.counter("tokenmeter.calls") == n
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": "input"}) == 3 * n
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": "cache_read"}) == 2 * n
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": "output"}) == n
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.team.name": "t3"}) == 6 * n // 4
    assert cap.count("gen_ai.client.operation.duration") == n
    assert cap.counter("tokenmeter.run.tokens", **{"gen_ai.workflow.name": "load"}) == 6 * n  # rollup of the run
    assert cap.spans == []
    totals = cap.meter.ledger.rollup("team")
    assert sum(t.calls for t in totals.values()) == n
