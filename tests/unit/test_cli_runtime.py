"""`tokenmeter --version`, and a read-only `tokenmeter budgets` that never creates a store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tokenmeter import cli


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert re.fullmatch(r"tokenmeter \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_mistyped_sqlite_path_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[[budget]]\nname = "b"\nlimit_usd = 1\nwindow = "1d"\nscope = {}\n')
    for url in (f"sqlite:///{tmp_path}/typo.db", f"sqlite:///{tmp_path}/no-such-dir/b.db"):
        assert cli.main(["budgets", "--store", url, "--budgets", str(budgets)]) == 2
        assert "no SQLite budget store" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["budgets.toml"]
