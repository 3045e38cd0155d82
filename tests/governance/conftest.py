"""Fixtures of the governance tests: an injectable clock, a real redis-server, the three stores."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tokenmeter.governance._stores import BudgetStore
from tokenmeter.governance._stores.memory import MemoryStore
from tokenmeter.governance._stores.redis import RedisStore
from tokenmeter.governance._stores.sqlite import SQLiteStore
from tokenmeter.testing import Capture, capture

# Far enough in the future that nothing the tests write is ever "expired" by real time.
T0 = datetime(2030, 1, 15, 10, 0, tzinfo=UTC).timestamp()
LEASE_S = 60.0


class FakeClock:
    """A clock the test moves by hand: ``clock()`` is the time, ``clock.advance(s)`` moves it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2, socket_timeout=0.2).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A throwaway ``redis-server`` on a free 127.0.0.1 port; yields its URL; killed by pid at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (make redis, or apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    for _ in range(5):
        port = _free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # Readiness poll (each attempt is bounded by its socket timeout), not a timing assertion.
            for _ in range(100):
                if proc.poll() is not None or _ping(port):
                    break
                try:
                    proc.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is None and _ping(port):
                yield f"redis://127.0.0.1:{port}/0"
                return
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    pytest.fail("redis-server did not start on a free port")


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The server's URL with an empty database 0."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    return redis_server


STORES = ("memory", "sqlite", "redis")


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest, *, timeout_s: float = 2.0) -> BudgetStore:
    if kind == "memory":
        return MemoryStore(lease_s=LEASE_S)
    if kind == "sqlite":
        return SQLiteStore(str(tmp_path / "budgets.db"), timeout_s=timeout_s, lease_s=LEASE_S)
    url = request.getfixturevalue("redis_url")
    return RedisStore(url, timeout_s=timeout_s, lease_s=LEASE_S)


@pytest.fixture
def store(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[BudgetStore]:
    s = make_store(store_kind, tmp_path, request)
    yield s
    s.close()


def store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The ``configure(store=...)`` URL of a store kind (fresh per test)."""
    if kind == "memory":
        return "memory"
    if kind == "sqlite":
        return f"sqlite://{tmp_path / 'budgets.db'}?lease_s={LEASE_S}"
    return str(request.getfixturevalue("redis_url")) + f"?lease_s={LEASE_S}"


@pytest.fixture
def cap() -> Iterator[Capture]:
    with capture() as c:
        yield c
