"""An SQLite file shared by several processes on one host: one statement per reserve and per settle.

One table holds everything. Per bucket (``key``) there is a *bucket row* (``id = ''``: the settled
spend, the warn levels fired, and in ``until`` when the row may be dropped) and one row per
reservation (``id`` = the reservation id, ``until`` = its lease end). A reservation counts while
``until > now``. A settle releases a reservation by setting its ``until`` to 0, and a schema trigger
deletes it within that same statement; reservations whose lease ran out (their process died) go at
the next ``state`` read of their bucket or at the cleanup (``_CLEANUP_EVERY_S``), with the buckets of
windows long over.

* reserve -- ONE ``INSERT ... SELECT ... RETURNING`` statement: it inserts the reservation rows of
  every line only if every enforced line fits (the admission rule of ``_base``), and returns each
  bucket's state afterwards. A refused reserve inserts nothing and reads the states for its message
  with one more (read-only) statement.
* settle -- ONE ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` statement: it releases the
  reservation rows (first) and adds the actual amounts to the bucket rows, raising ``warned`` to the
  levels now reached (computed by the SQL function ``tokenmeter_reached``, registered per connection),
  and returns the state with the level count before and after.

A statement that writes is its own transaction in autocommit mode, and SQLite takes the write lock
before the statement reads anything (as ``BEGIN IMMEDIATE`` does), so each decision is atomic across
processes; concurrent writers queue on the lock (WAL lets readers -- the CLI, the gauge -- run beside
them). A lock held longer than the busy timeout raises :class:`StoreUnavailable`: the host never
waits longer. Statements are prepared once per shape and kept in the connection's statement cache.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ... import _lifecycle
from ._base import (
    Admission,
    BucketState,
    BudgetStore,
    Level,
    Line,
    Settled,
    StoreUnavailable,
    fits,
    thresholds_reached,
)

TABLE = "tokenmeter_budget"
_SCHEMA = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    key TEXT NOT NULL,
    id TEXT NOT NULL,
    usd INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    until REAL NOT NULL,
    warned INTEGER NOT NULL DEFAULT 0,
    prev_warned INTEGER NOT NULL DEFAULT 0,
    levels TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (key, id)) WITHOUT ROWID"""
