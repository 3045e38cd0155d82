"""The demo agent service: its printed report equals what was metered, and both equal what went over the wire.

The demo runs in-process with in-memory OTel providers (``demo(..., tracer_provider=, meter_provider=)``), so
the printed ledger report is checked against the ``tokenmeter.*`` counters, and both against the service's
own call log: the usage it scripted on the local fake provider, priced independently with ``PriceBook``.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tokenmeter
from examples.agent_service import DEFAULT_RUNS, DEFAULT_SEED, WorkloadResult, demo, demo_options, run_workload
from examples.agent_service.agents import FRONTIER, TRIAGE_MAX_TOKENS
from tokenmeter.testing import capture
from tokenmeter.testing.fakes import FakeProvider

RUNS, SEED = DEFAULT_RUNS, DEFAULT_SEED  # exactly what `make demo` runs
REPO = Path(__file__).resolve().parents[2]
PRICES = tokenmeter.PriceBook()
DIMENSION = {
    "team": "tokenmeter.team.name",
    "workflow": "gen_ai.workflow.name",
    "tier": "tokenmeter.model.tier",
    "model": "gen_ai.request.model",
}


@dataclass
class DemoRun:
    report: str
    result: WorkloadResult
    reader: InMemoryMetricReader
    spans: list[ReadableSpan]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            p
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == metric
            for p in m.data.data_points
        ]

    def counter(self, metric: str, **attrs: Any) -> float:
        return float(
            sum(p.value for p in self.points(metric) if all(p.attributes.get(k) == v for k, v in attrs.items()))
        )

    def table(self, title: str) -> dict[str, list[str]]:
        """Rows of one 'By ...:' table of the printed report: name -> the other columns."""
        block = self.report.split(f"By {title}:\n", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
        return {row.split()[0]: row.split()[1:] for row in block}


def _demo(runs: int, seed: int, **kwargs: Any) -> DemoRun:
    """The demo in-process, its telemetry in memory."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    out = io.StringIO()
    result = demo(runs, seed, out=out, tracer_provider=tracer_provider, meter_provider=meter_provider, **kwargs)
    return DemoRun(out.getvalue(), result, reader, list(exporter.get_finished_spans()))


@pytest.fixture(scope="module")
def run() -> DemoRun:
    return _demo(RUNS, SEED)


def _key(call: Any, by: str) -> str:
    return str(
        {
            "team": call.team,
            "workflow": call.workflow,
            "model": call.model,
            "tier": {"gpt-4o-mini": "small", "llama-3.1-8b-instruct": "small", "gpt-4o": "standard", "o1": "frontier"}[
                call.model
            ],
        }[by]
    )


def _wire(result: WorkloadResult, by: str) -> dict[str, dict[str, Any]]:
    """Per team / workflow / tier / model from the call log: usage, exact cost, unpriced tokens, calls."""
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"usage": tokenmeter.Usage(), "cost": Decimal(0), "unpriced": 0, "sent": 0, "refused": 0}
    )
    for call in result.calls:
        row = out[_key(call, by)]
        if call.usage is None:
            row["refused"] += 1
            continue
        row["sent"] += 1
        row["usage"] = row["usage"] + call.usage
        cost = PRICES.cost("openai", call.model, call.usage).usd
        if cost is None:
            row["unpriced"] += call.usage.total
        else:
            row["cost"] += cost
    return dict(out)


# -------------------------------------------------------------------------------------------------------
def test_the_workload_covers_every_case(run: DemoRun) -> None:
    r = run.result
    assert r.scripted and len(r.runs) == RUNS
    assert {c.team for c in r.calls} == {"support", "payments", "data"}
    assert {c.workflow for c in r.calls} == {"support-triage", "refund", "nightly-summarisation"}
    assert Counter(run_.outcome for run_ in r.runs) == {"ok": RUNS - 1, "stopped": 1}
    outcomes = Counter(c.outcome for c in r.calls)
    assert outcomes["block"] == 1 and outcomes["deny"] > 0 and outcomes["error"] == 0
    assert any(c.wasted == "retried" for c in r.calls) and any(c.wasted == "failed" for c in r.calls)
    assert any(c.stream for c in r.calls)
    assert sum(c.usage.cache_read for c in r.calls if c.usage) > 0
    assert sum(c.usage.reasoning for c in r.calls if c.usage) > 0


