"""Stores that are down, locked or silent: bounded timeouts, fail-open or fail-closed, Redis round trips."""

from __future__ import annotations

import logging
import socket
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import tokenmeter
from tokenmeter import BudgetExceeded, Usage
from tokenmeter.governance import Budget
from tokenmeter.governance._storelink import OUTAGE_COOLDOWN_S
from tokenmeter.governance._stores import (
    Admission,
    BucketState,
    BudgetStore,
    Line,
    Settled,
    StoreUnavailable,
)
from tokenmeter.governance._stores.memory import MemoryStore
from tokenmeter.governance._stores.redis import RedisStore
from tokenmeter.governance._stores.sqlite import SQLiteStore
from tokenmeter.testing import capture

from .conftest import LEASE_S, T0, FakeClock
from .helpers import complete, decisions, gate, start

LINE = Line("b:1d:0", 0, 10, None, 100, T0 + 86400)
BUDGETS = [Budget("b", scope={}, limit_tokens=1000, window="1d")]


@pytest.fixture
def dead_redis_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0?timeout_s=0.2"  # nothing listens there any more


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that completes TCP handshakes (the kernel's backlog) but never answers a byte."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def test_an_unreachable_redis_raises_store_unavailable(dead_redis_url: str) -> None:
    from tokenmeter.governance import open_store

    store = open_store(dead_redis_url)
    with pytest.raises(StoreUnavailable):
        store.reserve("r", [LINE], T0, T0 + LEASE_S)


def test_a_redis_that_never_answers_times_out_instead_of_hanging(silent_server: int) -> None:
    store = RedisStore(f"redis://127.0.0.1:{silent_server}/0", timeout_s=0.2)
    with pytest.raises(StoreUnavailable):
        store.reserve("r", [LINE], T0, T0 + LEASE_S)
    with pytest.raises(StoreUnavailable):
        store.settle("r", [LINE], T0)


def test_a_locked_sqlite_file_times_out_instead_of_hanging(tmp_path: Path) -> None:
    path = str(tmp_path / "locked.db")
    store = SQLiteStore(path, timeout_s=0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            store.reserve("r", [LINE], T0, T0 + LEASE_S)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.reserve("r", [LINE], T0, T0 + LEASE_S).admitted


def test_fail_open_meters_allows_and_warns_once(
    dead_redis_url: str, caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    caplog.set_level(logging.WARNING, "tokenmeter")
    with capture(budgets=BUDGETS, store=dead_redis_url, fail_open=True) as cap:
        gate(cap).clock = clock
        for _ in range(3):
            complete(max_tokens=50)
        clock.advance(OUTAGE_COOLDOWN_S)
        complete(max_tokens=50)  # tried again after the cooldown: still down, still no new warning
    outages = [r for r in caplog.records if "budget store is unavailable" in r.getMessage()]
    assert len(outages) == 1 and "fail_open" in outages[0].getMessage()
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "ok"}) == 4
    assert cap.counter("tokenmeter.tokens") == 200
    assert decisions(cap, "warn") == 4


def test_fail_closed_blocks_with_a_distinct_error(dead_redis_url: str) -> None:
    with capture(budgets=BUDGETS, store=dead_redis_url, fail_open=False) as cap:
        with pytest.raises(tokenmeter.BudgetStoreUnavailable, match="unavailable") as info:
            start()
        assert not isinstance(info.value, BudgetExceeded)  # an outage is not a breach
        assert isinstance(info.value, tokenmeter.PolicyViolation) and info.value.budget == "b"
        with tokenmeter.attributes(team="x"), pytest.raises(tokenmeter.PolicyViolation):
            start()
        assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 2
        assert decisions(cap, "block") == 2


class FlakyStore(BudgetStore):
    """A memory store that can be switched off, counting the calls that reach it."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.down = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("switched off")

    def reserve(self, rid: str, lines: Sequence[Line], now: float, lease_until: float) -> Admission:
        self._check()
        return self.inner.reserve(rid, lines, now, lease_until)

    def settle(self, rid: str | None, lines: Sequence[Line], now: float) -> list[Settled]:
        self._check()
        return self.inner.settle(rid, lines, now)

    def renew(self, held: Sequence[tuple[str, str]], lease_until: float) -> None:
        self._check()
        self.inner.renew(held, lease_until)

    def state(self, key: str, now: float) -> BucketState:
        self._check()
        return self.inner.state(key, now)


def test_an_outage_is_not_retried_on_every_call_and_recovery_is_noticed(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "tokenmeter")
    with capture(budgets=BUDGETS) as cap:
        g = gate(cap)
        g.clock = clock
        flaky = FlakyStore()
        g.store = flaky
        flaky.down = True
        for _ in range(5):
            complete(max_tokens=10)
        assert flaky.calls == 1  # the first failure opens the cooldown; the rest skip the store
        flaky.down = False
        clock.advance(OUTAGE_COOLDOWN_S)
        complete(max_tokens=10)
        assert flaky.calls == 4  # reserve, the journal's replay, settle
        state: Any = flaky.inner.state(BUDGETS[0].key(clock()), clock())
        assert state.spent_tokens == 60  # the outage's spend was journaled and charged on recovery
    assert [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()]


def test_redis_does_one_round_trip_per_reserve_and_per_settle(redis_url: str) -> None:
    import redis

    store = RedisStore(redis_url)
    lines = [LINE, Line("other:1d:0", 5, 10, 1000, 100, T0 + 86400, True, ((500, 50),))]
    store.reserve("warm", lines, T0, T0 + LEASE_S)  # loads the scripts (EVALSHA -> NOSCRIPT -> LOAD once)
    store.settle("warm", lines, T0)
    sent: list[Any] = []
    original = store._client.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(args[0])
        return original(*args, **kwargs)

    store._client.execute_command = counting  # type: ignore[method-assign]
    admin = redis.Redis.from_url(redis_url)
    admin.config_resetstat()
    for i in range(10):
        assert store.reserve(f"r{i}", lines, T0, T0 + LEASE_S).admitted
        store.settle(f"r{i}", [line.with_amounts(1, 1) for line in lines], T0)
    stats = admin.info("commandstats")
    admin.close()
    assert sent == ["EVALSHA"] * 20
    assert stats["cmdstat_evalsha"]["calls"] == 20
    assert not {"cmdstat_eval", "cmdstat_script|load", "cmdstat_multi", "cmdstat_exec"} & set(stats)


def test_configure_with_a_store_url_opens_it(tmp_path: Path, clock: FakeClock) -> None:
    url = f"sqlite://{tmp_path / 'b.db'}?timeout_s=0.5&lease_s=30"
    with capture(budgets=BUDGETS, store=url) as cap:
        g = gate(cap)
        g.clock = clock
        assert isinstance(g.store, SQLiteStore) and g.store.lease_s == 30 and g.lease_s == 30
        complete(max_tokens=10)
    # Shut down with the meter; the file keeps the spend for other processes (and the CLI).
    assert SQLiteStore(str(tmp_path / "b.db")).state(BUDGETS[0].key(clock()), clock()).spent_tokens == 10


def test_a_usage_class_sum_is_what_a_budget_is_charged() -> None:
    with capture(budgets=BUDGETS) as cap:
        start(max_tokens=10).stop(Usage(input=3, cache_read=4, cache_write=5, output=6, reasoning=7))
        g = gate(cap)
        assert g.store is not None
        assert g.store.state(BUDGETS[0].key(g.clock()), g.clock()).spent_tokens == 25
