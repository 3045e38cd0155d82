"""Regressions found in review: reconfiguration, reused scopes, generators, contexts, faults, provider cost."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import tokenmeter
from tokenmeter import PriceBook, Usage
from tokenmeter._call_usage import _provider_cost
from tokenmeter.testing import Capture


def _sum(reader: InMemoryMetricReader, name: str) -> float:
    data = reader.get_metrics_data()
    assert data is not None
    return sum(
        p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    )


def test_reconfiguring_onto_the_same_meter_provider_keeps_counting() -> None:
    reader = InMemoryMetricReader()
    mp, tp = MeterProvider(metric_readers=[reader]), TracerProvider()
    try:
        tokenmeter.configure(meter_provider=mp, tracer_provider=tp)
        tokenmeter.record("openai", "gpt-4o", Usage(input=1))
        tokenmeter.configure(meter_provider=mp, tracer_provider=tp, cardinality_limit=5)
        for _ in range(5):
            tokenmeter.record("openai", "gpt-4o", Usage(input=1))
        assert _sum(reader, "tokenmeter.calls") == 6
        assert _sum(reader, "tokenmeter.tokens") == 6
    finally:
        tokenmeter.unconfigure()


async def test_one_scope_spec_entered_by_concurrent_tasks(cap: Capture) -> None:
    spec = tokenmeter.workflow("shared")

    async def task(n: int) -> str | None:
        async with spec:
            await asyncio.sleep(0.01 * n)
            tokenmeter.record("openai", "gpt-4o", Usage(input=n))
            return tokenmeter.current_scope().workflow

    assert await asyncio.gather(task(2), task(1)) == ["shared", "shared"]
    spans = [s for s in cap.spans if s.name == "invoke_workflow shared"]
    assert sorted(dict(s.attributes or {})["tokenmeter.rollup.tokens.total"] for s in spans) == [1, 2]
    assert tokenmeter.current_scope().workflow is None


def test_leaving_a_scope_in_another_context_never_raises(cap: Capture) -> None:
    @tokenmeter.workflow("w")
    def stream() -> Iterator[int]:
        with tokenmeter.step("s"):
            yield 1
            yield 2

    gen = stream()
    out = [contextvars.copy_context().run(next, gen) for _ in range(2)]
    with pytest.raises(StopIteration):
        contextvars.copy_context().run(next, gen)
    assert out == [1, 2]
    assert {s.name for s in cap.spans} == {"step s", "invoke_workflow w"}


def test_decorated_generators_receive_thrown_exceptions() -> None:
    @tokenmeter.step("g")
    def gen() -> Iterator[str]:
        try:
            yield "first"
        except ValueError:
            yield "handled"

    g = gen()
    assert next(g) == "first"
    assert g.throw(ValueError("x")) == "handled"


async def test_decorated_async_generators_receive_thrown_exceptions() -> None:
    @tokenmeter.step("g")
    async def gen() -> Any:
        try:
            yield "first"
        except ValueError:
            yield "handled"

    g = gen()
    assert await g.__anext__() == "first"
    assert await g.athrow(ValueError("x")) == "handled"


def test_a_consumer_breaking_out_of_a_streaming_generator_is_not_a_failure(cap: Capture) -> None:
    def stream() -> Iterator[int]:
        with tokenmeter.workflow("w"):
            for i in range(5):
                tokenmeter.record("openai", "gpt-4o", Usage(input=10))
                yield i

    for i in stream():
        if i == 1:
            break
    import gc

    gc.collect()
    wf = cap.span("invoke_workflow w")
    assert wf.status.status_code.name != "ERROR"
    assert cap.counter("tokenmeter.tokens.wasted") == 0


def test_in_context_runs_concurrently_in_several_threads(cap: Capture) -> None:
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            tokenmeter.record("openai", "gpt-4o", Usage(input=1))
        except BaseException as exc:
            errors.append(exc)

    with tokenmeter.attributes(team="t"):
        fn = tokenmeter.in_context(work)
        threads = [threading.Thread(target=fn) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.team.name": "t"}) == 2


def test_a_pricing_fault_keeps_the_span_and_the_counters(cap: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("price table exploded")

    monkeypatch.setattr(cap.meter.prices, "cost", broken)
    tokenmeter.record("openai", "gpt-4o", Usage(input=7))
    span = cap.span("chat gpt-4o")
    assert dict(span.attributes or {})["tokenmeter.cost.source"] == "unpriced"
    assert cap.counter("tokenmeter.calls") == 1
    assert cap.counter("tokenmeter.tokens.unpriced") == 7


def test_a_provider_reported_cost_is_split_over_classes_and_adds_up_exactly() -> None:
    usage = Usage(input=1000, cache_read=500, output=200)
    table = PriceBook().cost("openai", "gpt-4o", usage)
    cost = _provider_cost(Decimal("0.5"), table, usage)
    assert cost.source == "provider" and cost.usd == Decimal("0.5")
    assert cost.by_class is not None and sum(cost.by_class) == Decimal("0.5")
    unpriced = _provider_cost(Decimal("0.3"), PriceBook().cost("openai", "private-x", usage), usage)
    assert unpriced.by_class is not None and sum(unpriced.by_class) == Decimal("0.3")
