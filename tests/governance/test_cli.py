"""``tokenmeter budgets``: each budget's window, spend, reservations and utilization from a shared store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokenmeter import Usage
from tokenmeter.cli import main
from tokenmeter.governance import open_store
from tokenmeter.testing import capture

from .conftest import store_url
from .helpers import start

BUDGETS_TOML = """
[[budget]]
name = "payments-daily"
scope = { team = "payments" }
limit_usd = "0.01"
limit_tokens = 2000
window = "1d"

[[budget]]
name = "everything-monthly"
scope = {}
limit_tokens = 10000
window = "month"
"""


@pytest.fixture(params=["sqlite", "redis"])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    """A store holding one settled call (500 tokens) and one live reservation (300 tokens), and the budgets file."""
    import tokenmeter
    from tokenmeter.governance import load_budgets

    budgets_file = tmp_path / "budgets.toml"
    budgets_file.write_text(BUDGETS_TOML)
    url = store_url(str(request.param), tmp_path, request)
    with capture(budgets=load_budgets(budgets_file), store=url), tokenmeter.attributes(team="payments"):
        start(max_tokens=500).stop(Usage(output=500))
        start(max_tokens=300)  # still in flight when the CLI looks
    return url, budgets_file


def test_budgets_prints_window_spend_reservations_and_utilization(
    filled: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, budgets_file = filled
    assert main(["budgets", "--store", url, "--budgets", str(budgets_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["BUDGET", "SCOPE", "WINDOW", "(UTC)", "SPENT", "RESERVED", "LIMIT", "USED"]
    day = time.strftime("%Y-%m-%dT00:00Z", time.gmtime())
    pay = out[1]
    assert pay.startswith("payments-daily") and "team=payments" in pay and f"1d {day}.." in pay
    assert "500 tok" in pay and "300 tok (1)" in pay and "$0.01 / 2,000 tok" in pay
    assert pay.endswith("25.0%")  # 500 of 2000 tokens (the dollar ratio is lower)
    month = out[2]
    assert month.startswith("everything-monthly") and " * " in month and "month " in month
    assert "500 tok" in month and "10,000 tok" in month and month.endswith("5.0%")


def test_budgets_as_json_from_the_environment(
    filled: tuple[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, budgets_file = filled
    monkeypatch.setenv("TOKENMETER_STORE", url)
    monkeypatch.setenv("TOKENMETER_BUDGETS", str(budgets_file))
    assert main(["budgets", "--json"]) == 0
    rows = {r["budget"]: r for r in json.loads(capsys.readouterr().out)}
    pay = rows["payments-daily"]
    assert (pay["spent_tokens"], pay["reserved_tokens"], pay["reservations"], pay["utilization"]) == (500, 300, 1, 0.25)
    assert pay["limit_usd"] == "0.01" and pay["window"] == "1d" and pay["action"] == "block"
    assert rows["everything-monthly"]["window_start"].endswith("-01T00:00Z")


def test_budgets_explains_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKENMETER_STORE", raising=False)
    monkeypatch.delenv("TOKENMETER_BUDGETS", raising=False)
    assert main(["budgets"]) == 2
    assert "--budgets" in capsys.readouterr().err
    budgets_file = tmp_path / "b.json"
    budgets_file.write_text(json.dumps([{"name": "a", "limit_tokens": 1, "window": "1d"}]))
    assert main(["budgets", "--budgets", str(budgets_file)]) == 2
    assert "memory store lives inside" in capsys.readouterr().err
    assert main(["budgets", "--budgets", str(budgets_file), "--store", "redis://127.0.0.1:1/0?timeout_s=0.2"]) == 1
    assert "unavailable" in capsys.readouterr().err


def test_the_module_runs_as_a_command(tmp_path: Path) -> None:
    budgets_file = tmp_path / "b.json"
    budgets_file.write_text(json.dumps([{"name": "a", "limit_tokens": 1, "window": "1h"}]))
    store = f"sqlite://{tmp_path / 'x.db'}"
    open_store(store).close()  # the metered process creates the store; the read-only command never does
    done = subprocess.run(
        [sys.executable, "-m", "tokenmeter.cli", "budgets", "--budgets", str(budgets_file), "--store", store],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[0] == "a"


def test_per_entity_budgets_are_shown_for_one_entity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tokenmeter
    from tokenmeter.governance import load_budgets

    budgets_file = tmp_path / "budgets.toml"
    budgets_file.write_text(
        '[[budget]]\nname = "pc"\nscope = { customer = "*" }\nlimit_tokens = 1000\n'
        'window = "1d"\nowner = "cx"\noverrides = { acme = 5000 }\n'
    )
    url = f"sqlite://{tmp_path / 'b.db'}"
    with capture(budgets=load_budgets(budgets_file), store=url), tokenmeter.attributes(customer="acme"):
        start(max_tokens=500).stop(Usage(output=500))
    assert main(["budgets", "--store", url, "--budgets", str(budgets_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # templates need --entity
    assert main(["budgets", "--store", url, "--budgets", str(budgets_file), "--json", "--entity", "acme"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["budget"], row["owner"], row["spent_tokens"], row["limit_tokens"], row["utilization"]) == (
        "pc[acme]",
        "cx",
        500,
        5000,
        0.1,
    )
