"""Fixtures of the integration suite: one loopback FakeProvider, in-memory capture, drivers, instrumentation.

Tests here drive the REAL provider SDKs over real HTTP to ``FakeProvider`` on 127.0.0.1; every test
collected under tests/integration/ gets the ``integration`` marker. A test that takes a ``driver``
argument runs once per driver discovered in ``tests/integration/drivers/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tokenmeter

from .drivers import DRIVERS, UNAVAILABLE, Driver

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "driver" not in metafunc.fixturenames:
        return
    params = [pytest.param(DRIVERS[name], id=name) for name in DRIVERS]
    params += [pytest.param(None, id=name, marks=pytest.mark.skip(reason=why)) for name, why in UNAVAILABLE.items()]
    if not params:
        params = [pytest.param(None, id="no-driver", marks=pytest.mark.skip(reason="no driver discovered"))]
    metafunc.parametrize("driver", params)


@pytest.fixture
def instrumented(driver: Driver) -> Iterator[Driver]:
    """The driver's integration patched for the test, restored after."""
    tokenmeter.instrument(driver.name)
    try:
        yield driver
    finally:
        tokenmeter.uninstrument(driver.name)
