"""Fixtures of the served-price suite: a loopback FakeProvider serving recorded bodies, in-memory capture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tokenmeter.testing import Capture, capture
from tokenmeter.testing.fakes import FakeProvider


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


@pytest.fixture
def fp(fake_server: FakeProvider) -> Iterator[FakeProvider]:
    fake_server.clear()
    yield fake_server
    fake_server.clear()


@pytest.fixture
def cap() -> Iterator[Capture]:
    with capture() as c:
        yield c
