"""`tokenmeter forecast` and `tokenmeter export focus` end to end through `tokenmeter.cli.main`.

The input is a :class:`~tokenmeter.testing.finops.ListReader` (a stand-in for the ledger / TSDB readers),
installed as ``tokenmeter.finops.reader_for``; everything after the reader is the real code.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import tokenmeter.finops
from tokenmeter import Budget
from tokenmeter.cli import main
from tokenmeter.finops import UsageRow
from tokenmeter.finops._runway import runways
from tokenmeter.testing.finops import ListReader, synthetic_usage

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> dict[str, ListReader]:
    readers: dict[str, ListReader] = {}

    def reader_for(name: str | None) -> ListReader:
        if name not in readers:
            raise ValueError(f"no such source {name!r}")
        return readers[name]

    monkeypatch.setattr(tokenmeter.finops, "reader_for", reader_for, raising=False)
    return readers


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _usage(days: int, **kw: object) -> list[UsageRow]:
    return synthetic_usage(start=TODAY - timedelta(days=days), days=days, **kw)  # type: ignore[arg-type]


def test_forecast_table_and_json(source: dict[str, ListReader], capsys: pytest.CaptureFixture[str]) -> None:
    source["s"] = ListReader(_usage(60, workflows=("triage", "refund"), envs=("prod", "dev"), noise=2000))
    status, out, err = _cli(capsys, "forecast", "--source", "s")
    assert status == 0, err
    assert "refund/dev" in out and "TOTAL" in out and "trend+weekday" in out and "TOKENS NEXT 7D" in out
    status, out, _ = _cli(capsys, "forecast", "--source", "s", "--json", "--by", "workflow")
    doc = json.loads(out)
    assert [s["workflow"] for s in doc["series"]] == ["refund", "triage"]
    s = doc["series"][0]
    assert s["history_days"] == 60 and s["method"] == "trend+weekday" and len(s["tokens"]["daily"]) == 30
    band = s["tokens"]["next_7d"]
    assert band["lower"] <= band["point"] <= band["upper"]
    assert s["variance"]["tokens"]["week_start"] == (TODAY - timedelta(days=7)).date().isoformat()


def test_forecast_scenarios_table_and_json(source: dict[str, ListReader], capsys: pytest.CaptureFixture[str]) -> None:
    rows = _usage(29, workflows=("triage",), level=1_000_000, slope=0)  # the default baseline: 30 days with today
    source["s"] = ListReader(rows)
    baseline = sum((r.cost_usd for r in rows if r.cost_usd is not None), Decimal(0))
    status, out, err = _cli(
        capsys,
        "forecast",
        "--source",
        "s",
        "--json",
        "--scenario",
        "price=-90%",
        "demand=1x",
        "--scenario",
        "price=-90% demand=10x",
        "--scenario",
        "price=-90%",
        "demand=30x",
    )
    assert status == 0, err
    total = {r["scenario"]: r for r in json.loads(out)["scenarios"] if r["workflow"] == "*"}
    assert Decimal(total["price=-90% demand=1x"]["baseline_cost_usd"]) == baseline
    assert Decimal(total["price=-90% demand=1x"]["cost_usd"]) == baseline * Decimal("0.1")
    assert Decimal(total["price=-90% demand=10x"]["cost_usd"]) == baseline
    assert Decimal(total["price=-90% demand=30x"]["cost_usd"]) == baseline * 3
    assert [total[k]["effect"] for k in total] == ["down", "flat", "up materially"]
    status, out, _ = _cli(capsys, "forecast", "--source", "s", "--scenario", "price=-90%", "demand=30x")
    assert "SPEND EFFECT" in out and "up materially" in out


def test_budget_runway(source: dict[str, ListReader], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # a flat 1,000,000 tokens a day at $2.50/M input (750k) and $10/M output (250k): $4.375 a day
    rows = _usage(28, level=1_000_000, slope=0)
    source["s"] = ListReader(rows)
    budgets = tmp_path / "budgets.json"
    budgets.write_text(
        json.dumps(
            [
                {"name": "month-usd", "scope": {"workflow": "triage"}, "limit_usd": "1000000", "window": "month"},
                {"name": "week-usd", "scope": {}, "limit_usd": "10", "window": "7d"},
                {"name": "other-team", "scope": {"team": "nobody"}, "limit_tokens": 5, "window": "1d"},
            ]
        )
    )
    status, out, err = _cli(capsys, "forecast", "--source", "s", "--json", "--budgets", str(budgets))
    assert status == 0, err
    runway = {r["budget"]: r for r in json.loads(out)["runway"]}
    assert runway["month-usd"]["runs_out_at"] is None  # lasts the window
    week = runway["week-usd"]
    spent_days = (TODAY.date() - date.fromisoformat(week["window_start"][:10])).days
    assert week["spent"] == pytest.approx(4.375 * spent_days)
    if week["spent"] < 10:  # early in the ISO week: runs out (10 - spent) / 4.375 days from now
        assert week["runs_out_at"] is not None
    else:
        assert week["runs_out_at"] is not None  # already used up: out now
    assert runway["other-team"]["note"] == "no usage history in scope" and runway["other-team"]["runs_out_at"] is None
    status, out, _ = _cli(capsys, "forecast", "--source", "s", "--budgets", str(budgets))
    assert "Budget runway" in out and "lasts the window" in out


def test_runway_date_is_hand_computable() -> None:
    day = datetime(2026, 11, 1, tzinfo=UTC)  # the month window runs to Dec 1
    now = day + timedelta(days=10, hours=12)
    # the burn: $4.375 a day every day up to yesterday
    history = synthetic_usage(start=day - timedelta(days=18), days=28, level=1_000_000, slope=0)
    window_rows = [
        UsageRow(
            start=day + timedelta(days=d),
            end=day + timedelta(days=d + 1),
            env="prod",
            team="t",
            workflow="triage",
            agent="a",
            tier="standard",
            provider="openai",
            model="gpt-4o",
            operation="chat",
            token_class="input",
            tokens=1,
            cost_usd=Decimal("4"),
        )
        for d in range(10)
    ]  # $40 spent in the first 10 days; today's half day not yet in
    budget = Budget("b", scope={"workflow": "triage"}, limit_usd=100, window="month")
    (r,) = runways([budget], history, window_rows, now=now)
    assert r.spent == 40
    expected = now + timedelta(days=60 / 4.375)  # $60 left at $4.375 a day
    assert r.runs_out_at is not None and abs((r.runs_out_at - expected).total_seconds()) < 1
    assert r.projected_at_end == pytest.approx(40 + 4.375 * 19.5)


def test_only_today_s_usage(source: dict[str, ListReader], capsys: pytest.CaptureFixture[str]) -> None:
    source["s"] = ListReader(synthetic_usage(start=TODAY, days=1))  # a fresh install: everything is today's
    status, out, err = _cli(capsys, "forecast", "--source", "s")
    assert status == 1 and out == "" and "only today's usage so far" in err and "Traceback" not in err
    status, out, err = _cli(capsys, "forecast", "--source", "s", "--scenario", "demand=2x")
    assert status == 0, err
    assert "No complete day of usage" in out and "demand=2x" in out and "+100%" in out


def test_too_little_history_is_said(source: dict[str, ListReader], capsys: pytest.CaptureFixture[str]) -> None:
    source["s"] = ListReader(_usage(5))
    status, out, _ = _cli(capsys, "forecast", "--source", "s")
    assert status == 0
    assert "flat" in out and "only 5 day(s) of history" in out and "at least 14 days" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["forecast", "--source", "s", "--scenario", "price=cheap"], "is not understood"),
        (["forecast", "--source", "s", "--scenario", "tier-shift=small->frontier:10%"], "no measured unit cost"),
        (["forecast", "--source", "s", "--by", "colour"], "choose dimensions"),
        (["forecast", "--source", "s", "--as-of", "2999-01-01"], "in the future"),
        (["forecast", "--source", "s", "--as-of", "yesterday"], "not a date"),
        (["forecast", "--source", "empty"], "no usage in empty"),
        (["forecast", "--source", "nope"], "cannot open --source nope"),
        (["export", "focus", "--source", "s", "--period", "2026-13"], "not a month"),
        (["export", "focus", "--source", "s", "--period", "2999-01"], "has not started"),
        (["export", "focus", "--source", "empty", "--period", "2026-01"], "no usage in empty for 2026-01"),
        (["export", "focus", "--source", "s", "--period", "2026-01", "--format", "parquet"], "needs --out"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(
    source: dict[str, ListReader], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    source["s"] = ListReader(_usage(30, tier="small"))
    source["empty"] = ListReader([], name="empty")
    status, out, err = _cli(capsys, *argv)
    assert status != 0 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_env_filter_and_missing_reader(
    source: dict[str, ListReader], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source["s"] = ListReader(_usage(20, envs=("prod", "dev")))
    status, out, _ = _cli(capsys, "forecast", "--source", "s", "--env", "dev", "--json")
    assert status == 0 and {s["env"] for s in json.loads(out)["series"]} == {"dev"}
    status, _, err = _cli(capsys, "forecast", "--source", "s", "--env", "qa")
    assert status == 1 and "no usage in test rows for env 'qa'" in err
    # without reader_for: the report command's resolver (the SQLite ledger), or a one-line error without it
    monkeypatch.delattr(tokenmeter.finops, "reader_for")
    monkeypatch.setenv("TOKENMETER_LEDGER", f"sqlite:///{tmp_path / 'no-ledger.db'}")
    status, out, err = _cli(capsys, "export", "focus", "--period", "2026-01")
    assert status != 0 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    if importlib.util.find_spec("tokenmeter.finops._cli_report") is None:
        assert "no usage reader is available" in err
    assert not (tmp_path / "no-ledger.db").exists()  # a read-only command never creates a ledger


def test_export_focus_csv(source: dict[str, ListReader], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows = _usage(40, workflows=("triage", "refund"))
    unpriced = UsageRow(
        start=TODAY - timedelta(days=1),
        end=TODAY,
        env="prod",
        team="t",
        workflow="triage",
        agent="a",
        tier="unknown",
        provider="openai",
        model="my-finetune",
        operation="chat",
        token_class="input",
        tokens=777,
        unpriced_tokens=777,
    )
    source["s"] = ListReader([*rows, unpriced])
    period = f"{TODAY - timedelta(days=1):%Y-%m}"
    status, out, err = _cli(capsys, "export", "focus", "--source", "s", "--period", period)
    assert status == 0, err
    got = list(csv.DictReader(io.StringIO(out)))
    start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
    in_period = [r for r in rows if r.start >= start and r.start.strftime("%Y-%m") == period]
    assert len(got) == len(in_period)  # one row per day x model x class x team/workflow/env here
    assert sum(Decimal(r["BilledCost"]) for r in got) == sum(r.cost_usd for r in in_period if r.cost_usd)
    assert sum(Decimal(r["ConsumedQuantity"]) for r in got) == sum(r.tokens for r in in_period)
    assert "777 tokens have no price and were left out" in err
    status, out, err = _cli(capsys, "export", "focus", "--source", "s", "--period", period, "--unpriced", "flag")
    flagged = [r for r in csv.DictReader(io.StringIO(out)) if r["x_Unpriced"] == "true"]
    assert len(flagged) == 1 and flagged[0]["ConsumedQuantity"] == "777.0" and flagged[0]["BilledCost"] == "0.0"


def test_export_focus_parquet(
    source: dict[str, ListReader], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    source["s"] = ListReader(_usage(10))
    out_file = tmp_path / "focus.parquet"
    status, _, err = _cli(
        capsys,
        "export",
        "focus",
        "--source",
        "s",
        "--period",
        f"{TODAY - timedelta(days=1):%Y-%m}",
        "--out",
        str(out_file),
    )
    assert status == 0, err and "wrote" in err
    table = pq.read_table(out_file)
    assert "ServiceCategory" in table.column_names and table.num_rows > 0
    assert set(table.column("ServiceCategory").to_pylist()) == {"AI and Machine Learning"}
