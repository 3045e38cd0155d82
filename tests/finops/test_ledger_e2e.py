"""End to end through the durable SQLite ledger (issue 11), when this build has it: the demo workload metered
into a ledger file, then `tokenmeter forecast` and `tokenmeter export focus --source sqlite:///...` on it."""

from __future__ import annotations

import csv
import importlib.util
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from examples.agent_service import DEFAULT_RUNS, DEFAULT_SEED, demo_options, run_workload
from tokenmeter.cli import main
from tokenmeter.testing import capture

from .test_focus import assert_valid, needs_validator

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tokenmeter.finops._sqlite") is None,
    reason="the SQLite ledger (issue 11) is not in this build",
)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Decimal]:
    """The demo workload metered into a fresh ledger; returns its --source and the metered cost."""
    path = tmp_path_factory.mktemp("ledger") / "ledger.db"
    with capture(**demo_options(DEFAULT_RUNS), ledger=f"sqlite:///{path}") as cap:
        run_workload(DEFAULT_RUNS, DEFAULT_SEED)
        cost = Decimal(str(cap.counter("tokenmeter.cost")))
        cap.meter.force_flush()
    return f"sqlite:///{path}", cost


def test_forecast_scenarios_from_the_ledger(ledger: tuple[str, Decimal], capsys: pytest.CaptureFixture[str]) -> None:
    source, metered = ledger
    status = main(
        [
            "forecast",
            "--source",
            source,
            "--json",
            "--baseline",
            "1",
            "--scenario",
            "price=-90% demand=10x",
            "--scenario",
            "price=-90% demand=30x",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    totals = {r["scenario"]: r for r in json.loads(out)["scenarios"] if r["workflow"] == "*"}
    baseline = Decimal(totals["price=-90% demand=10x"]["baseline_cost_usd"])
    assert abs(baseline - metered) < Decimal("0.000001")  # the ledger holds what the counters say
    assert Decimal(totals["price=-90% demand=30x"]["cost_usd"]) == baseline * 3
    assert totals["price=-90% demand=10x"]["effect"] == "flat"


@needs_validator
def test_export_focus_from_the_ledger_validates(
    ledger: tuple[str, Decimal], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, metered = ledger
    out_file = tmp_path / "focus.csv"
    status = main(
        [
            "export",
            "focus",
            "--source",
            source,
            "--period",
            f"{datetime.now(UTC):%Y-%m}",
            "--out",
            str(out_file),
            "--unpriced",
            "flag",
        ]
    )
    _, err = capsys.readouterr()
    assert status == 0, err
    with out_file.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert abs(sum(Decimal(r["BilledCost"]) for r in rows) - metered) < Decimal("0.000001")
    assert_valid(out_file, tmp_path)
