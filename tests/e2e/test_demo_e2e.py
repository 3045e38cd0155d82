"""The demo workload scraped by a REAL Prometheus: exact totals, and every dashboard and rule expression.

The workload runs twice with the same seed (identical calls, see tests/examples/test_demo.py) while
Prometheus scrapes the app's ``configure(prometheus_address=...)`` endpoint every second:

    phase 1 ... scrape at t_a ... phase 2 ... scrape at t_b

Every series exists at t_a, so an expression evaluated at t_b over the window ``[t_b - t_a]`` sees the
counters' exact phase-2 increase: no extrapolation at either end (Prometheus 2.x, as packaged by Debian,
selects a range including the sample at its start; 3.x would exclude it). :mod:`promql_reference` computes what
each expression must return from two scrapes of the app's own ``/metrics`` taken at the same moments.

Alerts: every alert expression is ``<query> <op> <threshold>``. Its query must return the reference
series, and the full expression exactly the series for which the reference passes the threshold; the
demo is built so that most alerts fire (runaway run, unpriced tokens, refused calls, waste, budget burn
and projected exhaustion) while ``TokenBudgetExhausted`` does not. ``promtool test rules`` checks the
``for:`` durations and annotations on synthetic series.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from backends import BACKENDS_DIR, Prometheus, free_port
from promql_reference import Reference, Result, Rising, Samples, parse_exposition

import tokenmeter
from examples.agent_service import WorkloadResult, demo_options, run_workload
from examples.grafana import dashboard
from examples.prometheus import rules
from examples.prometheus.promql import Compare, Expr, Render

RUNS, SEED = 30, 5
REPO = Path(__file__).resolve().parents[2]
ALL = {"$team": ".*", "$workflow": ".*"}
RULES_FILE = REPO / "examples" / "prometheus" / "tokenmeter-rules.yml"
RULES_TESTS = REPO / "examples" / "prometheus" / "tokenmeter-rules.test.yml"


@dataclass
class Phases:
    """Two identical workloads, the scrapes that frame the second one, and the meter that served both."""

    prometheus: Prometheus
    meter: tokenmeter.Meter
    first: WorkloadResult
    second: WorkloadResult
    reference: Reference
    t_a: float
    t_b: float

    @property
    def render(self) -> Render:
        return Render(window=f"{round((self.t_b - self.t_a) * 1000)}ms", inline=True, variables=ALL)

    def query(self, promql: str) -> Result:
        rows = self.prometheus.query(promql, at=self.t_b)
        out: Result = {}
        for row in rows:
            labels = {k: v for k, v in row["metric"].items() if k != "__name__"}
            out[frozenset(labels.items())] = float(row["value"][1])
        return out


def _scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        return parse_exposition(response.read().decode())


def _scraped_after(prom: Prometheus, target: str, t: float) -> float:
    """Timestamp of the first Prometheus scrape of ``target`` that started after ``t``."""
    rows = prom.wait_for(
        f'timestamp(up{{instance="{target}"}})', lambda r: len(r) == 1 and float(r[0]["value"][1]) > t, timeout=30
    )
    assert prom.value(prom.query(f'up{{instance="{target}"}}')) == 1.0
    return float(rows[0]["value"][1])


@pytest.fixture(scope="module")
def phases(prometheus_factory: Callable[..., Prometheus]) -> Iterator[Phases]:
    address = f"127.0.0.1:{free_port()}"
    prom = prometheus_factory(address, scrape_interval="1s")
    # Budgets sized well above both phases, so that phase 2 is admitted exactly like phase 1.
    meter = tokenmeter.configure(**demo_options(3 * RUNS), prometheus_address=address)
    try:
        assert meter.meter_provider in meter._owned, "tokenmeter must build the Prometheus exporter itself"
        first = run_workload(RUNS, SEED)
        done = time.time()
        before = _scrape(address)
        t_a = _scraped_after(prom, address, done)
        second = run_workload(RUNS, SEED)
        done = time.time()
        after = _scrape(address)
        t_b = _scraped_after(prom, address, done)
        yield Phases(prom, meter, first, second, Reference(before, after, t_b - t_a, ALL), t_a, t_b)
    finally:
        tokenmeter.unconfigure()


def _assert_matches(got: Result, want: Result, what: str) -> None:
    assert got, f"{what}: Prometheus returned nothing"
    assert set(got) == set(want), f"{what}: series {sorted(map(str, got))} != expected {sorted(map(str, want))}"
    for key, expected in want.items():
        value = got[key]
        assert math.isfinite(value), f"{what} {dict(key)}: {value}"
        if isinstance(expected, Rising):
            assert value > expected.floor, f"{what} {dict(key)}: {value} not above {expected.floor}"
        else:
            assert value == pytest.approx(expected, rel=1e-9, abs=1e-12), f"{what} {dict(key)}"


# -- exact totals ----------------------------------------------------------------------------------------
def test_the_two_phases_sent_the_same_calls(phases: Phases) -> None:
    one = [(c.team, c.workflow, c.model, c.outcome, c.usage, c.wasted) for c in phases.first.calls]
    two = [(c.team, c.workflow, c.model, c.outcome, c.usage, c.wasted) for c in phases.second.calls]
    assert one == two and phases.first.scripted


@pytest.mark.parametrize("by, label", [("team", "tokenmeter_team_name"), ("workflow", "gen_ai_workflow_name")])
def test_prometheus_holds_the_exact_totals(phases: Phases, by: str, label: str) -> None:
    ledger = phases.meter.ledger.rollup(by)
    wire: dict[str, list[Any]] = {}
    for call in phases.first.calls + phases.second.calls:
        if call.usage is not None:
            row = wire.setdefault(getattr(call, by), [tokenmeter.Usage(), Decimal(0)])
            row[0] = row[0] + call.usage
            row[1] += tokenmeter.PriceBook().cost("openai", call.model, call.usage).usd or Decimal(0)
    tokens = phases.query(f"sum by ({label}) (tokenmeter_tokens_total)")
    cost = phases.query(f"sum by ({label}) (tokenmeter_cost_USD_total)")
    assert {dict(k)[label] for k in tokens} == set(ledger) == set(wire)
    for name, (usage, usd) in wire.items():
        key = frozenset({(label, name)})
        assert tokens[key] == ledger[name].total_tokens == usage.total
        assert ledger[name].cost == usd  # the ledger is exact (Decimal); the exposition carries floats
        assert cost[key] == pytest.approx(float(usd), rel=1e-12)
        by_class = phases.query(f'sum by (tokenmeter_token_class) (tokenmeter_tokens_total{{{label}="{name}"}})')
        assert {dict(k)["tokenmeter_token_class"]: v for k, v in by_class.items()} == {
            c: n for c, n in usage.by_class() if n
        }


# -- dashboard -------------------------------------------------------------------------------------------
PANEL_TARGETS = [
    pytest.param(expr, id=f"{p.title}#{i}") for p in dashboard.panels() for i, (expr, _legend) in enumerate(p.targets)
]


@pytest.mark.parametrize("expr", PANEL_TARGETS)
def test_dashboard_query_returns_the_reference(phases: Phases, expr: Expr) -> None:
    _assert_matches(phases.query(expr.render(phases.render)), phases.reference.evaluate(expr), expr.render())


def test_dashboard_variables_list_the_demo_teams_and_workflows(phases: Phases) -> None:
    board = json.loads((REPO / "examples" / "grafana" / "tokenmeter-dashboard.json").read_text())
    queries = {v["name"]: v["query"] for v in board["templating"]["list"] if v["type"] == "query"}
    for name, values in (
        ("team", {"support", "payments", "data"}),
        ("workflow", {"support-triage", "refund", "nightly-summarisation"}),
    ):
        inner, label = queries[name][len("label_values(") : -1].rsplit(", ", 1)
        got = phases.query(f"group by ({label}) ({inner.replace('$team', '.*')})")
        assert {dict(k)[label] for k in got} == values


def test_every_dashboard_expression_is_covered() -> None:
    board = json.loads((REPO / "examples" / "grafana" / "tokenmeter-dashboard.json").read_text())
    in_json = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert in_json == [expr.render() for p in dashboard.panels() for expr, _ in p.targets]


# -- rules -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, expr", [pytest.param(n, e, id=n) for n, e in rules.all_expressions()])
def test_rule_expression_returns_the_reference(phases: Phases, name: str, expr: Expr) -> None:
    query = expr.inner if isinstance(expr, Compare) else expr
    _assert_matches(phases.query(query.render(phases.render)), phases.reference.evaluate(query), name)
    if isinstance(expr, Compare):
        fired = phases.query(expr.render(phases.render))
        assert set(fired) == set(phases.reference.evaluate(expr)), name


def test_the_demo_makes_the_alerts_fire(phases: Phases) -> None:
    firing = {a.name for a in rules.ALERTS if phases.query(a.expr.render(phases.render))}
    assert firing == {a.name for a in rules.ALERTS} - {"TokenBudgetExhausted"}


def _promtool() -> str:
    found = shutil.which("promtool", path=str(BACKENDS_DIR / "bin")) or shutil.which("promtool")
    if not found:
        message = "promtool not installed -- run `scripts/backends.sh install prometheus`"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def test_promtool_check_rules() -> None:
    out = subprocess.run(
        [_promtool(), "check", "rules", str(RULES_FILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules.RECORDING) + len(rules.ALERTS)} rules found" in out.stdout


def test_promtool_unit_tests_of_the_alerts() -> None:
    out = subprocess.run(
        [_promtool(), "test", "rules", str(RULES_TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=RULES_TESTS.parent,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
