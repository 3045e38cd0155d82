"""What each budget store operation costs, counted (never timed): SQLite statements and transactions per
reserve and per settle (``sqlite3.Connection.set_trace_callback``), Redis round trips on the caller's path
(socket writes of redis-py connections, and the server's ``INFO commandstats``)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tokenmeter import BudgetExceeded, Usage
from tokenmeter.governance import Budget
from tokenmeter.governance._stores import BucketState, Line
from tokenmeter.governance._stores.sqlite import SQLiteStore
from tokenmeter.testing import capture

from .conftest import LEASE_S, T0, FakeClock
from .helpers import bucket, complete, events, gate, landed, redis_sends, start

EXPIRES = T0 + 86400


class Counted:
    """The store's ``sqlite3.Connection`` with every ``execute`` / ``executemany`` it is asked for recorded."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.calls: list[str] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self.calls.append(sql)
        return self.db.execute(sql, params)

    def executemany(self, sql: str, params: Any) -> sqlite3.Cursor:
        self.calls.append(sql)
        return self.db.executemany(sql, params)

    def close(self) -> None:
        self.db.close()


@contextmanager
def traced(store: SQLiteStore) -> Iterator[list[str]]:
    """The statements the store runs inside the block, as SQLite itself reports them.

    The trace callback sees each statement when it starts (BEGIN and COMMIT included) and again for each
    trigger program it runs (with the same text), so it is checked for *distinct* statements, and the
    statements the store asked for are counted at the connection (``Counted``).
    """
    db = store._connection()
    seen: list[str] = []
    counted = Counted(db)
    db.set_trace_callback(seen.append)
    store._db = counted  # type: ignore[assignment]
    try:
        yield counted.calls
    finally:
        store._db = db
        db.set_trace_callback(None)
    distinct = list(dict.fromkeys(seen))  # (expanded: the parameters are in the text)
    assert len(distinct) == len(counted.calls), (distinct, counted.calls)  # SQLite ran nothing else
    assert not [sql for sql in distinct if sql.split(None, 1)[0].upper() in ("BEGIN", "COMMIT", "SAVEPOINT")]


def transactions(statements: list[str]) -> int:
    """Transactions the statements ran in: an explicit BEGIN..COMMIT, or each statement on its own."""
    count, inside = 0, False
    for sql in statements:
        word = sql.split(None, 1)[0].upper()
        if word == "BEGIN":
            count, inside = count + 1, True
        elif word in ("COMMIT", "ROLLBACK", "END"):
            inside = False
        elif not inside:
            count += 1
    return count


def line(key: str, tokens: int, limit: int | None = 1000, levels: tuple = ()) -> Line:
    return Line(key, 3 * tokens, tokens, None if limit is None else 3 * limit, limit, EXPIRES, True, levels)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "budgets.db"), lease_s=LEASE_S)
    store.reserve("warm", [line("other", 1)], T0, T0 + LEASE_S)  # the 10-minute cleanup ran: steady state
    yield store
    store.close()


@pytest.mark.parametrize("budgets", [1, 2, 4])
def test_sqlite_reserve_and_settle_are_one_statement_each(sqlite_store: SQLiteStore, budgets: int) -> None:
    lines = [line(f"b{i}", 100, levels=((3 * 150, 150), (3 * 400, 400))) for i in range(budgets)]
    with traced(sqlite_store) as reserve:
        admission = sqlite_store.reserve("r1", lines, T0, T0 + LEASE_S)
    assert admission.admitted
    assert admission.states == (BucketState(0, 0, 300, 100, 1, 0),) * budgets
    with traced(sqlite_store) as settle:  # this settle crosses the first warn level of every bucket
        settled = sqlite_store.settle("r1", [x.with_amounts(3 * 160, 160) for x in lines], T0 + 1)
    assert [(s.warned_before, s.warned_after) for s in settled] == [(0, 1)] * budgets
    assert [s.state for s in settled] == [BucketState(480, 160, 0, 0, 0, 1)] * budgets
    for statements in (reserve, settle):
        assert len(statements) == 1, statements  # was 8 execute (+1 executemany) and 8 execute for one budget
        assert transactions(statements) == 1


