"""Schema migrations of the SQLite ledger file, applied in place by a writer when it opens an older file.

Schema 2 added ``units`` to the usage tables (how many per-request units a unit row charged). A schema-1 file
gets the column with no value (NULL: "not counted") in one transaction; its rows stay as they are.

An older tokenmeter still writing a migrated file (a rolling upgrade) inserts rows with no count (right),
but its upsert onto a row a newer writer counted adds cost without count. A trigger could make that count
unknown; it was measured at ~20-45 % more CPU per updated row on the writer thread, so it is not installed:
upgrade the processes that share one ledger file together (docs/design.md, "Open ends").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable


def has_units(conn: sqlite3.Connection, tables: Iterable[str]) -> bool:
    """Whether every usage table has the ``units`` column (schema 2)."""
    return all("units" in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")} for table in tables)


def migrate(conn: sqlite3.Connection, tables: Iterable[str], version: int) -> None:
    """Bring a schema-1 file to ``version`` in place, in one transaction (another process may be doing the same)."""
    tables = tuple(tables)
    if has_units(conn, tables):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not has_units(conn, tables):
            for table in tables:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN units INTEGER")  # NULL: not counted
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(version),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
