"""The SQLite ledger file: schema, batched writes from the writer thread, retention, and its reader.

Usage is kept three times, per hour, per day and per month (UTC), each an upsert of the same delta, so a
report over a year reads twelve monthly rows per attribution instead of 8,760 hourly ones; retention drops
hourly rows after ``retention_days`` (the daily and monthly rows stay) and runs after ``run_retention_days``.
Costs are integer nano-dollars (exact sums in SQL; each flush rounds its delta half-even to 1e-9 USD).
WAL mode and ``BEGIN IMMEDIATE`` with a busy timeout let several processes on one host write one file.

Schema 2 added ``units`` (how many per-request units a unit row charged: web searches, cache storage
token-seconds...). A schema-1 file is migrated in place when a writer opens it (``ALTER TABLE ... ADD COLUMN``:
its rows stay, with ``units`` NULL, "not counted"). NULL is sticky: a count added to an uncounted row stays
NULL (the row's cost would otherwise be divided by a partial count), and readers give such rows ``units`` 0,
which the report and the FOCUS export treat as "no count" (see ``UsageRow.units``).
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from .._usage import TOKEN_CLASSES
from ._agg import KEY_FIELDS, Cell, CellKey, RunRecord, month_start, next_month
from ._migrations import has_units, migrate
from ._rows import Granularity, RunRow, UsageRow
from ._runfold import FOLDED_SCHEMA, FOLDED_UPSERT, RunFold, RunFoldKey, folded_row, read_folded

APPLICATION_ID = 0x746D6C67  # "tmlg": marks a file as a tokenmeter ledger
SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 5000
_NANO = Decimal(10) ** 9
_DIMS = ", ".join(KEY_FIELDS)
_VALUES = (
    "tokens, cost_nano, list_cost_nano, unpriced_tokens, estimated_tokens, wasted_tokens, wasted_cost_nano, calls, "
    "units"
)
TABLES = {"hour": "usage_hour", "day": "usage_day", "month": "usage_month"}
_RUN_COLUMNS = (
    "run_id, start, env, team, workflow, customer, duration_s, calls, steps, max_depth, tok_input, "
    "tok_cache_read, tok_cache_write, tok_output, tok_reasoning, cost_nano, outcome, business_outcome, "
    "succeeded, step_results"
)


class LedgerFileError(Exception):
    """The ledger file cannot be used: not a tokenmeter ledger, corrupt, unreadable or missing."""


def _schema() -> str:
    dims = ",\n  ".join(f"{name} TEXT NOT NULL" for name in KEY_FIELDS)
    usage = "".join(
        f"""
CREATE TABLE IF NOT EXISTS {table} (
  period INTEGER NOT NULL,
  {dims},
  tokens INTEGER NOT NULL, cost_nano INTEGER, list_cost_nano INTEGER, unpriced_tokens INTEGER NOT NULL,
  estimated_tokens INTEGER NOT NULL, wasted_tokens INTEGER NOT NULL, wasted_cost_nano INTEGER NOT NULL,
  calls INTEGER NOT NULL, units INTEGER,
  PRIMARY KEY (period, {_DIMS})
) WITHOUT ROWID;"""
        for table in TABLES.values()
    )
    return (
        usage
        + """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT NOT NULL, start REAL NOT NULL, env TEXT NOT NULL, team TEXT NOT NULL, workflow TEXT NOT NULL,
  customer TEXT NOT NULL, duration_s REAL NOT NULL, calls INTEGER NOT NULL, steps INTEGER NOT NULL,
  max_depth INTEGER NOT NULL, tok_input INTEGER NOT NULL, tok_cache_read INTEGER NOT NULL,
  tok_cache_write INTEGER NOT NULL, tok_output INTEGER NOT NULL, tok_reasoning INTEGER NOT NULL,
  cost_nano INTEGER, outcome TEXT NOT NULL, business_outcome TEXT, succeeded INTEGER,
  step_results TEXT NOT NULL,
  PRIMARY KEY (start, run_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
    )


def _upsert(table: str) -> str:
    def add(col: str) -> str:  # NULL (unpriced) + NULL stays NULL; a number + NULL keeps the number
        return (
            f"{col} = CASE WHEN {col} IS NULL THEN excluded.{col} WHEN excluded.{col} IS NULL THEN {col} "
            f"ELSE {col} + excluded.{col} END"
        )

    plain = ("tokens", "unpriced_tokens", "estimated_tokens", "wasted_tokens", "wasted_cost_nano", "calls")
    # a unit count added to a row written without one (schema 1) stays unknown (NULL)
    units = "units = CASE WHEN units IS NULL OR excluded.units IS NULL THEN NULL ELSE units + excluded.units END"
    sets = ", ".join([*(f"{c} = {c} + excluded.{c}" for c in plain), add("cost_nano"), add("list_cost_nano"), units])
    marks = ", ".join("?" * (1 + len(KEY_FIELDS) + 9))
    return (
        f"INSERT INTO {table} (period, {_DIMS}, {_VALUES}) VALUES ({marks}) "
        f"ON CONFLICT (period, {_DIMS}) DO UPDATE SET {sets}"
    )


