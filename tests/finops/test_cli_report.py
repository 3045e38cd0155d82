"""``tokenmeter report``: plain and rich tables, JSON, CSV, windows, and one clear line for every bad input."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import tokenmeter
from tokenmeter.cli import main
from tokenmeter.finops._cli_report import ReportError, window

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "ledger.db"
    tokenmeter.configure(ledger=f"sqlite:///{path}", exporter="none", prices={"m-*": {"input": 1, "output": 2}})
    try:
        for team, n in (("support", 3), ("payments", 1)):
            for _ in range(n):
                with tokenmeter.workflow(f"{team}-flow", team=team):
                    tokenmeter.record("openai", "m-1", tokenmeter.Usage(input=1000, output=100))
    finally:
        tokenmeter.unconfigure()
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["report", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_plain_tables(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "--source", f"sqlite:///{ledger}", "--plain", "--by", "team,workflow")
    assert code == 0 and not err
    assert "Total: 4 calls sent (0 blocked before sending), 4,400 tokens, $0.004800" in out
    assert "By team:" in out and "By workflow:" in out and "By model:" not in out
    rows = {line.split()[0]: line.split()[1:] for line in out.split("By team:\n")[1].split("\n\n")[0].splitlines()[1:]}
    assert rows == {
        "support": ["3", "0", "3,300", "0.003600", "0", "0"],
        "payments": ["1", "0", "1,100", "0.001200", "0", "0"],
    }
    assert "Cost per successful run: $0.001200" in out


def test_rich_tables_and_the_plain_fallback_without_rich(
    ledger: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rich_console = pytest.importorskip("rich.console")
    from tokenmeter.finops import _cli_report

    code, out, _ = _run(capsys, "--source", f"sqlite:///{ledger}")  # not a terminal: plain text
    assert code == 0 and "┃" not in out and "By team:" in out
    monkeypatch.setattr(_cli_report, "_rich_console", lambda: rich_console.Console(force_terminal=True, width=160))
    code, out, _ = _run(capsys, "--source", f"sqlite:///{ledger}")
    assert code == 0 and "┃" in out and "support" in out and "Total: 4 calls sent" in out
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "rich", None)  # as if the [report] extra were not installed
    monkeypatch.setitem(sys.modules, "rich.console", None)
    assert _cli_report._rich_console() is None
    code, out, _ = _run(capsys, "--source", f"sqlite:///{ledger}")
    assert code == 0 and "┃" not in out and "By team:" in out


def test_json_and_csv(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--source", f"sqlite:///{ledger}", "--json")
    data = json.loads(out)
    assert code == 0 and data["total"]["tokens"] == 4400 and data["total"]["cost"] == "0.0048"
    assert data["reliability"]["observed"] == 1.0 and data["cost_per_success"] == "0.0012"
    code, out, _ = _run(capsys, "--source", f"sqlite:///{ledger}", "--csv", "--by", "team")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and {r["name"]: r["tokens"] for r in rows} == {"support": "3300", "payments": "1100"}


def test_windows(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    this_month = datetime.now(UTC).strftime("%Y-%m")
    assert _run(capsys, "--source", f"sqlite:///{ledger}", "--period", this_month, "--plain")[0] == 0
    assert _run(capsys, "--source", f"sqlite:///{ledger}", "--since", "1d", "--plain")[0] == 0
    code, _, err = _run(capsys, "--source", f"sqlite:///{ledger}", "--period", "2001-01")
    assert code == 2 and "nothing metered" in err
    code, _, err = _run(capsys, "--source", f"sqlite:///{ledger}", "--env", "prod")
    assert code == 2 and "for env 'prod'" in err
    now = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)
    assert window(None, "2026-11", now) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert window(None, "2026-12", now)[1] == datetime(2027, 1, 1, tzinfo=UTC)
    assert window(None, "2026-W47", now)[0] == datetime(2026, 11, 16, tzinfo=UTC)
    assert window("7d", None, now) == (datetime(2026, 11, 12, tzinfo=UTC), datetime(2026, 11, 19, tzinfo=UTC))
    assert window("24h", None, now)[1] == datetime(2026, 11, 18, 16, tzinfo=UTC)
    for bad in ("2026-13", "Nov", "2026-11-31"):
        with pytest.raises(ReportError, match="is not a period"):
            window(None, bad, now)
    with pytest.raises(ReportError, match="--since"):
        window("7 days", None, now)


@pytest.mark.parametrize("case", ["missing", "corrupt", "foreign", "empty_file", "off", "bad_by", "bad_source"])
def test_bad_input_one_line_no_traceback(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.db"
    argv = ["--source", f"sqlite:///{path}"]
    if case == "corrupt":
        path.write_bytes(b"garbage" * 1000)
    elif case == "foreign":
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    elif case == "empty_file":
        path.write_bytes(b"")
    elif case == "off":
        argv = []
        monkeypatch.setenv("TOKENMETER_LEDGER", "none")
    elif case == "bad_by":
        argv += ["--by", "team,colour"]
    elif case == "bad_source":
        argv = ["--source", "mysql://x"]
    before = path.read_bytes() if path.exists() else None
    code, out, err = _run(capsys, *argv)
    assert code != 0 and not out
    assert err.startswith("tokenmeter report: ") and err.count("\n") == 1, err
    assert (path.read_bytes() if path.exists() else None) == before  # never created, never changed


def test_a_locked_ledger_is_a_clear_message(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokenmeter.finops import _sqlite

    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "locked.db"
    path.write_bytes(ledger.read_bytes())
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, _, err = _run(capsys, "--source", f"sqlite:///{path}")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 2 and "locked" in err and err.count("\n") == 1, err


def test_html_hook_names_the_missing_module(ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import tokenmeter.finops.html  # noqa: F401
    except ImportError:
        code, _, err = _run(capsys, "--source", f"sqlite:///{ledger}", "--html", str(tmp_path / "r.html"))
        assert code == 2 and "tokenmeter.finops.html" in err
    else:
        pytest.skip("the HTML page is built: tested with it")


def test_console_script_exit_status(ledger: Path, tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "tokenmeter.cli", "report", "--source", f"sqlite:///{ledger}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert ok.returncode == 0 and "support" in ok.stdout and not ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "tokenmeter.cli", "report", "--source", f"sqlite:///{tmp_path}/none.db"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert bad.returncode == 1 + 1 and "Traceback" not in bad.stderr and "no ledger at" in bad.stderr
    assert not (tmp_path / "none.db").exists()
