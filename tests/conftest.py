"""Suite-wide: tests never write the user's real FinOps ledger (tests that test the ledger give a path),
and the loopback FakeProvider / in-memory capture fixtures the suites share (a suite may override them)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

try:  # property tests assert values, not speed: a loaded CI machine must not fail them on hypothesis's 200 ms deadline
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("tokenmeter", deadline=None)
    _hyp_settings.load_profile("tokenmeter")
except ImportError:  # side venvs without hypothesis
    pass

from tokenmeter.testing import Capture, capture
from tokenmeter.testing.fakes import FakeProvider

os.environ.setdefault("TOKENMETER_LEDGER", "none")


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeProvider]:
    """One fake provider for the whole session (cleared before each test by ``fp``)."""
    with FakeProvider() as server:
        yield server


@pytest.fixture
def fp(fake_server: FakeProvider) -> Iterator[FakeProvider]:
    """The fake provider with an empty request log and reply queue."""
    fake_server.clear()
    yield fake_server
    fake_server.clear()


@pytest.fixture
def cap() -> Iterator[Capture]:
    """tokenmeter configured with in-memory span and metric exporters."""
    with capture() as c:
        yield c
