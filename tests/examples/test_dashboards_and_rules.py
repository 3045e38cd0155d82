"""The checked-in dashboard JSON and rules YAML are what their generators produce; the collector config hangs together.

That every expression returns the right data from a real Prometheus is tests/e2e/test_demo_e2e.py's job.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

import tokenmeter
from examples.grafana import dashboard
from examples.prometheus import rules
from examples.prometheus.promql import Compare
from tokenmeter.testing import capture

REPO = Path(__file__).resolve().parents[2]
BOARD = json.loads(dashboard.OUTPUT.read_text())
yaml = pytest.importorskip("yaml")


@pytest.mark.skipif(
    importlib.util.find_spec("grafana_foundation_sdk") is None,
    reason="grafana-foundation-sdk (Python >= 3.11, [dev] extra) is not installed",
)
def test_dashboard_json_is_generated_from_code() -> None:
    assert dashboard.render_dashboard() == dashboard.OUTPUT.read_text(), (
        "examples/grafana/tokenmeter-dashboard.json is stale: run `python -m examples.grafana.dashboard`"
    )


def test_rules_yaml_is_generated_from_code() -> None:
    assert rules.render_rules() == rules.OUTPUT.read_text(), (
        "examples/prometheus/tokenmeter-rules.yml is stale: run `python -m examples.prometheus.rules`"
    )


def _panels() -> list[dict[str, Any]]:
    return [p for p in BOARD["panels"] if p["type"] != "row"]


def test_dashboard_uses_a_datasource_variable_everywhere() -> None:
    variables = {v["name"]: v for v in BOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("team", "workflow"):
        assert variables[name]["datasource"]["uid"] == "${datasource}"
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    for panel in _panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}" and target["expr"], panel["title"]
    assert not any("${DS_" in json.dumps(BOARD) for _ in [0])  # no hard-coded import-time datasource


def test_dashboard_layout() -> None:
    panels = _panels()
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles))
    assert {r["title"] for r in BOARD["panels"] if r["type"] == "row"} == {t for t, _ in dashboard.ROWS}
    cells: set[tuple[int, int]] = set()
    for p in BOARD["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
    # the list: tokens and cost by team / workflow / tier / model, cost by token class, wasted share,
    # per-run p50/p99 and the multiplier, unpriced tokens, budget utilization, policy decisions
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for needle in (
        "by (tokenmeter_team_name)",
        "by (gen_ai_workflow_name)",
        "by (tokenmeter_model_tier)",
        "gen_ai_request_model",
        "by (tokenmeter_token_class)",
        "tokenmeter_tokens_wasted_total",
        "histogram_quantile(0.5, ",
        "histogram_quantile(0.99, ",
        "tokenmeter_tokens_unpriced_total",
        "tokenmeter_budget_utilization",
        "tokenmeter_policy_decisions_total",
    ):
        assert needle in exprs, needle


def test_every_alert_is_a_query_and_a_threshold() -> None:
    doc = yaml.safe_load(rules.OUTPUT.read_text())
    alerts = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    assert [a["alert"] for a in alerts] == [a.name for a in rules.ALERTS]
    for alert, spec in zip(alerts, rules.ALERTS, strict=True):
        assert isinstance(spec.expr, Compare)
        assert alert["labels"]["severity"] in ("info", "warning", "critical")
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
    names = {a.name for a in rules.ALERTS}
    assert {
        "TokenBudgetBurnRateHigh",
        "TokenBudgetProjectedExhaustion",
        "TokenRunawayRuns",
        "TokenUnpricedTokens",
    } <= names


def test_collector_config_pipelines_reference_defined_components() -> None:
    config = yaml.safe_load((REPO / "examples" / "collector" / "otelcol.yaml").read_text())
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"metrics", "traces"}
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for name in pipeline[kind]:
                assert name in config[kind], f"{kind[:-1]} {name} is used but not defined"
    assert "tail_sampling" not in pipelines["metrics"]["processors"], "metering must never be sampled"
    assert set(config["service"]["extensions"]) <= set(config["extensions"])


def test_collector_sampling_keys_are_attributes_tokenmeter_writes() -> None:
    config = yaml.safe_load((REPO / "examples" / "collector" / "otelcol.yaml").read_text())
    keys = {
        p[p["type"]]["key"] for p in config["processors"]["tail_sampling"]["policies"] if "key" in p.get(p["type"], {})
    }
    with capture() as cap:
        with tokenmeter.workflow("w", team="t"):
            tokenmeter.record("openai", "o1", tokenmeter.Usage(input=10, output=5))
        written = {k for s in cap.spans for k in (s.attributes or {})}
    assert keys and keys <= written