def test_sqlite_a_refused_reserve_decides_in_one_statement_and_reads_its_message_in_one_more(
    sqlite_store: SQLiteStore,
) -> None:
    assert sqlite_store.reserve("a", [line("b", 900)], T0, T0 + LEASE_S).admitted
    with traced(sqlite_store) as seen:
        refused = sqlite_store.reserve("c", [line("ok", 1), line("b", 101)], T0, T0 + LEASE_S)
    assert not refused.admitted and refused.refused == 1
    assert refused.states == (BucketState(), BucketState(0, 0, 2700, 900, 1, 0))
    assert len(seen) == 2 and seen[1].lstrip().upper().startswith("SELECT")  # the second only reads
    assert sqlite_store.state("ok", T0) == BucketState()  # nothing was reserved on the line that fitted


def test_sqlite_a_metered_call_costs_two_statements_in_two_transactions(tmp_path: Path) -> None:
    budgets = [
        Budget("team", scope={}, limit_usd=100, window="1d"),
        Budget("tokens", scope={}, limit_tokens=10**9, limit_requests=10**6, window="month"),
    ]
    with capture(budgets=budgets, store=f"sqlite://{tmp_path / 'b.db'}") as cap:
        g = gate(cap)
        g.clock = FakeClock()
        store = g.store
        assert isinstance(store, SQLiteStore)
        complete(max_tokens=10)  # warm: the cleanup pass ran
        with traced(store) as seen:
            for _ in range(5):
                complete(max_tokens=10, usage=Usage(input=5, output=7))
        assert len(seen) == 2 * 5  # one reserve + one settle per call, 3 buckets each
        assert transactions(seen) == 2 * 5
        call = start(max_tokens=10)
        call.stop(Usage(input=5, output=7))
        state = store.state(g.budgets[1].key(g.clock()), g.clock())
        assert (state.spent_tokens, state.reservations) == (6 * 12 + 10, 0)


def test_sqlite_a_released_or_expired_reservation_is_never_renewed_back(sqlite_store: SQLiteStore) -> None:
    assert sqlite_store.reserve("r", [line("b", 100)], T0, T0 + LEASE_S).admitted
    sqlite_store.settle("r", [line("b", 0)], T0)  # released
    assert sqlite_store.reserve("x", [line("b", 100)], T0, T0 + 1).admitted
    assert sqlite_store.state("b", T0 + 2) == BucketState()  # x expired at T0 + 1
    sqlite_store.renew([("r", "b"), ("x", "b")], T0 + 2 + LEASE_S)
    assert sqlite_store.state("b", T0 + 2) == BucketState()


def test_sqlite_a_file_of_the_previous_schema_keeps_its_spend(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """CREATE TABLE tokenmeter_buckets (key TEXT PRIMARY KEY, spent_usd INTEGER NOT NULL DEFAULT 0,
               spent_tokens INTEGER NOT NULL DEFAULT 0, warned INTEGER NOT NULL DEFAULT 0, expires_at REAL NOT NULL);
           CREATE TABLE tokenmeter_reservations (key TEXT NOT NULL, id TEXT NOT NULL, usd INTEGER NOT NULL,
               tokens INTEGER NOT NULL, lease_until REAL NOT NULL, PRIMARY KEY (key, id));
           INSERT INTO tokenmeter_buckets VALUES ('b', 30, 10, 1, 1e12);
           INSERT INTO tokenmeter_reservations VALUES ('b', 'r1', 6, 2, 1e12);"""
    )
    db.close()
    store = SQLiteStore(str(path), lease_s=LEASE_S)
    assert store.state("b", T0) == BucketState(30, 10, 6, 2, 1, 1)
    [settled] = store.settle("r1", [line("b", 3)], T0)
    assert settled.state == BucketState(39, 13, 0, 0, 0, 1)
    store.close()


