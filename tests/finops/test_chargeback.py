"""Chargeback / showback (issue 15): a markup or discount per cost center over a real SQLite ledger.

The ledger is written by tokenmeter itself (``configure(ledger=...)`` + ``record()``, the path every integration
ends in) for several customers and teams (now: the ledger dates a call when it is metered, so the FOCUS period is
the current month); the expected figures are computed here from the
tokens recorded and the configured prices, independently of the report. Then ``tokenmeter report`` (text, rich,
JSON, CSV, HTML) and ``tokenmeter export focus`` (CSV, Parquet, and the FinOps Foundation's focus-validator) are
run through the real command line.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

import tokenmeter
from tokenmeter import ConfigError
from tokenmeter.cli import main
from tokenmeter.finops import Chargeback, SQLiteReader, build_report
from tokenmeter.finops._render import to_csv, to_json

from . import focus_validator
from .test_focus import assert_valid, needs_validator

PRICES = {"m-*": {"input": "2.5", "output": "10", "cache_read": "1.25"}}  # USD per million tokens
PERIOD = datetime.now(UTC).strftime("%Y-%m")
# (customer, team, workflow, input, cache_read, output, calls); "" = no customer
TRAFFIC = [
    ("acme", "support", "triage", 1234, 300, 77, 5),
    ("acme", "payments", "refund", 40_001, 0, 3_333, 2),
    ("globex", "support", "triage", 9_999, 1_111, 999, 4),
    ("initech-eu", "support", "triage", 777, 0, 55, 3),
    ("initech-us", "payments", "refund", 12_345, 678, 901, 2),
    ("umbrella", "data", "nightly", 100_003, 0, 7, 1),
    ("", "data", "nightly", 5_555, 0, 444, 2),
]
RATES = {
    "acme": Decimal("0.25"),
    "globex": Decimal("-0.10"),
    "initech-eu": Decimal("0.05"),
    "initech-us": Decimal("0.05"),
}
DEFAULT = Decimal("0.15")
DEFINITION = """\
cost_center = "customer"
default = "+15%"            # umbrella and usage without a customer