# A released reservation (``until`` set to 0 by a settle) is deleted by the settle statement itself.
_TRIGGERS = tuple(
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_released_{name} AFTER {event} ON {TABLE}
    WHEN new.id != '' AND new.until = 0 BEGIN DELETE FROM {TABLE} WHERE key = new.key AND id = new.id; END"""
    for name, event in (("insert", "INSERT"), ("update", "UPDATE OF until"))
)
# The schema before this one (two tables): copied over once when the new table is created.
_OLD = ("tokenmeter_buckets", "tokenmeter_reservations")
_MIGRATE = (
    f"INSERT OR IGNORE INTO {TABLE} (key, id, usd, tokens, until, warned)"
    " SELECT key, '', spent_usd, spent_tokens, expires_at, warned FROM tokenmeter_buckets",
    f"INSERT OR IGNORE INTO {TABLE} (key, id, usd, tokens, until)"
    " SELECT key, id, usd, tokens, lease_until FROM tokenmeter_reservations",
)
_CLEANUP_EVERY_S = 600.0
_CACHED_STATEMENTS = 256  # one prepared statement per (operation, number of lines)

# Correlated subqueries of the RETURNING clauses (the row at hand is ``{TABLE}``): the live reservations
# of its bucket as of parameter ``{now}`` -- "usd tokens count" -- and the bucket row -- "usd tokens warned".
# (Two narrow subqueries: one aggregate with conditional sums over the bucket's rows costs twice as much.)
_LIVE_OF = (
    "(SELECT printf('%d %d %d', TOTAL(e.usd), TOTAL(e.tokens), COUNT(*))"
    f" FROM {TABLE} AS e WHERE e.key = {TABLE}.key AND e.id > '' AND e.until > {{now}})"
)
_BUCKET_OF = (
    f"(SELECT printf('%d %d %d', s.usd, s.tokens, s.warned) FROM {TABLE} AS s WHERE s.key = {TABLE}.key AND s.id = '')"
)


@lru_cache(maxsize=64)
def _reserve_sql(n: int) -> str:
    """Parameters: per line (key, usd, tokens, limit_usd, limit_tokens, enforce), then now, rid, lease_until."""
    now, rid, lease = f"?{6 * n + 1}", f"?{6 * n + 2}", f"?{6 * n + 3}"
    values = ", ".join(
        f"(?{6 * i + 1}, ?{6 * i + 2}, ?{6 * i + 3}, ?{6 * i + 4}, ?{6 * i + 5}, ?{6 * i + 6})" for i in range(n)
    )
    committed = f"FROM {TABLE} AS e WHERE e.key = l.key AND (e.id = '' OR e.until > {now})"
    return (
        f"WITH l(key, usd, tokens, lu, lt, enf) AS (VALUES {values}),"
        f" c AS (SELECT l.*, (SELECT COALESCE(SUM(e.usd), 0) {committed}) AS cu,"
        f" (SELECT COALESCE(SUM(e.tokens), 0) {committed}) AS ct FROM l)"
        f" INSERT INTO {TABLE} (key, id, usd, tokens, until) SELECT key, {rid}, usd, tokens, {lease} FROM c"
        " WHERE NOT EXISTS (SELECT 1 FROM c WHERE enf AND ("
        "(lu IS NOT NULL AND (cu >= lu OR cu + usd > lu)) OR (lt IS NOT NULL AND (ct >= lt OR ct + tokens > lt))))"
        " ON CONFLICT (key, id) DO UPDATE SET usd = excluded.usd, tokens = excluded.tokens, until = excluded.until"
        f" RETURNING key, {_BUCKET_OF}, {_LIVE_OF.format(now=now)}"
    )


@lru_cache(maxsize=64)
def _settle_sql(releases: int, n: int) -> str:
    """Parameters: per release (key, rid); per line (key, usd, tokens, until, levels); then now.

    Releases come first in VALUES: the state each bucket row returns is read after them."""
    rows = [f"(?{2 * i + 1}, ?{2 * i + 2}, 0, 0, 0, '', 0)" for i in range(releases)]
    for i in range(n):
        p = 2 * releases + 5 * i
        u, t, lv = f"?{p + 2}", f"?{p + 3}", f"?{p + 5}"
        rows.append(f"(?{p + 1}, '', {u}, {t}, ?{p + 4}, {lv}, tokenmeter_reached({u}, {t}, {lv}))")
    now = f"?{2 * releases + 5 * n + 1}"
    return (
        f"INSERT INTO {TABLE} AS b (key, id, usd, tokens, until, levels, warned) VALUES {', '.join(rows)}"
        " ON CONFLICT (key, id) DO UPDATE SET"
        " usd = iif(b.id = '', b.usd + excluded.usd, 0),"
        " tokens = iif(b.id = '', b.tokens + excluded.tokens, 0),"
        " until = iif(b.id = '', MAX(b.until, excluded.until), 0),"
        " prev_warned = b.warned,"
        " warned = iif(b.id = '', MAX(b.warned,"
        " tokenmeter_reached(b.usd + excluded.usd, b.tokens + excluded.tokens, excluded.levels)), 0),"
        " levels = excluded.levels"
        f" RETURNING key, id, prev_warned, warned, usd, tokens, iif(id = '', {_LIVE_OF.format(now=now)}, NULL)"
    )


@lru_cache(maxsize=64)
def _states_sql(n: int) -> str:
    """Parameters: the keys, then now. Columns: key, the BucketState fields, expired reservations."""
    marks = ", ".join(f"?{i + 1}" for i in range(n))
    now = f"?{n + 1}"
    live = f"(id != '' AND until > {now})"
    return (
        "SELECT key, SUM(iif(id = '', usd, 0)), SUM(iif(id = '', tokens, 0)),"
        f" SUM(iif({live}, usd, 0)), SUM(iif({live}, tokens, 0)), SUM({live}), SUM(iif(id = '', warned, 0)),"
        f" SUM(id != '' AND until <= {now})"
        f" FROM {TABLE} WHERE key IN ({marks}) GROUP BY key"
    )


@lru_cache(maxsize=1024)
def _parse_levels(text: str) -> tuple[Level, ...]:
    out: list[Level] = []
    for pair in text.split(";") if text else ():
        usd, tokens = (int(v) for v in pair.split(","))
        out.append((None if usd < 0 else usd, None if tokens < 0 else tokens))
    return tuple(out)


def _reached(usd: float | int, tokens: float | int, levels: str) -> int:
    return thresholds_reached(int(usd), int(tokens), _parse_levels(levels)) if levels else 0


def _levels_text(levels: Sequence[Level]) -> str:
    return ";".join(f"{-1 if u is None else u},{-1 if t is None else t}" for u, t in levels)


def _state(bucket: str | None, live: str) -> BucketState:
    """A bucket's state from the two RETURNING subqueries (no bucket row yet: nothing settled)."""
    usd, tokens, warned = (int(v) for v in bucket.split()) if bucket else (0, 0, 0)
    r_usd, r_tokens, count = (int(v) for v in live.split())
    return BucketState(usd, tokens, r_usd, r_tokens, count, warned)


class SQLiteStore(BudgetStore):
    """Buckets in an SQLite database file (WAL, busy timeout, one statement per reserve and per settle)."""

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
            db = sqlite3.connect(
                self.path,
                timeout=self._timeout_s,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=_CACHED_STATEMENTS,
            )
            db.execute(f"PRAGMA busy_timeout = {int(self._timeout_s * 1000)}")
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.create_function("tokenmeter_reached", 3, _reached, deterministic=True)
            db.execute("BEGIN IMMEDIATE")
            try:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                db.execute(_SCHEMA)
                for trigger in _TRIGGERS:
                    db.execute(trigger)
                if TABLE not in tables and set(_OLD) <= tables:
                    for statement in _MIGRATE:
                        db.execute(statement)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._db, self._pid = db, os.getpid()
        return self._db

    def _run(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """One statement (its own transaction), under the lock that serialises this connection."""
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc

    def _cleanup(self, now: float) -> None:
        """Drop released and expired reservations and buckets whose windows are over (every 10 minutes)."""
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + _CLEANUP_EVERY_S
        self._run(f"DELETE FROM {TABLE} WHERE until <= ?", (now,))

    def _states(self, keys: Sequence[str], now: float) -> dict[str, BucketState]:
        rows = self._run(_states_sql(len(keys)), [*keys, now])
        return {row[0]: BucketState(*(int(v) for v in row[1:7])) for row in rows}

    def reserve(self, rid: str, lines: Sequence[Line], now: float, lease_until: float) -> Admission:
        self._cleanup(now)
        params: list[Any] = []
        for line in lines:
            params += [line.key, line.usd, line.tokens, line.limit_usd, line.limit_tokens, line.enforce]
        params += [now, rid, lease_until]
        rows = self._run(_reserve_sql(len(lines)), params)
        if rows:
            after = {key: _state(bucket, live) for key, bucket, live in rows}
            return Admission(True, None, tuple(after[line.key] for line in lines))
        found = self._states([line.key for line in lines], now)
        states = tuple(found.get(line.key, BucketState()) for line in lines)
        for i, line in enumerate(lines):
            if line.enforce and not fits(states[i], line):
                return Admission(False, i, states)
        # Refused by a state that changed before the states were read: name the first enforced line.
        first = next((i for i, line in enumerate(lines) if line.enforce), 0)
        return Admission(False, first, states)

    def settle(self, rid: str | None, lines: Sequence[Line], now: float) -> list[Settled]:
        if len({line.key for line in lines}) < len(lines):  # one bucket twice (never from the gate): one by one
            return [settled for line in lines for settled in self.settle(rid, [line], now)]
        if not lines:
            return []
        params: list[Any] = []
        releases = 0
        if rid is not None:
            for line in lines:
                params += [line.key, rid]
            releases = len(lines)
        for line in lines:
            params += [line.key, line.usd, line.tokens, line.expires_at, _levels_text(line.levels)]
        params.append(now)
        rows = self._run(_settle_sql(releases, len(lines)), params)
        out: list[Settled] = []
        by_key = {row[0]: row for row in rows if row[1] == ""}
        for line in lines:
            _, _, before, warned, usd, tokens, live = by_key[line.key]
            r_usd, r_tokens, count = (int(v) for v in live.split())
            out.append(Settled(BucketState(usd, tokens, r_usd, r_tokens, count, warned), before, max(before, warned)))
        return out

    def renew(self, held: Sequence[tuple[str, str]], lease_until: float) -> None:
        # Released reservations are deleted, expired ones at the next read of their bucket (or the cleanup).
        with self._lock:
            try:
                self._connection().executemany(
                    f"UPDATE {TABLE} SET until = MAX(until, ?) WHERE key = ? AND id = ? AND id != ''",
                    [(lease_until, key, rid) for rid, key in held],
                )
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc

    def state(self, key: str, now: float) -> BucketState:
        rows = self._run(_states_sql(1), [key, now])
        if not rows:
            return BucketState()
        if rows[0][7]:  # reservations whose lease ended: gone for good (a renewal never revives them)
            self._run(f"DELETE FROM {TABLE} WHERE key = ? AND id != '' AND until <= ?", (key, now))
        return BucketState(*(int(v) for v in rows[0][1:7]))

    def buckets(self) -> int:
        """How many buckets the file holds (windows not yet cleaned up included)."""
        return int(self._run(f"SELECT COUNT(*) FROM {TABLE} WHERE id = ''", ())[0][0])

    def close(self) -> None:
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None
