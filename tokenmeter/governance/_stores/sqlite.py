"""An SQLite file shared by several processes on one host.

Every operation is one ``BEGIN IMMEDIATE`` transaction, so concurrent writers queue on SQLite's lock
instead of deadlocking on an upgrade; WAL lets readers (the CLI, the gauge) run beside them. A lock
held longer than the busy timeout raises :class:`StoreUnavailable` -- the host never waits longer.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ... import _lifecycle
from ._base import Admission, BucketState, BudgetStore, Line, Settled, StoreUnavailable, fits, thresholds_reached

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS tokenmeter_buckets (
        key TEXT PRIMARY KEY,
        spent_usd INTEGER NOT NULL DEFAULT 0,
        spent_tokens INTEGER NOT NULL DEFAULT 0,
        warned INTEGER NOT NULL DEFAULT 0,
        expires_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tokenmeter_reservations (
        key TEXT NOT NULL,
        id TEXT NOT NULL,
        usd INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        lease_until REAL NOT NULL,
        PRIMARY KEY (key, id))""",
)
_CLEANUP_EVERY_S = 600.0


class SQLiteStore(BudgetStore):
    """Buckets in an SQLite database file (WAL, busy timeout, one transaction per operation)."""

    def __init__(self, path: str, *, timeout_s: float = 2.0, lease_s: float = 60.0) -> None:
        self.path = path
        self.lease_s = lease_s
        self._timeout_s = timeout_s
        self._lock = _lifecycle.lock()
        self._db: sqlite3.Connection | None = None
        self._pid = 0
        self._next_cleanup = 0.0
        with self._lock:
            self._connection()

    def _connection(self) -> sqlite3.Connection:
        # A connection inherited through fork() must not be used by the child: reopen per process.
        if self._db is None or self._pid != os.getpid():
            db = sqlite3.connect(self.path, timeout=self._timeout_s, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout = {int(self._timeout_s * 1000)}")
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._db, self._pid = db, os.getpid()
        return self._db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                db = self._connection()
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc
                raise

    @staticmethod
    def _state(db: sqlite3.Connection, key: str) -> BucketState:
        row = db.execute(
            "SELECT spent_usd, spent_tokens, warned FROM tokenmeter_buckets WHERE key = ?", (key,)
        ).fetchone()
        usd, tokens, count = db.execute(
            "SELECT COALESCE(SUM(usd), 0), COALESCE(SUM(tokens), 0), COUNT(*) FROM tokenmeter_reservations"
            " WHERE key = ?",
            (key,),
        ).fetchone()
        spent_usd, spent_tokens, warned = row if row is not None else (0, 0, 0)
        return BucketState(spent_usd, spent_tokens, usd, tokens, count, warned)

    def _touch(self, db: sqlite3.Connection, line: Line, now: float) -> None:
        db.execute("DELETE FROM tokenmeter_reservations WHERE key = ? AND lease_until <= ?", (line.key, now))
        db.execute(
            "INSERT INTO tokenmeter_buckets (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
            " SET expires_at = MAX(expires_at, excluded.expires_at)",
            (line.key, line.expires_at),
        )

    def _cleanup(self, db: sqlite3.Connection, now: float) -> None:
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + _CLEANUP_EVERY_S
        db.execute("DELETE FROM tokenmeter_reservations WHERE lease_until <= ?", (now,))
        db.execute("DELETE FROM tokenmeter_buckets WHERE expires_at <= ?", (now,))

    def reserve(self, rid: str, lines: Sequence[Line], now: float, lease_until: float) -> Admission:
        with self._transaction() as db:
            self._cleanup(db, now)
            for line in lines:
                self._touch(db, line, now)
            states = tuple(self._state(db, line.key) for line in lines)
            for i, (line, state) in enumerate(zip(lines, states, strict=True)):
                if line.enforce and not fits(state, line):
                    return Admission(False, i, states)
            db.executemany(
                "INSERT OR REPLACE INTO tokenmeter_reservations (key, id, usd, tokens, lease_until)"
                " VALUES (?, ?, ?, ?, ?)",
                [(line.key, rid, line.usd, line.tokens, lease_until) for line in lines],
            )
            return Admission(True, None, tuple(self._state(db, line.key) for line in lines))

    def settle(self, rid: str | None, lines: Sequence[Line], now: float) -> list[Settled]:
        out: list[Settled] = []
        with self._transaction() as db:
            for line in lines:
                self._touch(db, line, now)
                if rid is not None:
                    db.execute("DELETE FROM tokenmeter_reservations WHERE key = ? AND id = ?", (line.key, rid))
                db.execute(
                    "UPDATE tokenmeter_buckets SET spent_usd = spent_usd + ?, spent_tokens = spent_tokens + ?"
                    " WHERE key = ?",
                    (line.usd, line.tokens, line.key),
                )
                state = self._state(db, line.key)
                reached = thresholds_reached(state.spent_usd, state.spent_tokens, line.levels)
                if reached > state.warned:
                    db.execute("UPDATE tokenmeter_buckets SET warned = ? WHERE key = ?", (reached, line.key))
                    out.append(Settled(_with_warned(state, reached), state.warned, reached))
                else:
                    out.append(Settled(state, state.warned, state.warned))
        return out

    def renew(self, held: Sequence[tuple[str, str]], lease_until: float) -> None:
        with self._transaction() as db:
            db.executemany(
                "UPDATE tokenmeter_reservations SET lease_until = MAX(lease_until, ?) WHERE key = ? AND id = ?",
                [(lease_until, key, rid) for rid, key in held],
            )

    def state(self, key: str, now: float) -> BucketState:
        with self._transaction() as db:
            db.execute("DELETE FROM tokenmeter_reservations WHERE key = ? AND lease_until <= ?", (key, now))
            return self._state(db, key)

    def close(self) -> None:
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None


def _with_warned(state: BucketState, warned: int) -> BucketState:
    return BucketState(
        state.spent_usd, state.spent_tokens, state.reserved_usd, state.reserved_tokens, state.reservations, warned
    )