@pytest.mark.parametrize("by", ["team", "workflow", "tier", "model"])
def test_report_tables_equal_counters_and_wire(run: DemoRun, by: str) -> None:
    table, wire, dim = run.table(by), _wire(run.result, by), DIMENSION[by]
    assert set(table) == set(wire)
    for name, cols in table.items():
        calls, blocked, tokens, cost, unpriced = cols[:5]
        w = wire[name]
        assert int(calls) == w["sent"] == run.counter("tokenmeter.calls", **{dim: name, "tokenmeter.outcome": "ok"})
        assert (
            int(blocked)
            == w["refused"]
            == run.counter("tokenmeter.calls", **{dim: name, "tokenmeter.outcome": "blocked"})
        )
        assert int(tokens.replace(",", "")) == w["usage"].total == run.counter("tokenmeter.tokens", **{dim: name})
        assert (
            int(unpriced.replace(",", "")) == w["unpriced"] == run.counter("tokenmeter.tokens.unpriced", **{dim: name})
        )
        assert cost == ("unpriced" if w["unpriced"] == w["usage"].total else f"{w['cost']:.6f}")
        assert run.counter("tokenmeter.cost", **{dim: name}) == pytest.approx(float(w["cost"]), rel=1e-9, abs=1e-12)
        for token_class, n in w["usage"].by_class():
            assert run.counter("tokenmeter.tokens", **{dim: name, "tokenmeter.token.class": token_class}) == n


def test_report_totals_and_token_classes(run: DemoRun) -> None:
    wire = _wire(run.result, "team")
    usage = sum((w["usage"] for w in wire.values()), tokenmeter.Usage())
    cost = sum((w["cost"] for w in wire.values()), Decimal(0))
    unpriced = sum(w["unpriced"] for w in wire.values())
    sent, refused = sum(w["sent"] for w in wire.values()), sum(w["refused"] for w in wire.values())
    assert (
        f"Total: {sent:,} calls sent ({refused:,} blocked before sending), {usage.total:,} tokens, ${cost:.6f} "
        f"+ {unpriced:,} unpriced tokens"
    ) in run.report
    table = run.table("token class")
    assert {c: int(cols[0].replace(",", "")) for c, cols in table.items()} == {c: n for c, n in usage.by_class() if n}


def test_waste_by_reason_matches_the_call_log(run: DemoRun) -> None:
    calls = run.result.calls
    for reason in ("retried", "failed"):
        expected = sum(c.usage.total for c in calls if c.wasted == reason and c.usage)
        assert expected > 0
        assert run.counter("tokenmeter.tokens.wasted", **{"tokenmeter.waste.reason": reason}) == expected
        cost = sum(PRICES.cost("openai", c.model, c.usage).usd or 0 for c in calls if c.wasted == reason and c.usage)
        assert run.counter("tokenmeter.cost.wasted", **{"tokenmeter.waste.reason": reason}) == pytest.approx(
            float(cost), rel=1e-9
        )
    table = run.table("team")
    for team in table:
        wasted = sum(c.usage.total for c in calls if c.team == team and c.wasted and c.usage)
        assert int(table[team][5].replace(",", "")) == wasted
    total = sum(c.usage.total for c in calls if c.wasted and c.usage)
    assert f"Wasted on retries and failed steps: {total:,} tokens" in run.report


def test_per_run_spread_matches_the_call_log(run: DemoRun) -> None:
    block = run.report.split("Per run (tokens and cost per workflow run):\n", 1)[1].split("\n\n", 1)[0]
    rows = {line.split()[0]: line.split()[1:] for line in block.splitlines()[1:]}
    per_run: dict[str, list[int]] = defaultdict(list)
    for r in run.result.runs:
        per_run[r.workflow].append(run.result.run_usage(r.index).total)
    assert set(rows) == set(per_run)
    for workflow, tokens in per_run.items():
        tokens.sort()
        n, p50, _p95, _p99, top, _ratio = rows[workflow][:6]
        assert (
            int(n)
            == len(tokens)
            == sum(
                p.count for p in run.points("tokenmeter.run.tokens") if p.attributes["gen_ai.workflow.name"] == workflow
            )
        )
        assert int(p50.replace(",", "")) == tokens[round(0.5 * (len(tokens) - 1))]
        assert int(top.replace(",", "")) == tokens[-1]
        assert sum(
            p.sum for p in run.points("tokenmeter.run.tokens") if p.attributes["gen_ai.workflow.name"] == workflow
        ) == sum(tokens)
    # the runaway: far above its workflow's median, stopped by the guard at (not over) its limit
    stopped = next(r for r in run.result.runs if r.outcome == "stopped")
    worst = run.result.run_usage(stopped.index).total
    assert worst <= TRIAGE_MAX_TOKENS
    assert float(rows["support-triage"][5].rstrip("x")) >= 10
    assert rows["support-triage"][-1] == stopped_run_id(run)