# -- Redis: one round trip per call on the caller's path -------------------------------------------------------
REDIS_BUDGETS = {
    1: [Budget("team", scope={}, limit_usd=1000, window="1d")],
    2: [
        Budget("team", scope={}, limit_usd=1000, window="1d"),
        Budget("tokens", scope={}, limit_tokens=10**9, window="month"),
    ],
}
USE = Usage(input=5, output=7)


@contextmanager
def paused_writes(redis_url: str, ms: int = 5000) -> Iterator[Any]:
    """Redis holds every write command (scripts included) until the block ends; reads still answer."""
    import redis

    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("CLIENT", "PAUSE", ms, "WRITE")
    try:
        yield admin
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()


def raw_state(admin: Any, key: str) -> tuple[int, int]:
    """(settled tokens, live reservations) of a bucket, read with plain read commands."""
    spent = admin.hget(f"{{tokenmeter}}:b:{key}", "st")
    return int(spent or 0), int(admin.hlen(f"{{tokenmeter}}:r:{key}"))


@pytest.mark.parametrize("n_budgets", [1, 2])
def test_redis_a_metered_call_takes_one_round_trip_on_the_callers_path(redis_url: str, n_budgets: int) -> None:
    import redis

    with capture(budgets=REDIS_BUDGETS[n_budgets], store=redis_url) as cap:
        g = gate(cap)
        assert cap.meter.warm_up(60)  # the warm-up thread's own store exchange is not the caller's
        complete(max_tokens=10)  # loads the script
        landed(g)
        admin = redis.Redis.from_url(redis_url)
        admin.config_resetstat()
        caller = threading.current_thread().name
        with redis_sends() as sends:
            for _ in range(40):
                complete(max_tokens=10, usage=USE)
            on_path = sends[caller]
            landed(g)
        stats = admin.info("commandstats")
        admin.close()
        assert on_path == 40  # was 80: reserve and settle each waited for a round trip
        assert set(sends) <= {caller, "tokenmeter-settle"}
        assert stats["cmdstat_evalsha"]["calls"] == sum(sends.values()) <= 80  # settles ride along or are batched
        state = g.store.state(g.budgets[0].key(g.clock()), g.clock())  # type: ignore[union-attr]
        assert (state.spent_tokens, state.reservations) == (10 + 40 * USE.total, 0)  # every settle landed once


def test_redis_a_settle_not_yet_landed_still_counts_as_reserved(redis_url: str) -> None:
    budget = Budget("b", scope={}, limit_tokens=100, window="1d", warn_at=())  # (a warning's settle is sent at once)
    with capture(budgets=[budget], store=redis_url) as cap:
        g = gate(cap)
        key = budget.key(g.clock())
        call = start(max_tokens=60)  # reserves 60 of 100
        with paused_writes(redis_url) as admin:
            call.stop(Usage(output=70))  # queued (the settle thread's write waits in the server)
            assert raw_state(admin, key) == (0, 1)  # not landed: the estimate is still reserved ...
            assert g.leases.held() == 1  # ... and its lease is still renewed
        landed(g)
        state = g.store.state(key, g.clock())  # type: ignore[union-attr]
        assert (state.spent_tokens, state.reservations) == (70, 0)
        # The documented bound: spend <= limit + sum of under-estimates (here 10).
        with pytest.raises(BudgetExceeded):
            start(max_tokens=31)  # 70 + 31 > 100
        complete(max_tokens=30, usage=Usage(output=30))  # lands exactly on the limit
        assert bucket(cap, "b").spent_tokens == 100


