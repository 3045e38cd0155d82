"""configure() with the ledger on does no file work on the caller's thread (issue 16, set-up): the default
location (platformdirs), the file, its directory, schema and WAL come with the first row, on the writer thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tokenmeter
from tokenmeter.finops._sqlite import SQLiteReader

REPO = Path(__file__).resolve().parents[2]

_CHILD = r"""
import json, os, sys, threading
import tokenmeter
meter = tokenmeter.configure(exporter="none", ledger="default")
out = {"after_configure": sorted(m for m in ("platformdirs", "sqlite3", "_sqlite3", "tokenmeter.finops._rows")
                                 if m in sys.modules),
       "dir_exists": os.path.exists(os.path.join(os.environ["XDG_DATA_HOME"], "tokenmeter"))}
writer = []
import tokenmeter.finops._sqlite as s
real = s.LedgerDB.__init__
def spy(self, path):
    writer.append(threading.current_thread().name)
    real(self, path)
s.LedgerDB.__init__ = spy
tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=7, output=3))
meter.ledger._wake.set()  # the writer thread's next flush, now
for _ in range(200):
    if meter.ledger._db is not None:
        break
    threading.Event().wait(0.05)
out["opened_by"] = writer
out["path"] = meter.ledger.path
from platformdirs import user_data_dir
out["platformdirs"] = os.path.join(user_data_dir("tokenmeter", appauthor=False), "ledger.db")
tokenmeter.unconfigure()
print(json.dumps(out))
"""


def test_configure_defers_the_default_location_and_the_file_to_the_writer(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "TOKENMETER_LEDGER": "default", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["after_configure"] == [], "configure() loaded what only the writer needs"
    assert out["dir_exists"] is False, "configure() created the ledger's directory"
    assert out["opened_by"] == ["tokenmeter-ledger"], "the file was not opened by the writer thread"
    # the same place platformdirs gives (the location is unchanged, only computed later)
    assert out["path"] == out["platformdirs"] == str(tmp_path / "tokenmeter" / "ledger.db")
    report = SQLiteReader(out["path"])
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    rows = list(report.usage(now - timedelta(days=1), now + timedelta(days=1)))
    assert sum(r.tokens for r in rows) == 10


def test_no_file_before_the_first_row(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.db"
    meter = tokenmeter.configure(exporter="none", ledger=f"sqlite:///{path}", ledger_flush_interval=0.05)
    try:
        time.sleep(0.3)  # several writer cycles with nothing to write
        assert meter.force_flush()
        assert not (tmp_path / "sub").exists()
        tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=1))
        assert meter.force_flush()
        assert path.exists()
    finally:
        tokenmeter.unconfigure()


def test_a_rejected_configuration_leaves_no_writer_and_no_file(tmp_path: Path) -> None:
    import threading

    before = {t for t in threading.enumerate() if t.name == "tokenmeter-ledger"}
    with pytest.raises(tokenmeter.ConfigError):
        # rejected by the budget gate, which is built after the ledger
        budget = tokenmeter.Budget("b", scope={"team": "t"}, limit_usd=1, window="1d")
        tokenmeter.configure(
            exporter="none",
            ledger=f"sqlite:///{tmp_path}/ledger.db",
            ledger_flush_interval=0.05,
            budgets=[budget, budget],
        )
    time.sleep(0.3)
    after = {t for t in threading.enumerate() if t.name == "tokenmeter-ledger" and t.is_alive()}
    assert after <= before
    assert not list(tmp_path.iterdir())
