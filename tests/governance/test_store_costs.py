"""What each budget store operation costs, counted (never timed): SQLite statements and transactions per
reserve and per settle (``sqlite3.Connection.set_trace_callback``), Redis round trips on the caller's path
(socket writes of redis-py connections, and the server's ``INFO commandstats``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tokenmeter import Usage
from tokenmeter.governance import Budget
from tokenmeter.governance._stores import BucketState, Line
from tokenmeter.governance._stores.sqlite import SQLiteStore
from tokenmeter.testing import capture

from .conftest import LEASE_S, T0, FakeClock
from .helpers import complete, gate, start

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
