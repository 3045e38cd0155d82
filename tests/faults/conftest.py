"""Fixtures of the fault-injection suite: a loopback OTLP sink, a fake provider, a clean tokenmeter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tokenmeter
from tokenmeter.testing.fakes import FakeProvider

from .otlp_sink import OtlpSink


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    s = OtlpSink()
    yield s
    tokenmeter.shutdown(2_000)  # before the sink goes away
    s.close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as fp:
        yield fp


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    yield
    tokenmeter.unconfigure()