def test_governance_decisions_match_the_call_log(run: DemoRun) -> None:
    calls = run.result.calls
    decisions = {
        d: run.counter("tokenmeter.policy.decisions", **{"tokenmeter.policy.decision": d})
        for d in ("allow", "approve", "deny", "downgrade", "block")
    }
    ok = [c for c in calls if c.outcome == "ok"]
    assert decisions["approve"] == sum(1 for c in ok if c.model == c.requested_model == FRONTIER) > 0
    assert decisions["downgrade"] == sum(1 for c in ok if c.model != c.requested_model) > 0
    assert decisions["deny"] == sum(1 for c in calls if c.outcome == "deny") > 0
    assert decisions["block"] == 1
    assert decisions["allow"] == len(ok) - decisions["approve"] - decisions["downgrade"]
    assert all(c.team == "payments" for c in ok if c.model == FRONTIER)


def test_workflow_spans_roll_up_their_runs(run: DemoRun) -> None:
    workflows = sorted((s for s in run.spans if s.name.startswith("invoke_workflow ")), key=lambda s: s.start_time or 0)
    assert len(workflows) == RUNS
    for record, span in zip(run.result.runs, workflows, strict=True):
        attrs = span.attributes or {}
        usage = run.result.run_usage(record.index)
        assert attrs["gen_ai.workflow.name"] == record.workflow
        assert attrs["tokenmeter.team.name"] == record.team
        for token_class, n in usage.by_class():
            assert attrs[f"tokenmeter.rollup.tokens.{token_class}"] == n
        assert attrs.get("error.type") == (None if record.outcome == "ok" else "BudgetExceeded")
    llm = [s for s in run.spans if s.name.startswith("chat ")]
    assert len(llm) == sum(1 for c in run.result.calls if c.outcome == "ok")
    for span in llm:
        attrs = span.attributes or {}
        assert {
            "tokenmeter.team.name",
            "gen_ai.workflow.name",
            "tokenmeter.model.tier",
            "tokenmeter.run.id",
            "gen_ai.usage.input_tokens",
            "tokenmeter.cost.source",
        } <= set(attrs)


def stopped_run_id(run: DemoRun) -> str:
    """The run id the workflow span of the stopped run carries (the report names it as the worst run)."""
    spans = [
        s
        for s in run.spans
        if s.name == "invoke_workflow support-triage" and (s.attributes or {}).get("error.type") == "BudgetExceeded"
    ]
    assert len(spans) == 1
    return str((spans[0].attributes or {})["tokenmeter.run.id"])


def test_report_sections(run: DemoRun) -> None:
    """The product's report, as `make demo` prints it: every FinOps section from the ledger file."""
    runs = run.result.runs
    ok = sum(1 for r in runs if r.outcome == "ok")
    assert f"Reliability: {ok} of {len(runs)} runs succeeded" in run.report
    assert "$ tokenmeter report --source sqlite:///" in run.report
    for needle in (
        "Tier mix:",
        "Unit economics per workflow:",
        "Step success by depth:",
        "Cache: ",
        "Cost per successful run: $",
        "Unpriced: ",
        "llama-3.1-8b-instruct",
        "Worst runs",
        "Budget: 'support-daily' passed 50%",
    ):
        assert needle in run.report, needle


def test_same_seed_same_workload() -> None:
    """The e2e tests rely on it: two runs of one seed send exactly the same calls."""
    logs = []
    for _ in range(2):
        with capture(**demo_options(12)):
            calls = run_workload(12, 3).calls
        logs.append([(c.team, c.workflow, c.model, c.outcome, c.usage, c.wasted) for c in calls])
    assert logs[0] == logs[1]


@pytest.mark.parametrize("model", [None, "local-model"])
def test_against_an_unscripted_openai_compatible_server(model: str | None) -> None:
    """--base-url (and --model): nothing is scripted, the server's own usage is metered."""
    with FakeProvider() as server:
        run = _demo(6, 1, base_url=server.url + "/v1", model=model)
        models = {r.model for r in server.requests}
        assert models == {model} if model else {"gpt-4o-mini", "gpt-4o", "llama-3.1-8b-instruct"} <= models
        sent = sum(1 for c in run.result.calls if c.outcome == "ok")
        assert not run.result.scripted and all(c.usage is None for c in run.result.calls)
        assert len(server.requests) == sent > 0
    assert run.counter("tokenmeter.calls", **{"tokenmeter.outcome": "ok"}) == sent
    assert run.counter("tokenmeter.tokens") > 0
    assert "By team:" in run.report
    assert all(r.outcome == "ok" for r in run.result.runs if r.workflow != "support-triage")


def test_make_demo_command_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "examples.agent_service", "--runs", "8", "--seed", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "By team:" in proc.stdout and "$ tokenmeter report" in proc.stdout and "Tier mix:" in proc.stdout
    assert "Traceback" not in proc.stderr