[rates]
acme = "+25%"
globex = "-10%"
"initech-*" = "x1.05"
"""
_M = Decimal(1_000_000)


def _cost(inp: int, cache: int, out: int) -> Decimal:
    return (inp * Decimal("2.5") + cache * Decimal("1.25") + out * Decimal(10)) / _M


def expected() -> dict[str, tuple[Decimal, Decimal]]:
    """customer -> (cost, charge), computed from TRAFFIC and the prices, not by tokenmeter."""
    out: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for customer, _team, _wf, inp, cache, o, calls in TRAFFIC:
        cost = _cost(inp, cache, o) * calls
        out[customer][0] += cost
        out[customer][1] += cost * (1 + RATES.get(customer, DEFAULT))
    return {k: (v[0], v[1]) for k, v in out.items()}


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chargeback") / "ledger.db"
    tokenmeter.configure(ledger=f"sqlite:///{path}", exporter="none", prices=PRICES)
    try:
        for customer, team, wf, inp, cache, out, calls in TRAFFIC:
            with tokenmeter.workflow(wf, team=team, customer=customer or None):
                for _ in range(calls):
                    tokenmeter.record("openai", "m-1", tokenmeter.Usage(input=inp, cache_read=cache, output=out))
        with tokenmeter.attributes(customer="acme", team="support"):  # a self-hosted model: unpriced
            tokenmeter.record("self", "llama-3-8b", tokenmeter.Usage(input=900, output=100))
    finally:
        tokenmeter.unconfigure()
    return path


@pytest.fixture(scope="module")
def definition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cb") / "chargeback.toml"
    path.write_text(DEFINITION)
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _report(capsys: pytest.CaptureFixture[str], ledger: Path, *argv: str) -> tuple[int, str, str]:
    """``tokenmeter report --source <the ledger> *argv``."""
    return _cli(capsys, "report", "--source", f"sqlite:///{ledger}", *argv)


def _close(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) <= Decimal("1e-9")


# -- the definition ------------------------------------------------------------------------------------------------
def test_rates_markup_discount_factor_prefix_and_default() -> None:
    cb = Chargeback({"acme": "+25%", "globex": "-10%", "initech-*": "x1.05", "zed": "12.5%"}, default="+15%")
    assert cb.rate("acme") == Decimal("0.25") and cb.rate("globex") == Decimal("-0.1")
    assert cb.rate("initech-eu") == cb.rate("initech-") == Decimal("0.05")
    assert cb.rate("zed") == Decimal("0.125") and cb.rate("umbrella") == cb.rate("") == Decimal("0.15")
    assert cb.charge(Decimal("2.000000001"), "acme") == Decimal("2.50000000125")  # exact, no float
    assert cb.charge(None, "acme") is None  # unpriced stays unpriced
    assert Chargeback(default="-100%").charge(Decimal(3), "x") == 0 and Chargeback(default="x0").rate("") == -1
    assert Chargeback({"": "+0%"}, default="+20%").rate("") == 0  # usage without a customer, its own rate
    assert Chargeback(cost_center="team").cost_center == "team"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"default": "-150%"}, "beyond -100 %"),
        ({"default": "-100.01%"}, "beyond -100 %"),
        ({"rates": {"acme": 15}}, "bare number is ambiguous"),
        ({"rates": {"acme": "15"}}, "is not a rate"),
        ({"rates": {"acme": "x-1"}}, "is not a rate"),
        ({"rates": {"acme": {"rate": "+5%"}}}, "is not a rate"),
        ({"rates": "acme"}, "rates must be a table"),
        ({"rates": {"initech-*": "+5%", "initech-eu": "+1%"}}, "overlap"),
        ({"rates": {"a*": "+5%", "ab*": "+1%"}}, "overlap"),
        ({"rates": {"*": "+5%"}}, "use default"),
        ({"rates": {"a*b": "+5%"}}, "only allowed at the end"),
        ({"cost_center": "model"}, "use one of customer, team"),
    ],
)
def test_bad_definitions_are_config_errors_naming_the_fix(kwargs: dict[str, object], needle: str) -> None:
    rates = kwargs.pop("rates", None)
    with pytest.raises(ConfigError, match=re.escape(needle)):
        Chargeback(rates, **kwargs)  # type: ignore[arg-type]


def test_toml_errors_name_the_option_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "cb.toml"
    f.write_text('default = "+5%"\nmarkup = "+1%"\n')
    with pytest.raises(ConfigError, match=r"--chargeback .*cb.toml: unknown key markup; the keys are cost_center"):
        Chargeback.load(f)
    f.write_text('[rates]\nacme = "+5%"\nacme = "+6%"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        Chargeback.load(f)
    f.write_text('[rates]\n"acme-*" = "+5%"\n"acme-eu" = "-5%"\n')
    with pytest.raises(ConfigError, match=r"rates 'acme-\*' and 'acme-eu' overlap"):
        Chargeback.load(f)
    with pytest.raises(ConfigError, match="cannot read it"):
        Chargeback.load(tmp_path / "missing.toml")
    monkeypatch.setenv("TOKENMETER_CHARGEBACK", str(f))
    with pytest.raises(ConfigError, match=r"^TOKENMETER_CHARGEBACK .*overlap"):
        Chargeback.from_option(None)
    assert Chargeback.from_option("none") is None  # the flag wins over the environment, and turns it off
    monkeypatch.setenv("TOKENMETER_CHARGEBACK", "off")
    assert Chargeback.from_option(None) is None


# -- the report ----------------------------------------------------------------------------------------------------
def test_report_json_charge_per_customer_totals_and_raw_cost_unchanged(
    ledger: Path, definition: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _report(capsys, ledger, "--by", "customer,team", "--json", "--chargeback", str(definition))
    assert code == 0, err
    data = json.loads(out)
    by = {g["name"]: g for g in data["by"]["customer"]}
    want = expected()
    assert set(by) == {"acme", "globex", "initech-eu", "initech-us", "umbrella", "(none)"}
    for customer, (cost, charge) in want.items():
        g = by[customer or "(none)"]
        assert _close(Decimal(g["cost"]), cost), customer
        assert _close(Decimal(g["charge"]), charge), customer
        assert Decimal(g["rate"]) == RATES.get(customer, DEFAULT)
    assert by["acme"]["unpriced_tokens"] == 1000  # the llama call: counted, no cost, no charge
    total = data["total"]
    assert _close(Decimal(total["cost"]), sum(c for c, _ in want.values()))
    assert _close(Decimal(total["charge"]), sum(g for _, g in want.values()))
    # other dimensions carry the charge too: the teams' charges add up to the same total
    assert _close(sum(Decimal(g["charge"]) for g in data["by"]["team"]), Decimal(total["charge"]))
    assert data["chargeback"]["cost_center"] == "customer" and data["chargeback"]["rates"]["acme"] == "0.25"
    # without the definition every figure is what it was, byte for byte, bar the charge fields
    code, plain_out, _ = _report(capsys, ledger, "--by", "customer,team", "--json")
    assert code == 0
    plain = json.loads(plain_out)
    assert plain["chargeback"] is None and plain["total"]["charge"] is None

    def strip(d: object) -> object:
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in ("charge", "rate", "chargeback")}
        if isinstance(d, list):
            return [strip(v) for v in d]
        return d

    assert strip(plain) == strip(data)


def test_report_text_rich_csv_show_cost_and_charge_side_by_side(
    ledger: Path, definition: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _report(capsys, ledger, "--by", "customer", "--plain", "--chargeback", str(definition))
    assert code == 0, err
    want = expected()
    total_cost, total_charge = sum(c for c, _ in want.values()), sum(g for _, g in want.values())
    assert f"charge ${total_charge:.6f} for a cost of ${total_cost:.6f}" in out
    assert "Chargeback by customer, default +15%, 3 rules" in out and "unpriced tokens carry no charge" in out
    table = out.split("By customer:\n")[1].split("\n\n")[0].splitlines()
    assert table[0].split() == [
        "customer",
        "calls",
        "blocked",
        "tokens",
        "cost",
        "USD",
        "rate",
        "charge",
        "USD",
        "unpriced",
        "tok",
        "wasted",
        "tok",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in table[1:]}
    assert rows["globex"][3:6] == [f"{want['globex'][0]:.6f}", "-10%", f"{want['globex'][1]:.6f}"]
    assert rows["initech-eu"][4] == "+5%" and rows["umbrella"][4] == "+15%" and rows["(none)"][4] == "+15%"
    # CSV: the same figures, exact
    code, out, _ = _report(capsys, ledger, "--by", "customer,team", "--csv", "--chargeback", str(definition))
    assert code == 0
    parsed = [r for r in csv.DictReader(io.StringIO(out)) if r["dimension"] == "customer"]
    for r in parsed:
        name = "" if r["name"] == "(none)" else r["name"]
        assert _close(Decimal(r["charge_usd"]), want[name][1]) and Decimal(r["chargeback_rate"]) == RATES.get(
            name, DEFAULT
        )
    teams = [r for r in csv.DictReader(io.StringIO(out)) if r["dimension"] == "team"]
    assert all(r["chargeback_rate"] == "" for r in teams) and _close(
        sum(Decimal(r["charge_usd"]) for r in teams), total_charge
    )
    (total,) = [r for r in csv.DictReader(io.StringIO(out)) if r["dimension"] == "total"]  # both totals, last
    assert _close(Decimal(total["cost_usd"]), total_cost) and _close(Decimal(total["charge_usd"]), total_charge)
    assert out.splitlines()[-1].startswith("total,total,")
    code, out, _ = _report(capsys, ledger, "--by", "customer", "--csv")
    assert not any(line.startswith("total,") for line in out.splitlines())
    assert "charge_usd" not in out.splitlines()[0]  # unchanged without a chargeback
    # rich: the same tables
    rich_console = pytest.importorskip("rich.console")
    from tokenmeter.finops._render import render_rich

    console = rich_console.Console(record=True, width=200)
    render_rich(
        build_report(SQLiteReader(str(ledger)), by=("customer",), chargeback=Chargeback.load(definition)), console
    )
    text = console.export_text()
    assert "charge USD" in text and "rate" in text and f"{want['acme'][1]:.6f}" in text


def test_team_as_cost_center_and_the_environment_variable(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "teams.toml"
    f.write_text('cost_center = "team"\n[rates]\npayments = "-20%"\n')  # default +0%: at cost
    monkeypatch.setenv("TOKENMETER_CHARGEBACK", str(f))
    code, out, err = _report(capsys, ledger, "--by", "team", "--json")
    assert code == 0, err
    teams = {g["name"]: g for g in json.loads(out)["by"]["team"]}
    cost: dict[str, Decimal] = defaultdict(Decimal)
    for _c, team, _w, inp, cache, o, calls in TRAFFIC:
        cost[team] += _cost(inp, cache, o) * calls
    assert _close(Decimal(teams["payments"]["charge"]), cost["payments"] * Decimal("0.8"))
    assert Decimal(teams["support"]["charge"]) == Decimal(teams["support"]["cost"]) and teams["support"]["rate"] == "0"
    code, _, err = _report(capsys, ledger, "--chargeback", str(tmp_path / "nope.toml"))
    assert code == 2 and err.count("\n") == 1 and "--chargeback" in err and "Traceback" not in err
    f.write_text('cost_center = "team"\n[rates]\npayments = "-120%"\n')
    code, _, err = _cli(capsys, "report", "--source", f"sqlite:///{ledger}")
    assert code == 2 and err.startswith("tokenmeter report: TOKENMETER_CHARGEBACK") and "-100 %" in err


def test_html_has_the_chargeback_table_with_both_totals(ledger: Path, definition: Path, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    code = main(
        [
            "report",
            "--source",
            f"sqlite:///{ledger}",
            "--period",
            PERIOD,
            "--plain",
            "--html",
            str(page),
            "--chargeback",
            str(definition),
        ]
    )
    assert code == 0
    html = page.read_text()
    table = html.split('<table id="tm-chargeback">')[1].split("</table>")[0]
    want = expected()
    assert f"<td>globex</td><td class='n'>-10%</td><td class='n'>{want['globex'][0]:.6f}</td>" in table
    foot = table.split("<tfoot>")[1]
    assert f"{sum(c for c, _ in want.values()):.6f}" in foot and f"{sum(g for _, g in want.values()):.6f}" in foot


# -- the FOCUS export ----------------------------------------------------------------------------------------------
def _export(capsys: pytest.CaptureFixture[str], ledger: Path, *extra: str) -> list[dict[str, str]]:
    code, out, err = _cli(capsys, "export", "focus", "--period", PERIOD, "--source", f"sqlite:///{ledger}", *extra)
    assert code == 0, err
    return list(csv.DictReader(io.StringIO(out)))


def test_focus_x_columns_carry_the_charge_beside_the_raw_cost(
    ledger: Path, definition: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _export(capsys, ledger)
    charged = _export(capsys, ledger, "--chargeback", str(definition))
    assert "x_ChargebackCost" not in raw[0]
    assert len(raw) == len(charged)
    for a, b in zip(raw, charged, strict=True):  # every FOCUS column is exactly what it was
        assert {k: v for k, v in b.items() if k in a} == a
    per: dict[str, Decimal] = defaultdict(Decimal)
    for r in charged:
        rate = Decimal(r["x_ChargebackRate"])
        assert r["x_CostCenterDimension"] == "customer"
        assert json.loads(r["Tags"]).get("customer", "") == r["x_CostCenter"]
        assert _close(Decimal(r["x_ChargebackCost"]), Decimal(r["BilledCost"]) * (1 + rate))
        per[r["x_CostCenter"]] += Decimal(r["x_ChargebackCost"])
    want = expected()
    assert set(per) == set(want)
    for customer, figures in want.items():
        assert _close(per[customer], figures[1]), customer


@needs_validator
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_focus_validator_passes_with_chargeback_columns(
    ledger: Path, definition: Path, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"focus.{suffix}"
    code, _, err = _cli(
        capsys,
        "export",
        "focus",
        "--period",
        PERIOD,
        "--source",
        f"sqlite:///{ledger}",
        "--out",
        str(out),
        "--chargeback",
        str(definition),
        "--unpriced",
        "flag",
    )
    assert code == 0, err
    if suffix == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        assert {"x_CostCenter", "x_ChargebackRate", "x_ChargebackCost"} <= set(table.column_names)
        assert table.schema.field("x_ChargebackCost").type == "double"
    assert focus_validator.available()
    assert_valid(out, tmp_path)


def test_export_bad_definition_is_one_line(ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("default = 0.15\n")
    code, out, err = _cli(
        capsys, "export", "focus", "--period", PERIOD, "--source", f"sqlite:///{ledger}", "--chargeback", str(f)
    )
    assert code == 2 and not out and err.count("\n") == 1 and "default = 0.15" in err and "'+15%'" in err


def test_python_api_focus_rows_and_report(ledger: Path) -> None:
    from tokenmeter.finops.focus import focus_rows, month_bounds

    cb = Chargeback({"acme": "+25%"}, default="+0%")
    reader = SQLiteReader(str(ledger))
    start, end = month_bounds(PERIOD)
    export = focus_rows(reader.usage(start, end), period_start=start, period_end=end, chargeback=cb)
    assert export.columns[-4:] == ("x_CostCenter", "x_CostCenterDimension", "x_ChargebackRate", "x_ChargebackCost")
    report = build_report(reader, start, end, by=("customer",), chargeback=cb)
    acme = next(g for g in report.by["customer"] if g.name == "acme")
    assert (
        acme.charge == acme.cost * Decimal("1.25") and report.total.cost == build_report(reader, start, end).total.cost
    )
    assert "charge" in to_csv(report).splitlines()[0] and to_json(report)["chargeback"]["default"] == "0"


def test_a_source_without_customers_is_refused_not_charged_the_default(
    definition: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a TSDB has no per-customer series: every row would silently take the default rate. Nothing listens on the
    # port: the refusal comes before any query.
    tsdb = "prometheus=http://127.0.0.1:9"
    code, _, err = _cli(capsys, "report", "--source", tsdb, "--chargeback", str(definition))
    assert code == 2 and err.count("\n") == 1 and "cost_center = 'customer' needs a source that keeps it" in err
    code, _, err = _cli(
        capsys, "export", "focus", "--period", PERIOD, "--source", tsdb, "--chargeback", str(definition)
    )
    assert code == 2 and "read the ledger (--source sqlite:///path)" in err
    from tokenmeter.finops import PrometheusReader

    Chargeback(cost_center="team").check_reader(PrometheusReader("http://127.0.0.1:9"))  # teams are labels: fine