@pytest.mark.parametrize("how", ["force_flush", "shutdown"])
def test_redis_force_flush_and_shutdown_send_the_queued_settles(redis_url: str, how: str) -> None:
    budget = Budget("b", scope={}, limit_tokens=10**6, window="1d")
    with capture(budgets=[budget], store=redis_url) as cap:
        g = gate(cap)
        key = budget.key(g.clock())
        calls = [start(max_tokens=10) for _ in range(3)]
        with paused_writes(redis_url, ms=300) as admin:
            for call in calls:
                call.stop(USE)
            assert raw_state(admin, key) == (0, 3)
            assert len(g.settler) + g.settler._busy > 0  # type: ignore[union-attr]
            if how == "force_flush":
                assert cap.meter.force_flush(5000)  # the writes resume after 300 ms, inside the bound
        # else: capture() ends below: tokenmeter shuts down (the writes resume inside the store timeout)
    from tokenmeter.governance._stores.redis import RedisStore

    store = RedisStore(redis_url)
    state = store.state(key, g.clock())
    store.close()
    assert (state.spent_tokens, state.reservations) == (3 * USE.total, 0)


def test_redis_a_store_down_while_settles_are_queued_journals_them(redis_url: str, tmp_path: Path) -> None:
    budget = Budget("b", scope={}, limit_tokens=10**6, window="1d")
    with capture(budgets=[budget], store=redis_url + "?timeout_s=0.2") as cap:
        g = gate(cap)
        call = start(max_tokens=10)
        with paused_writes(redis_url, ms=2000):
            call.stop(USE)  # the settle thread's write times out (0.2 s): journaled, not lost
            assert g.settler is not None and g.settler.flush(5.0)
            assert len(g.journal) == 2  # the charge + the reservation to release
        g._down_until = None  # the outage is over (skip the cooldown)
        g._replay()
        assert len(g.journal) == 0
        state = bucket(cap, "b")
        assert (state.spent_tokens, state.reservations) == (USE.total, 0)


def test_redis_a_settle_that_crosses_a_warn_level_is_sent_at_once_so_its_span_gets_the_warning(redis_url: str) -> None:
    budget = Budget("b", scope={}, limit_tokens=1000, window="1d", warn_at=(0.5,))
    with capture(budgets=[budget], store=redis_url) as cap:
        gate(cap).store.exchange([], None)  # type: ignore[union-attr]  # loads the script
        caller = threading.current_thread().name
        with redis_sends() as sends:
            complete(max_tokens=400)  # 400: queued
            complete(max_tokens=200)  # 600: crosses 50%: reserve + settle from the caller
            complete(max_tokens=100)  # 700: queued again
            on_path = sends[caller]
        assert on_path == 4, sends
        spans = [s for s in cap.spans if s.name.startswith("chat")]
        fired = [[e["tokenmeter.budget.threshold"] for e in events(s, "tokenmeter.budget.warning")] for s in spans]
        assert fired == [[], [0.5], []]
        assert bucket(cap, "b").spent_tokens == 700


def _child_call() -> None:
    complete(max_tokens=10, usage=USE)  # exits through multiprocessing, which runs tokenmeter.shutdown()


def test_redis_a_forked_child_never_sends_the_parents_queued_settles_and_sends_its_own(redis_url: str) -> None:
    import multiprocessing

    budget = Budget("b", scope={}, limit_tokens=10**6, window="1d", warn_at=())
    with capture(budgets=[budget], store=redis_url) as cap:
        g = gate(cap)
        g.store.exchange([], None)  # type: ignore[union-attr]  # loads the script
        calls = [start(max_tokens=10) for _ in range(2)]
        with paused_writes(redis_url, ms=600):
            for call in calls:  # the first is on the wire (held by the server), the second waits in the queue
                call.stop(USE)
            assert g.settler is not None and len(g.settler) >= 1
            child = multiprocessing.get_context("fork").Process(target=_child_call)
            child.start()
        child.join(timeout=60)
        assert child.exitcode == 0
        state = bucket(cap, "b")
        assert (state.spent_tokens, state.reservations) == (3 * USE.total, 0)  # each settle exactly once
