"""The durable ledger: several writer processes on one file, SIGKILL loses at most a flush interval, forks,
a full queue folds instead of dropping, and faults (read-only, locked, corrupt, foreign) degrade to memory."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

import tokenmeter
from tokenmeter.finops._sqlite import SQLiteReader
from tokenmeter.finops.report import build_report

REPO = Path(__file__).resolve().parents[2]


def _totals(path: Path) -> tuple[int, int]:
    """(calls, tokens) in the ledger file."""
    report = build_report(SQLiteReader(str(path)))
    return report.total.calls, report.total.tokens


def _worker(path: Path, n: int, team: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.finops._worker", f"sqlite:///{path}", str(n), team, *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_several_processes_write_one_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    procs = [_worker(path, 3000, f"team-{i}") for i in range(3)]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "Traceback" not in err and "tokenmeter:" not in err
    report = build_report(SQLiteReader(str(path)), by=("team",))
    assert {g.name: (g.calls, g.tokens) for g in report.by["team"]} == {f"team-{i}": (3000, 33000) for i in range(3)}
    assert report.total.cost == Decimal(9000 * 12) / Decimal(1_000_000)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_interpreter_exit_flushes_without_shutdown(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    proc = _worker(path, 250, "exiting", "--no-shutdown")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert _totals(path) == (250, 2750)


def test_retention_drops_old_hourly_rows_and_runs_keeps_daily_totals(tmp_path: Path) -> None:
    from tokenmeter.finops._agg import Cell, RunRecord
    from tokenmeter.finops._sqlite import LedgerDB

    db = LedgerDB(str(tmp_path / "ledger.db"))
    now = 1_790_000_000.0
    old, recent = int(now - 500 * 86400) // 3600 * 3600, int(now - 3600) // 3600 * 3600
    dims = ("prod", "t", "w", "", "small", "openai", "m", "chat", "input", "ok", "", "override")
    db.write(
        {
            (old, *dims): Cell(tokens=7, cost=Decimal("0.5"), calls=1),
            (recent, *dims): Cell(tokens=3, cost=Decimal("0.25"), calls=1),
        },
        [
            RunRecord(
                "old", now - 100 * 86400, "prod", "t", "w", "", 1.0, 1, 1, 0, [7, 0, 0, 0, 0], None, "ok", None, None
            ),
            RunRecord("new", now - 86400, "prod", "t", "w", "", 1.0, 1, 1, 0, [3, 0, 0, 0, 0], None, "ok", None, None),
        ],
    )
    db.compact(400, 90, now)
    c = db.conn
    assert c.execute("SELECT sum(tokens) FROM usage_hour").fetchone()[0] == 3
    assert c.execute("SELECT sum(tokens), sum(cost_nano) FROM usage_day").fetchone() == (10, 750_000_000)
    assert c.execute("SELECT sum(tokens) FROM usage_month").fetchone()[0] == 10
    assert [r[0] for r in c.execute("SELECT run_id FROM runs")] == ["new"]
    db.close()
    report = build_report(SQLiteReader(str(tmp_path / "ledger.db")))
    assert (report.total.tokens, report.total.cost) == (10, Decimal("0.75"))


def test_sigkill_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    proc = _worker(path, 0, "killed", "--forever")
    progress: list[tuple[int, float]] = []
    assert proc.stdout is not None
    deadline = time.time() + 60
    started = 0.0  # when the writer had made its first flush (the file opened and its schema made)
    while time.time() < deadline:
        done, at = proc.stdout.readline().split()
        progress.append((int(done), float(at)))
        if not started and path.exists() and float(at) - progress[0][1] > 1.0 and _totals(path)[0] > 0:
            started = float(at)
        if started and float(at) - started > 3.0:
            break
    os.kill(proc.pid, signal.SIGKILL)
    killed_at = time.time()
    proc.wait(timeout=10)
    for line in proc.stdout.read().splitlines():  # printed before the kill but not read yet
        done, at = line.split()
        progress.append((int(done), float(at)))
    calls, _tokens = _totals(path)
    # Everything finished more than the flush interval (1 s) before the kill is in the file (2 s: the bound).
    safe = max(done for done, at in progress if at <= killed_at - 2.0)
    assert calls >= safe > 0
    assert calls <= progress[-1][0] + 50  # and nothing invented


def test_a_forked_child_does_not_write_its_parents_rows(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    meter = tokenmeter.configure(ledger=f"sqlite:///{path}", exporter="none", ledger_flush_interval=30)
    try:
        with tokenmeter.attributes(team="parent"):
            for _ in range(5):
                tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=1))
        pid = os.fork()
        if pid == 0:  # child: meters its own call; its exit flushes only that
            try:
                with tokenmeter.attributes(team="child"):
                    tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=1))
                meter.ledger.flush()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        meter.force_flush()
    finally:
        tokenmeter.unconfigure()
    report = build_report(SQLiteReader(str(path)), by=("team",))
    assert {g.name: g.calls for g in report.by["team"]} == {"parent": 5, "child": 1}


def test_a_full_queue_folds_in_memory_never_drops(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    meter = tokenmeter.configure(
        ledger=f"sqlite:///{path}", exporter="none", ledger_queue_size=4, ledger_flush_interval=30
    )
    try:
        for _ in range(500):
            tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=3, output=1))
        assert meter.ledger.stats["folded"] > 0
    finally:
        tokenmeter.unconfigure()
    assert _totals(path) == (500, 2000)


def test_read_only_directory_degrades_to_memory_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes through directory permissions")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with caplog.at_level(logging.WARNING, "tokenmeter"):
            meter = tokenmeter.configure(ledger=f"sqlite:///{ro}/ledger.db", exporter="none")
            for _ in range(3):
                tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=1))
                assert meter.force_flush() is False
            assert "Total: 3 calls sent" in meter.report()
            assert meter.ledger.stats["write_errors"] >= 1
        tokenmeter.unconfigure()
        assert len([r for r in caplog.records if "ledger" in r.getMessage()]) == 1
    finally:
        ro.chmod(0o700)


def test_an_unwritable_path_degrades_to_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, "tokenmeter"):
        meter = tokenmeter.configure(ledger=f"sqlite:///{blocker}/ledger.db", exporter="none")
        tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=1))
        assert meter.force_flush() is False
        assert meter.ledger.degraded is not None and "Total: 1 calls sent" in meter.report()
        tokenmeter.unconfigure()
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1


def test_a_corrupt_file_is_never_overwritten(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ledger.db"
    garbage = b"this is not sqlite " * 500
    path.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, "tokenmeter"):
        meter = tokenmeter.configure(ledger=f"sqlite:///{path}", exporter="none")
        tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=1))
        assert meter.force_flush() is False
        assert "Total: 1 calls sent" in meter.report()
        tokenmeter.unconfigure()
    assert path.read_bytes() == garbage
    assert any("left untouched" in r.getMessage() for r in caplog.records)


def test_a_foreign_sqlite_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    meter = tokenmeter.configure(ledger=f"sqlite:///{path}", exporter="none")
    tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=1))
    assert meter.force_flush() is False
    tokenmeter.unconfigure()
    assert path.read_bytes() == before


def test_a_locked_file_keeps_rows_until_it_is_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenmeter.finops import _sqlite

    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "ledger.db"
    meter = tokenmeter.configure(ledger=f"sqlite:///{path}", exporter="none", ledger_flush_interval=30)
    try:
        tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=1))
        assert meter.force_flush()  # the file exists and is ours
        meter.ledger._db.conn.execute("PRAGMA busy_timeout = 200")
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=1))
        assert meter.force_flush() is False
        assert meter.ledger.stats["write_errors"] == 1
        holder.execute("ROLLBACK")
        holder.close()
        assert meter.force_flush()
    finally:
        tokenmeter.unconfigure()
    assert _totals(path) == (2, 2)


def test_ledger_off_and_bad_options(tmp_path: Path) -> None:
    meter = tokenmeter.configure(ledger=None, exporter="none")
    assert meter.ledger.path is None
    tokenmeter.unconfigure()
    with pytest.raises(tokenmeter.ConfigError, match="ledger must be"):
        tokenmeter.configure(ledger="postgres://x")
    with pytest.raises(tokenmeter.ConfigError, match="ledger_flush_interval"):
        tokenmeter.configure(ledger_flush_interval=0)


def test_default_location_is_the_user_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("TOKENMETER_LEDGER", "default")
    meter = tokenmeter.configure(exporter="none")
    try:
        assert meter.ledger.path == str(tmp_path / "tokenmeter" / "ledger.db")
    finally:
        tokenmeter.unconfigure()


def test_the_callers_thread_never_writes_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from tokenmeter.finops import _sqlite

    writers: list[str] = []
    real_write = _sqlite.LedgerDB.write

    def spy(self: _sqlite.LedgerDB, cells: object, runs: object, folded: object = None) -> int:
        writers.append(threading.current_thread().name)
        return real_write(self, cells, runs, folded)  # type: ignore[arg-type]

    monkeypatch.setattr(_sqlite.LedgerDB, "write", spy)
    meter = tokenmeter.configure(ledger=f"sqlite:///{tmp_path}/l.db", exporter="none", ledger_flush_interval=0.05)
    try:
        for _ in range(200):
            with tokenmeter.workflow("w", team="t"):
                tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=2))
        deadline = time.time() + 10
        while meter.ledger.stats["written_rows"] == 0 and time.time() < deadline:
            time.sleep(0.05)
        assert writers and set(writers) == {"tokenmeter-ledger"}
    finally:
        tokenmeter.unconfigure()
    assert _totals(tmp_path / "l.db") == (200, 400)


def test_a_full_disk_keeps_rows_in_memory_until_there_is_room(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SQLite's own limit stands in for a full disk: the write fails with SQLITE_FULL ("disk is full")."""
    path = tmp_path / "ledger.db"
    meter = tokenmeter.configure(ledger=f"sqlite:///{path}", exporter="none", ledger_flush_interval=30)
    try:
        tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=1))
        assert meter.force_flush()
        conn = meter.ledger._db.conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        with caplog.at_level(logging.WARNING, "tokenmeter"):
            for i in range(300):
                with tokenmeter.attributes(team=f"team-{i}"):  # new rows: the file must grow
                    tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=1))
            assert meter.force_flush() is False
            assert meter.force_flush() is False
        assert [r.getMessage() for r in caplog.records if "full" in r.getMessage()][:1]
        assert len([r for r in caplog.records if "cannot write the ledger" in r.getMessage()]) == 1
        assert "Total: 301 calls sent" in meter.report()
        conn.execute("PRAGMA max_page_count = 1000000")
        assert meter.force_flush()
    finally:
        tokenmeter.unconfigure()
    assert _totals(path) == (301, 301)


def test_a_back_filled_call_lands_in_the_hour_it_was_made(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    path = tmp_path / "ledger.db"
    made = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(days=40)
    tokenmeter.configure(ledger=f"sqlite:///{path}", exporter="none")
    try:
        tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=7), timestamp=made)
        tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=5))
    finally:
        tokenmeter.unconfigure()
    hour = made.replace(minute=0)
    then = build_report(SQLiteReader(str(path)), hour, hour + timedelta(hours=1))
    later = build_report(SQLiteReader(str(path)), hour + timedelta(days=1))
    assert (then.total.calls, then.total.tokens) == (1, 7)
    assert (later.total.calls, later.total.tokens) == (1, 5)
