"""The demo workload pushed over OTLP/HTTP by tokenmeter's own exporters to REAL backends.

* Metrics -> VictoriaMetrics (``configure(exporter="otlp", endpoint=.../opentelemetry)``), read back with
  PromQL: the exact token and cost totals by team and workflow.
* Traces -> Arize Phoenix (``configure(exporter="otlp", endpoint=...)``), read back through its REST API:
  every workflow span with its ``tokenmeter.rollup.*`` attributes equal to its run's calls, the child LLM
  spans with their ``tokenmeter.*`` attributes, the runaway run stopped by the per-run guard.

Screenshots: ``test_screenshots`` renders the runaway trace in Phoenix's UI and the demo's terminal report
with headless Chromium; with ``TOKENMETER_UPDATE_SCREENSHOTS=1`` it writes them to ``docs/img/`` (that is
how the README's images were made).
"""

from __future__ import annotations

import html
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from backends import BackendUnavailable, Phoenix, VictoriaMetrics, screenshot
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

import tokenmeter
from examples.agent_service import WorkloadResult, demo, demo_options, run_workload

RUNS, SEED = 30, 5
REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "docs" / "img"
PRICES = tokenmeter.PriceBook()


def _totals(result: WorkloadResult, by: str) -> dict[str, tuple[tokenmeter.Usage, Decimal]]:
    out: dict[str, tuple[tokenmeter.Usage, Decimal]] = {}
    for call in result.calls:
        if call.usage is not None:
            usage, cost = out.get(getattr(call, by), (tokenmeter.Usage(), Decimal(0)))
            out[getattr(call, by)] = (
                usage + call.usage,
                cost + (PRICES.cost("openai", call.model, call.usage).usd or Decimal(0)),
            )
    return out


# -- metrics: OTLP/HTTP push to VictoriaMetrics -----------------------------------------------------------
@pytest.fixture(scope="module")
def pushed(victoriametrics: VictoriaMetrics) -> Iterator[tuple[str, WorkloadResult]]:
    service = f"acme-agents-{uuid.uuid4().hex[:8]}"
    meter = tokenmeter.configure(
        **{**demo_options(RUNS), "service_name": service},
        exporter="otlp",
        endpoint=victoriametrics.base_url + "/opentelemetry",
        tracer_provider=TracerProvider(),
    )  # spans are not this test's business
    try:
        assert meter.meter_provider in meter._owned, "tokenmeter must build the OTLP metric exporter itself"
        result = run_workload(RUNS, SEED)
        assert meter.force_flush(timeout_millis=20_000)
    finally:
        tokenmeter.unconfigure()
    yield service, result


@pytest.mark.parametrize("by, label", [("team", "tokenmeter_team_name"), ("workflow", "gen_ai_workflow_name")])
def test_victoriametrics_holds_the_exact_totals(
    victoriametrics: VictoriaMetrics, pushed: tuple[str, WorkloadResult], by: str, label: str
) -> None:
    service, result = pushed
    expected = _totals(result, by)

    def by_label(promql: str) -> dict[str, float]:
        rows = victoriametrics.wait_for(promql, lambda r: len(r) == len(expected), timeout=30)
        return {row["metric"][label]: float(row["value"][1]) for row in rows}

    tokens = by_label(f'sum by ({label}) (tokenmeter_tokens_total{{service_name="{service}"}})')
    cost = by_label(f'sum by ({label}) (tokenmeter_cost_USD_total{{service_name="{service}"}})')
    assert set(tokens) == set(cost) == set(expected) == set(TEAMS_OR_WORKFLOWS[by])
    for name, (usage, usd) in expected.items():
        assert tokens[name] == usage.total
        assert cost[name] == pytest.approx(float(usd), rel=1e-12)
        rows = victoriametrics.query(
            f'sum by (tokenmeter_token_class) (tokenmeter_tokens_total{{service_name="{service}", {label}="{name}"}})'
        )
        assert {r["metric"]["tokenmeter_token_class"]: float(r["value"][1]) for r in rows} == {
            c: n for c, n in usage.by_class() if n
        }


