"""Fixtures that run REAL backends (Prometheus, VictoriaMetrics, Arize Phoenix) on 127.0.0.1.

Install them first: ``scripts/backends.sh install all``. If a backend is missing or cannot start,
its fixture skips the test with the reason -- except when ``CI=true``, where it fails: in CI a
missing backend is a broken setup, not a reason to pass quietly.

Every test collected under tests/e2e/ gets the ``e2e`` marker (deselect with ``-m "not e2e"``).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:  # works with every --import-mode, with or without __init__.py files
    sys.path.insert(0, str(_HERE))

from backends import (  # noqa: E402
    INSTALL_HINT,
    BackendUnavailable,
    Phoenix,
    Prometheus,
    VictoriaMetrics,
    _Server,
    free_port,
)

_T = TypeVar("_T", bound=_Server)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "e2e: end-to-end test against real backends (Prometheus, VictoriaMetrics, Phoenix); "
        "needs `scripts/backends.sh install all`",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def backend_unavailable(what: str, err: BaseException | str) -> NoReturn:
    """Skip (locally) or fail (CI=true) because a backend is missing or did not start."""
    msg = f"{what} unavailable: {err}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{msg}\n(CI=true: e2e backends are required; {INSTALL_HINT} before pytest)", pytrace=False)
    first_line = msg.splitlines()[0][:400]
    pytest.skip(first_line if INSTALL_HINT in first_line else f"{first_line} -- {INSTALL_HINT}")


def _start(factory: Callable[[], _T], what: str) -> _T:
    try:
        server = factory()
    except BackendUnavailable as e:
        backend_unavailable(what, e)
    try:
        return server.start()
    except BackendUnavailable as e:
        backend_unavailable(what, e)


@pytest.fixture(scope="session")
def start_backend() -> Iterator[Callable[[Callable[[], _T], str], _T]]:
    """``start_backend(lambda: VictoriaMetrics(prometheus_naming=False), "victoriametrics")`` ->
    a started server (skip/fail handled like the other fixtures), stopped at the end of the session."""
    started: list[_Server] = []

    def start(factory: Callable[[], _T], what: str = "backend") -> _T:
        server = _start(factory, what)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="session")
def prometheus_factory(
    start_backend: Callable[[Callable[[], Prometheus], str], Prometheus],
) -> Callable[..., Prometheus]:
    """``prometheus_factory("127.0.0.1:PORT", scrape_interval="1s")`` -> a started Prometheus scraping
    that target (str or list of host:port on loopback). Stopped at the end of the session;
    ``.set_scrape_targets([...])`` changes the targets of a running one."""

    def make(scrape_target: str | Sequence[str] | None = None, scrape_interval: str = "1s") -> Prometheus:
        return start_backend(lambda: Prometheus(scrape_target, scrape_interval), "prometheus")

    return make


@pytest.fixture(scope="session")
def prometheus(start_backend: Callable[[Callable[[], Prometheus], str], Prometheus]) -> Prometheus:
    """One Prometheus for the session that scrapes ``prometheus.scrape_targets[0]`` ("127.0.0.1:PORT",
    a port reserved for tests) every second. A test serves its exporter on that port
    (``int(prometheus.scrape_targets[0].rsplit(":", 1)[1])``), one test at a time, and sees data
    within ~1 s -- Prometheus needs ~5 s after start (or after a target change) before it scrapes
    a new target, which this fixture pays once per session instead of once per test."""
    return start_backend(lambda: Prometheus(f"127.0.0.1:{free_port()}", "1s"), "prometheus")


@pytest.fixture(scope="session")
def victoriametrics(
    start_backend: Callable[[Callable[[], VictoriaMetrics], str], VictoriaMetrics],
) -> VictoriaMetrics:
    """One VictoriaMetrics for the session (Prometheus naming: ``tokenmeter_tokens_total``).
    Isolate tests by a unique attribute value (see ``run_id``)."""
    return start_backend(lambda: VictoriaMetrics(prometheus_naming=True), "victoriametrics")


@pytest.fixture(scope="session")
def phoenix(start_backend: Callable[[Callable[[], Phoenix], str], Phoenix]) -> Phoenix:
    """One Phoenix for the session (~15 s start-up, gRPC off). Isolate tests with the resource
    attribute ``openinference.project.name=<unique>`` and query ``phoenix.spans(<unique>)``."""
    return start_backend(lambda: Phoenix(), "phoenix")


@pytest.fixture
def run_id() -> str:
    """A unique id per test, to put in an attribute / project name and query back."""
    return uuid.uuid4().hex[:12]
