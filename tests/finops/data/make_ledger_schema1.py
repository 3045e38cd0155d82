"""Make ``ledger-schema1.db``: a ledger file written by tokenmeter's schema-1 ledger (before unit counts).

Run with a checkout whose ``tokenmeter/finops/_sqlite.py`` has ``SCHEMA_VERSION = 1`` first on the path
(the file in this directory was made from commit e186351)::

    git worktree add --detach /tmp/tm-schema1 e186351
    PYTHONPATH=/tmp/tm-schema1 python tests/finops/data/make_ledger_schema1.py tests/finops/data/ledger-schema1.db

Two calls on 2026-11-05 10:00 UTC, team ``search``: one with three Anthropic web searches (the old ledger
stores the $0.03 as a cost row of class ``web_search`` without a count) and one plain OpenAI call.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import tokenmeter
from tokenmeter import Usage
from tokenmeter.finops import _sqlite

assert _sqlite.SCHEMA_VERSION == 1, "run with a schema-1 checkout first on PYTHONPATH"
out = Path(sys.argv[1])
out.unlink(missing_ok=True)
at = datetime(2026, 11, 5, 10, 0, tzinfo=UTC)
tokenmeter.configure(ledger=f"sqlite:///{out}", exporter="none")
try:
    with tokenmeter.workflow("research", team="search"):
        usage = Usage(input=1000, output=100, units=(("web_search", 3),))
        tokenmeter.record("anthropic", "claude-haiku-4-5", usage, timestamp=at)
        tokenmeter.record("openai", "gpt-4.1", Usage(input=2000, output=50), timestamp=at)
finally:
    tokenmeter.unconfigure()
import sqlite3  # noqa: E402

conn = sqlite3.connect(out)
conn.execute("PRAGMA journal_mode = DELETE")  # one self-contained file (no -wal beside it)
conn.close()
print(out, out.stat().st_size)