TEAMS_OR_WORKFLOWS = {
    "team": ("support", "payments", "data"),
    "workflow": ("support-triage", "refund", "nightly-summarisation"),
}


# -- traces: OTLP/HTTP to Phoenix ------------------------------------------------------------------------
@dataclass
class Traced:
    project: str
    result: WorkloadResult
    spans: list[dict[str, Any]]

    def children(self, span: dict[str, Any]) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["parent_id"] == span["context"]["span_id"]]

    def descendants(self, span: dict[str, Any]) -> list[dict[str, Any]]:
        out, todo = [], [span]
        while todo:
            kids = self.children(todo.pop())
            out.extend(kids)
            todo.extend(kids)
        return out


@pytest.fixture(scope="module")
def traced(phoenix: Phoenix) -> Iterator[Traced]:
    project = f"tokenmeter-demo-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        # Phoenix files spans by this resource attribute; OTEL_RESOURCE_ATTRIBUTES is the standard way in.
        mp.setenv("OTEL_RESOURCE_ATTRIBUTES", f"openinference.project.name={project}")
        meter = tokenmeter.configure(
            **demo_options(RUNS), exporter="otlp", endpoint=phoenix.base_url, meter_provider=MeterProvider()
        )
        try:
            assert meter.tracer_provider in meter._owned
            result = run_workload(RUNS, SEED)
            assert meter.force_flush(timeout_millis=20_000)
        finally:
            tokenmeter.unconfigure()
    sent = sum(1 for c in result.calls if c.outcome == "ok")
    spans = phoenix.wait_for_spans(
        project,
        lambda s: (
            sum(1 for x in s if x["name"].startswith("chat ")) >= sent
            and sum(1 for x in s if x["name"].startswith("invoke_workflow ")) == RUNS
        ),
        timeout=60,
    )
    yield Traced(project, result, spans)


def test_phoenix_shows_every_workflow_run_with_its_rollups(traced: Traced) -> None:
    workflows = sorted(
        (s for s in traced.spans if s["name"].startswith("invoke_workflow ")), key=lambda s: s["start_time"]
    )
    assert len(workflows) == RUNS
    for run, span in zip(traced.result.runs, workflows, strict=True):
        attrs = span["attributes"]
        usage = traced.result.run_usage(run.index)
        cost = sum(
            (
                PRICES.cost("openai", c.model, c.usage).usd or Decimal(0)
                for c in traced.result.calls
                if c.run == run.index and c.usage
            ),
            Decimal(0),
        )
        assert span["parent_id"] is None and span["name"] == f"invoke_workflow {run.workflow}"
        assert attrs["tokenmeter.team.name"] == run.team and attrs["gen_ai.workflow.name"] == run.workflow
        for token_class, n in usage.by_class():
            assert attrs[f"tokenmeter.rollup.tokens.{token_class}"] == n
        assert attrs["tokenmeter.rollup.tokens.total"] == usage.total
        assert attrs["tokenmeter.rollup.cost.usd"] == pytest.approx(float(cost), rel=1e-9, abs=1e-12)
        sent = [c for c in traced.result.calls if c.run == run.index and c.outcome == "ok"]
        assert attrs["tokenmeter.rollup.calls"] == len(sent)
        llm = [s for s in traced.descendants(span) if s["name"].startswith("chat ")]
        assert sorted(s["attributes"]["gen_ai.usage.input_tokens"] for s in llm) == sorted(
            c.usage.input_total for c in sent if c.usage
        )
        assert {s["context"]["trace_id"] for s in llm} == {span["context"]["trace_id"]}
        assert all(s["attributes"]["tokenmeter.run.id"] == attrs["tokenmeter.run.id"] for s in llm)
        if run.outcome == "stopped":
            assert span["status_code"] == "ERROR" and attrs["error.type"] == "BudgetExceeded"
        else:
            assert span["status_code"] != "ERROR"