def nano(value: Decimal | None) -> int | None:
    """USD -> integer nano-dollars (half-even), ``None`` stays ``None``."""
    return None if value is None else int((value * _NANO).to_integral_value(ROUND_HALF_EVEN))


def usd(value: int | None) -> Decimal | None:
    """Integer nano-dollars -> USD."""
    return None if value is None else Decimal(value) / _NANO


def format_steps(tallies: dict[int, list[int]] | dict[int, tuple[int, int]]) -> str:
    """``{depth: (ok, failed)}`` as stored: ``"depth:ok:failed,..."``."""
    return ",".join(f"{d}:{t[0]}:{t[1]}" for d, t in sorted(tallies.items()))


@functools.lru_cache(maxsize=4096)
def parse_steps(text: str) -> dict[int, tuple[int, int]]:
    """The stored step tallies (runs of one workflow mostly share a few shapes: parsed once each, shared)."""
    out: dict[int, tuple[int, int]] = {}
    for part in filter(None, text.split(",")):
        d, ok, failed = part.split(":")
        out[int(d)] = (int(ok), int(failed))
    return out


def _check_ours(conn: sqlite3.Connection, path: str) -> bool:
    """True if the file is a tokenmeter ledger, False if empty (to initialise); raises if it is something else."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id == APPLICATION_ID:
        return True
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app_id == 0 and tables == 0:
        return False
    raise LedgerFileError(f"{path} is an SQLite file but not a tokenmeter ledger; it is left untouched")


class LedgerDB:
    """A writable connection to the ledger file (used by the writer thread only)."""

    def __init__(self, path: str) -> None:
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                ours = _check_ours(conn, path)
            except sqlite3.DatabaseError as exc:
                raise LedgerFileError(f"{path} is not a readable SQLite file ({exc}); it is left untouched") from exc
            if not ours:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if not _check_ours(conn, path):  # another process may have initialised it meanwhile
                        for statement in _schema().split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            migrate(conn, TABLES.values(), SCHEMA_VERSION)
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        self._sql = {g: _upsert(t) for g, t in TABLES.items()}

    def write(
        self, cells: dict[CellKey, Cell], runs: list[RunRecord], folded: dict[RunFoldKey, RunFold] | None = None
    ) -> int:
        """Add a batch of usage deltas and finished runs (and folded runs) in one transaction; returns the rows
        written."""
        per: dict[str, dict[tuple[Any, ...], Cell]] = {g: defaultdict(Cell) for g in TABLES}
        months: dict[int, int] = {}
        for key, cell in cells.items():
            hour = key[0]
            per["hour"][key].merge(cell)
            per["day"][(hour - hour % 86400, *key[1:])].merge(cell)
            day = hour - hour % 86400
            m = months.get(day)
            if m is None:
                m = months[day] = month_start(day)
            per["month"][(m, *key[1:])].merge(cell)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            n = 0
            for g, rows in per.items():
                conn.executemany(
                    self._sql[g],
                    (
                        (
                            *k,
                            c.tokens,
                            nano(c.cost),
                            nano(c.list_cost),
                            c.unpriced,
                            c.estimated,
                            c.wasted_tokens,
                            nano(c.wasted_cost),
                            c.calls,
                            c.units,
                        )
                        for k, c in rows.items()
                    ),
                )
                n += len(rows)
            conn.executemany(
                f"INSERT OR REPLACE INTO runs ({_RUN_COLUMNS}) VALUES ({','.join('?' * 20)})",
                (
                    (
                        r.run_id,
                        r.start,
                        r.env,
                        r.team,
                        r.workflow,
                        r.customer,
                        r.duration_s,
                        r.calls,
                        r.steps,
                        r.max_depth,
                        *(list(r.tokens) + [0] * 5)[:5],
                        nano(r.cost),
                        r.outcome,
                        r.business_outcome,
                        None if r.succeeded is None else int(r.succeeded),
                        format_steps(r.step_results),
                    )
                    for r in runs
                ),
            )
            if folded:
                conn.execute(FOLDED_SCHEMA)
                conn.executemany(FOLDED_UPSERT, (folded_row(k, f, nano(f.cost)) for k, f in folded.items()))
                n += len(folded)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return n + len(runs)

    def compact(self, retention_days: int, run_retention_days: int, now: float | None = None) -> None:
        """Drop hourly rows past retention (daily and monthly rows keep the totals) and old runs."""
        now = time.time() if now is None else now
        self.conn.execute("DELETE FROM usage_hour WHERE period < ?", (int(now - retention_days * 86400),))
        self.conn.execute("DELETE FROM runs WHERE start < ?", (now - run_retention_days * 86400,))
        if self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs_folded'").fetchone():
            self.conn.execute("DELETE FROM runs_folded WHERE period < ?", (int(now - run_retention_days * 86400),))

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


# -- reading -----------------------------------------------------------------------------------------
def open_for_read(path: str) -> sqlite3.Connection:
    """A read-only connection; never creates a file. Raises :class:`LedgerFileError` naming the problem."""
    p = Path(path)
    if not p.exists():
        raise LedgerFileError(
            f"no ledger at {path} (nothing metered there yet; is TOKENMETER_LEDGER / --source "
            "pointing at the right file?)"
        )
    try:
        conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not _check_ours(conn, path):
            raise LedgerFileError(f"{path} is empty: not a tokenmeter ledger yet")
        conn.execute("SELECT count(*) FROM meta").fetchone()
    except sqlite3.OperationalError as exc:
        text = str(exc)
        hint = "another process holds an exclusive lock; retry" if "locked" in text else "check its permissions"
        raise LedgerFileError(f"cannot read the ledger {path}: {text} ({hint})") from exc
    except sqlite3.DatabaseError as exc:
        raise LedgerFileError(f"{path} is not a readable SQLite ledger ({exc}); it may be corrupt") from exc
    return conn


def usage_row(start: datetime, end: datetime, dims: Sequence[Any], v: Sequence[Any]) -> UsageRow:
    """A :class:`UsageRow` from the dimensions (ordered as ``KEY_FIELDS``) and the stored sums."""
    return UsageRow(
        start=start,
        end=end,
        env=dims[0],
        team=dims[1],
        workflow=dims[2],
        agent=dims[3],
        tier=dims[4],
        provider=dims[5],
        model=dims[6],
        operation=dims[7],
        token_class=dims[8],
        outcome=dims[9],
        customer=dims[10],
        cost_source=dims[11],
        tokens=v[0],
        cost_usd=usd(v[1]),
        list_cost_usd=usd(v[2]),
        unpriced_tokens=v[3],
        estimated_tokens=v[4],
        wasted_tokens=v[5],
        wasted_cost_usd=usd(v[6]) or Decimal(0),
        calls=v[7],
        units=v[8] or 0,  # NULL: written without a count (see the module's docstring)
    )


def _segments(start: int, end: int, granularity: str) -> Iterator[tuple[str, int, int]]:
    """Cover ``[start, end)`` with the coarsest tables that fit exactly, no coarser than ``granularity``."""
    if granularity == "month":
        a = start if start == month_start(start) else next_month(start)
        b = month_start(end)
        if a < b:
            yield from _segments(start, a, "day")
            yield ("month", a, b)
            yield from _segments(b, end, "day")
            return
        granularity = "day"
    if granularity == "day":
        a = -(-start // 86400) * 86400
        b = end - end % 86400
        if a < b:
            if start < a:
                yield ("hour", start, a)
            yield ("day", a, b)
            if b < end:
                yield ("hour", b, end)
            return
    if start < end:
        yield ("hour", start, end)


class SQLiteReader:
    """Reads a ledger file written by any number of processes (read-only: never creates or changes it)."""

    granularities = ("hour", "day", "month")

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = open_for_read(path)
        # a schema-1 file (not yet opened by a newer writer) has no unit counts: read them as unknown
        self._values = (
            _VALUES if has_units(self.conn, TABLES.values()) else _VALUES.replace(", units", ", NULL AS units")
        )

    def describe(self) -> str:
        """The file read."""
        return f"sqlite:///{self.path}"

    def _query(self, sql: str, args: Sequence[Any], env: str | None = None) -> sqlite3.Cursor:
        """Run a read (``AND env = ?`` appended when ``env`` is given); a database error names the file."""
        if env is not None:
            sql, args = f"{sql} AND env = ?", [*args, env]
        try:
            return self.conn.execute(sql, args)
        except sqlite3.DatabaseError as exc:
            raise LedgerFileError(f"cannot read the ledger {self.path}: {exc}") from exc

    def _runs_in(self, columns: str, start: datetime, end: datetime, env: str | None) -> list[Any]:
        """``columns`` of the runs that started in ``[start, end)`` (one range scan of the runs' key)."""
        sql = f"SELECT {columns} FROM runs WHERE start >= ? AND start < ?"
        return self._query(sql, [start.timestamp(), end.timestamp()], env).fetchall()

    def usage(
        self, start: datetime, end: datetime, *, env: str | None = None, granularity: Granularity | str = "day"
    ) -> Iterable[UsageRow]:
        """Usage rows in ``[start, end)``; ``granularity="month"`` uses monthly rows where whole months fit."""
        a, b = int(start.timestamp()), int(end.timestamp())
        for g, lo, hi in _segments(a, b, granularity):
            length = {"hour": 3600, "day": 86400}.get(g)
            sql = f"SELECT period, {_DIMS}, {self._values} FROM {TABLES[g]} WHERE period >= ? AND period < ?"
            for r in self._query(sql, [lo, hi], env):
                period = r[0]
                stop = next_month(period) if length is None else period + length
                yield usage_row(datetime.fromtimestamp(period, UTC), datetime.fromtimestamp(stop, UTC), r[1:13], r[13:])

    def summary(
        self, start: datetime, end: datetime, *, env: str | None = None, dims: Iterable[str] = KEY_FIELDS
    ) -> Iterable[UsageRow]:
        """Usage over the whole of ``[start, end)`` grouped in SQL by ``dims`` (other dimensions are ``""``).

        The report's fast path: one row per attribution instead of one per period (a year of 12,000
        attributions is read from monthly rows and summed where they are stored).
        """
        keep = [d for d in KEY_FIELDS if d in set(dims)]
        cols = ", ".join(keep)
        sums = (
            "SUM(tokens), SUM(cost_nano), SUM(list_cost_nano), SUM(unpriced_tokens), SUM(estimated_tokens), "
            "SUM(wasted_tokens), SUM(wasted_cost_nano), SUM(calls), "
            "CASE WHEN COUNT(units) = COUNT(*) THEN SUM(units) END"  # any uncounted part: no count
        )
        parts, args = [], []
        for g, lo, hi in _segments(int(start.timestamp()), int(end.timestamp()), "month"):
            where = "period >= ? AND period < ?" + ("" if env is None else " AND env = ?")
            parts.append(f"SELECT {cols}, {self._values} FROM {TABLES[g]} WHERE {where}")
            args += [lo, hi] + ([] if env is None else [env])
        if not parts:
            return
        sql = f"SELECT {cols}, {sums} FROM ({' UNION ALL '.join(parts)}) GROUP BY {cols}"
        rows = self._query(sql, args).fetchall()
        n = len(keep)
        for r in rows:
            named = dict(zip(keep, r[:n], strict=True))
            dims = [named.get(f, "ok" if f == "outcome" else "") for f in KEY_FIELDS]
            yield usage_row(start, end, dims, r[n:])

    def runs(self, start: datetime, end: datetime, *, env: str | None = None) -> Iterable[RunRow]:
        """Finished runs that started in ``[start, end)``."""
        rows = self._runs_in(
            "run_id, workflow, team, env, start, duration_s, calls, steps, max_depth, cost_nano, outcome, "
            "business_outcome, customer, succeeded, step_results, tok_input, tok_cache_read, tok_cache_write, "
            "tok_output, tok_reasoning",
            start,
            end,
            env,
        )
        classes = TOKEN_CLASSES
        stamp = datetime.fromtimestamp
        for r in rows:
            yield RunRow(
                r[0],
                r[1],
                r[2],
                r[3],
                stamp(r[4], UTC),
                r[5],
                r[6],
                r[7],
                r[8],
                dict(zip(classes, r[15:], strict=True)),
                None if r[9] is None else Decimal(r[9]) / _NANO,
                r[10],
                r[11],
                r[12],
                None if r[13] is None else bool(r[13]),
                parse_steps(r[14]),
            )

    def folded_runs(self, start: datetime, end: datetime, *, env: str | None = None) -> list[dict[str, Any]]:
        """Runs stored as per-hour sums because the writer fell behind (see :func:`._runfold.read_folded`)."""
        return read_folded(self._query, start, end, env)

    def run_facts(self, start: datetime, end: datetime, *, env: str | None = None) -> Iterator[tuple[Any, ...]]:
        """The report's fast path over runs: ``report.RunFacts`` tuples straight from SQL."""
        rows = self._runs_in(
            "workflow, run_id, tok_input + tok_cache_read + tok_cache_write + tok_output + tok_reasoning, "
            "cost_nano, outcome = 'ok' AND coalesce(succeeded, 1), steps, coalesce(business_outcome, outcome), "
            "step_results, calls, duration_s",
            start,
            end,
            env,
        )
        nano_usd = _NANO
        for wf, rid, tokens, cost, ok, steps, label, tallies, calls, duration in rows:
            yield (
                wf,
                rid,
                tokens,
                None if cost is None else Decimal(cost) / nano_usd,
                bool(ok),
                steps,
                label,
                parse_steps(tallies),
                calls,
                duration,
            )

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()