def test_phoenix_llm_spans_carry_tokenmeter_attributes(traced: Traced) -> None:
    llm = [s for s in traced.spans if s["name"].startswith("chat ")]
    assert len(llm) == sum(1 for c in traced.result.calls if c.outcome == "ok")
    for span in llm:
        a = span["attributes"]
        assert span["span_kind"] == "LLM"  # Phoenix recognises the GenAI conventions
        assert a["gen_ai.provider.name"] == "openai" and a["gen_ai.operation.name"] == "chat"
        assert a["tokenmeter.model.tier"] in ("small", "standard", "frontier")
        assert a["tokenmeter.team.name"] in ("support", "payments", "data")
        assert a["llm.token_count.total"] == a["gen_ai.usage.input_tokens"] + a["gen_ai.usage.output_tokens"]
        if a["gen_ai.request.model"] == "llama-3.1-8b-instruct":
            assert a["tokenmeter.cost.source"] == "unpriced" and "tokenmeter.cost.usd" not in a
        else:
            assert a["tokenmeter.cost.source"].startswith("table:") and a["tokenmeter.cost.usd"] > 0
        decisions = [e for e in span["events"] if e["name"] == "tokenmeter.policy.decision"]
        assert [e["attributes"]["tokenmeter.policy.decision"] for e in decisions] in (
            ["allow"],
            ["approve"],
            ["downgrade"],
        )


def test_phoenix_shows_where_the_runaway_was_stopped(traced: Traced) -> None:
    (stopped,) = [r for r in traced.result.runs if r.outcome == "stopped"]
    root = next(
        s for s in traced.spans if s["name"] == "invoke_workflow support-triage" and s["status_code"] == "ERROR"
    )
    research = next(s for s in traced.descendants(root) if s["name"] == "step research")
    assert research["status_code"] == "ERROR" and research["attributes"]["error.type"] == "BudgetExceeded"
    blocks = [e for e in research["events"] if e["name"] == "tokenmeter.policy.decision"]
    assert [e["attributes"]["tokenmeter.policy.decision"] for e in blocks] == ["block"]
    assert blocks[0]["attributes"]["tokenmeter.policy.reason"] == stopped.detail
    searches = [s for s in traced.descendants(research) if s["name"] == "chat gpt-4o"]
    assert len(searches) == sum(
        1 for c in traced.result.calls if c.run == stopped.index and c.outcome == "ok" and c.model == "gpt-4o"
    )


# -- screenshots -----------------------------------------------------------------------------------------
def _terminal_html(text: str) -> str:
    return (
        "<!doctype html><meta charset='utf-8'><body style='margin:0;background:#1e1e2e'>"
        "<pre style='margin:0;padding:18px 22px;color:#e6e6e6;font:14px/1.35 \"DejaVu Sans Mono\",monospace'>"
        f"<span style='color:#89b4fa'>$ make demo</span>\n{html.escape(text)}</pre>"
    )


def test_screenshots(phoenix: Phoenix, traced: Traced, tmp_path: Path) -> None:
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        # optional like in the backends self-test: `install all` leaves chromium out (a system-wide apt install)
        pytest.skip("chromium not installed (optional) -- run `scripts/backends.sh install chromium`")
    project_id = next(p["id"] for p in _projects(phoenix) if p["name"] == traced.project)
    root = next(
        s for s in traced.spans if s["name"] == "invoke_workflow support-triage" and s["status_code"] == "ERROR"
    )
    out = io.StringIO()
    demo(out=out)
    (tmp_path / "report.html").write_text(_terminal_html(out.getvalue()))
    shots = {
        "phoenix-trace.png": (
            f"{phoenix.base_url}/projects/{project_id}/traces/{root['context']['trace_id']}",
            (1600, 1000),
        ),
        "demo-report.png": ((tmp_path / "report.html").as_uri(), (1260, 1900)),
    }
    for name, (url, size) in shots.items():
        try:
            png = screenshot(url, tmp_path / name, window_size=size)
        except BackendUnavailable as e:
            pytest.fail(str(e))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        if os.environ.get("TOKENMETER_UPDATE_SCREENSHOTS") == "1":
            IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, IMAGES / name)


def _projects(phoenix: Phoenix) -> list[dict[str, Any]]:
    import json
    import urllib.request

    with urllib.request.urlopen(phoenix.base_url + "/v1/projects", timeout=10) as r:
        return list(json.loads(r.read())["data"])
