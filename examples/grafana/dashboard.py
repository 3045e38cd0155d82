"""The tokenmeter Grafana dashboard, built from code with ``grafana-foundation-sdk``.

``python -m examples.grafana.dashboard`` writes ``examples/grafana/tokenmeter-dashboard.json`` (checked in;
a test fails when the two differ). Import that file in Grafana (Dashboards -> New -> Import) and pick a
Prometheus-compatible data source (Prometheus, Mimir, VictoriaMetrics, Thanos...) for ``$datasource``.

Rows follow the FinOps reading order: the bill, spend by attribution (team / workflow / tier / model /
token class), waste, per-run spread (the 5-30x and 50x story), governance (budgets, policy decisions,
refused calls, unpriced tokens), then the GenAI semantic-convention histograms any GenAI dashboard knows.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from examples.prometheus.promql import (
    AGENT,
    BUDGET,
    BUDGET_NAME,
    CALLS,
    COST,
    DECISION,
    DECISIONS,
    DURATION,
    MODEL,
    OUTCOME,
    PROVIDER,
    RANGE,
    RUN_COST,
    RUN_STEPS,
    RUN_TOKENS,
    TEAM,
    TIER,
    TOKEN_CLASS,
    TOKEN_TYPE,
    TOKEN_USAGE,
    TOKENS,
    UNPRICED,
    WASTE_REASON,
    WASTED_COST,
    WASTED_TOKENS,
    WORKFLOW,
    Aggregate,
    Expr,
    Selector,
    deriv,
    increase,
    max_by,
    quantile,
    rate,
    sum_by,
)

OUTPUT = Path(__file__).with_name("tokenmeter-dashboard.json")
UID = "tokenmeter-finops"
HOUR = 3600


def f(metric: str, **equal: str) -> Selector:
    """``metric`` filtered by the dashboard's team and workflow variables (plus ``label="value"`` matchers)."""
    s = Selector(metric).where(TEAM, "=~", "$team").where(WORKFLOW, "=~", "$workflow")
    for label, value in equal.items():
        s = s.where(label, "=~" if "|" in value else "=", value)
    return s


def spread(bucket: str, labels: tuple[str, ...], window: str = "$__rate_interval") -> Expr:
    """p99 over p50 of a per-run histogram: how much the expensive runs cost against the typical one."""
    return quantile(0.99, f(bucket), labels, window) / quantile(0.5, f(bucket), labels, window)


@dataclass(frozen=True)
class Panel:
    """One panel: what it shows (PromQL targets with legends) and how."""

    title: str
    kind: str  # stat | timeseries | table | bargauge
    unit: str
    targets: tuple[tuple[Expr, str], ...]
    description: str
    width: int = 8


def per_hour(expr: Expr) -> Expr:
    """A per-second rate as a per-hour one (money reads better per hour)."""
    return expr * HOUR


ROWS: list[tuple[str, list[Panel]]] = [
    (
        "The bill (dashboard time range)",
        [
            Panel(
                "Spend",
                "stat",
                "currencyUSD",
                ((sum_by((), increase(f(COST))), "spend"),),
                "Priced tokens x price, summed over the selected time range.",
                4,
            ),
            Panel(
                "Tokens",
                "stat",
                "short",
                ((sum_by((), increase(f(TOKENS))), "tokens"),),
                "Every token class: input, cache reads and writes, output, reasoning.",
                4,
            ),
            Panel(
                "Unpriced tokens",
                "stat",
                "short",
                ((sum_by((), increase(f(UNPRICED))), "unpriced"),),
                "Tokens of models without a price: metered, never billed as $0. Add them to configure(prices=...).",
                4,
            ),
            Panel(
                "Wasted share",
                "stat",
                "percentunit",
                ((sum_by((), increase(f(WASTED_TOKENS))) / sum_by((), increase(f(TOKENS))), "wasted"),),
                "Tokens of retried attempts and failed steps over all tokens.",
                4,
            ),
            Panel(
                "Worst p99/p50 run",
                "stat",
                "suffix:x",
                ((Aggregate("max", (), spread(RUN_TOKENS, (WORKFLOW,), RANGE)), "p99/p50"),),
                "Tokens of the p99 run over the median run, for the workflow where the gap is widest (edge cases "
                "cost 50x the nominal path).",
                4,
            ),
            Panel(
                "Calls refused before sending",
                "stat",
                "short",
                ((sum_by((), increase(f(CALLS, **{OUTCOME: "blocked"}))), "blocked"),),
                "Calls a per-run guard, a budget or the tier policy stopped before they were sent.",
                4,
            ),
        ],
    ),
    (
        "Spend by attribution",
        [
            Panel(
                "Cost by team",
                "timeseries",
                "currencyUSD",
                ((per_hour(sum_by((TEAM,), rate(f(COST)))), "{{tokenmeter_team_name}}"),),
                "USD per hour.",
                8,
            ),
            Panel(
                "Cost by workflow",
                "timeseries",
                "currencyUSD",
                ((per_hour(sum_by((WORKFLOW,), rate(f(COST)))), "{{gen_ai_workflow_name}}"),),
                "USD per hour.",
                8,
            ),
            Panel(
                "Cost by model tier",
                "timeseries",
                "currencyUSD",
                ((per_hour(sum_by((TIER,), rate(f(COST)))), "{{tokenmeter_model_tier}}"),),
                "USD per hour by small / standard / frontier (tier from the model's price or configure(tiers=...)).",
                8,
            ),
            Panel(
                "Cost by model",
                "timeseries",
                "currencyUSD",
                (
                    (
                        per_hour(sum_by((PROVIDER, MODEL), rate(f(COST)))),
                        "{{gen_ai_provider_name}} {{gen_ai_request_model}}",
                    ),
                ),
                "USD per hour by provider and requested model (after any policy downgrade).",
                8,
            ),
            Panel(
                "Cost by token class",
                "timeseries",
                "currencyUSD",
                ((per_hour(sum_by((TOKEN_CLASS,), rate(f(COST)))), "{{tokenmeter_token_class}}"),),
                "USD per hour by input / cache_read / cache_write / output / reasoning.",
                8,
            ),
            Panel(
                "Tokens by token class",
                "timeseries",
                "short",
                ((sum_by((TOKEN_CLASS,), rate(f(TOKENS))), "{{tokenmeter_token_class}}"),),
                "Tokens per second.",
                8,
            ),
            Panel(
                "Tokens by team",
                "timeseries",
                "short",
                ((sum_by((TEAM,), rate(f(TOKENS))), "{{tokenmeter_team_name}}"),),
                "Tokens per second.",
                8,
            ),
            Panel(
                "Tokens by model tier",
                "timeseries",
                "short",
                ((sum_by((TIER,), rate(f(TOKENS))), "{{tokenmeter_model_tier}}"),),
                "Tokens per second.",
                8,
            ),
            Panel(
                "Tokens by workflow and agent",
                "timeseries",
                "short",
                ((sum_by((WORKFLOW, AGENT), rate(f(TOKENS))), "{{gen_ai_workflow_name}} / {{gen_ai_agent_name}}"),),
                "Tokens per second: which agent of a workflow burns them.",
                8,
            ),
            Panel(
                "Spend by team and workflow",
                "table",
                "currencyUSD",
                ((sum_by((TEAM, WORKFLOW), increase(f(COST))), ""),),
                "USD over the selected time range.",
                24,
            ),
        ],
    ),
    (
        "Waste",
        [
            Panel(
                "Wasted share by workflow",
                "timeseries",
                "percentunit",
                (
                    (
                        sum_by((WORKFLOW,), rate(f(WASTED_TOKENS))) / sum_by((WORKFLOW,), rate(f(TOKENS))),
                        "{{gen_ai_workflow_name}}",
                    ),
                ),
                "Tokens of retried attempts and failed steps over all tokens of the workflow.",
                8,
            ),
            Panel(
                "Wasted cost by workflow and reason",
                "timeseries",
                "currencyUSD",
                (
                    (
                        per_hour(sum_by((WORKFLOW, WASTE_REASON), rate(f(WASTED_COST)))),
                        "{{gen_ai_workflow_name}} ({{tokenmeter_waste_reason}})",
                    ),
                ),
                "USD per hour spent on attempts that were retried or steps that failed.",
                8,
            ),
            Panel(
                "Cache-read share of input tokens",
                "timeseries",
                "percentunit",
                (
                    (
                        sum_by((MODEL,), rate(f(TOKENS, **{TOKEN_CLASS: "cache_read"})))
                        / sum_by((MODEL,), rate(f(TOKENS, **{TOKEN_CLASS: "input|cache_read|cache_write"}))),
                        "{{gen_ai_request_model}}",
                    ),
                ),
                "Higher is cheaper: cached input is billed at a fraction of the input price.",
                8,
            ),
        ],
    ),
    (
        "Per-run spread",
        [
            Panel(
                "Tokens per run",
                "timeseries",
                "short",
                (
                    (quantile(0.5, f(RUN_TOKENS), (WORKFLOW,)), "p50 {{gen_ai_workflow_name}}"),
                    (quantile(0.99, f(RUN_TOKENS), (WORKFLOW,)), "p99 {{gen_ai_workflow_name}}"),
                ),
                "Tokens of one workflow run (every call, retry and step of it).",
                8,
            ),
            Panel(
                "p99/p50 tokens per run",
                "timeseries",
                "suffix:x",
                ((spread(RUN_TOKENS, (WORKFLOW,)), "{{gen_ai_workflow_name}}"),),
                "How many times the median run the expensive runs use; runaway loops show up here first.",
                8,
            ),
            Panel(
                "Cost per run",
                "timeseries",
                "currencyUSD",
                (
                    (quantile(0.5, f(RUN_COST), (WORKFLOW,)), "p50 {{gen_ai_workflow_name}}"),
                    (quantile(0.99, f(RUN_COST), (WORKFLOW,)), "p99 {{gen_ai_workflow_name}}"),
                ),
                "Unit economics: USD per run of each workflow.",
                8,
            ),
            Panel(
                "Steps per run",
                "timeseries",
                "short",
                (
                    (quantile(0.5, f(RUN_STEPS), (WORKFLOW,)), "p50 {{gen_ai_workflow_name}}"),
                    (quantile(0.99, f(RUN_STEPS), (WORKFLOW,)), "p99 {{gen_ai_workflow_name}}"),
                ),
                "Agent, step and tool scopes plus LLM calls per run.",
                8,
            ),
            Panel(
                "Runs by outcome",
                "timeseries",
                "short",
                (
                    (
                        per_hour(sum_by((WORKFLOW, OUTCOME), rate(f("tokenmeter_run_tokens_count")))),
                        "{{gen_ai_workflow_name}} {{tokenmeter_outcome}}",
                    ),
                ),
                "Finished runs per hour; error = the run raised (for example a per-run guard stopped it).",
                8,
            ),
        ],
    ),
    (
        "Governance",
        [
            Panel(
                "Budget utilization",
                "bargauge",
                "percentunit",
                ((max_by((BUDGET_NAME,), Selector(BUDGET)), "{{tokenmeter_budget_name}}"),),
                "Settled spend of each budget's current window over its limit.",
                8,
            ),
            Panel(
                "Budget burn",
                "timeseries",
                "percentunit",
                (
                    (
                        per_hour(max_by((BUDGET_NAME,), deriv(Selector(BUDGET), "$__rate_interval"))),
                        "{{tokenmeter_budget_name}}",
                    ),
                ),
                "Share of each budget's limit used per hour at the current pace.",
                8,
            ),
            Panel(
                "Policy decisions",
                "timeseries",
                "short",
                ((per_hour(sum_by((DECISION,), rate(f(DECISIONS)))), "{{tokenmeter_policy_decision}}"),),
                "Decisions per hour: allow, warn, downgrade, block, approve, deny.",
                8,
            ),
            Panel(
                "Calls by outcome",
                "timeseries",
                "short",
                ((sum_by((OUTCOME,), rate(f(CALLS))), "{{tokenmeter_outcome}}"),),
                "LLM calls per second: ok, error, blocked (refused before sending).",
                8,
            ),
            Panel(
                "Unpriced tokens by model",
                "timeseries",
                "short",
                ((sum_by((PROVIDER, MODEL), rate(f(UNPRICED))), "{{gen_ai_provider_name}} {{gen_ai_request_model}}"),),
                "Tokens per second of models without a price.",
                8,
            ),
        ],
    ),
    (
        "GenAI semantic conventions",
        [
            Panel(
                "Tokens per call (p95)",
                "timeseries",
                "short",
                (
                    (
                        quantile(0.95, Selector(TOKEN_USAGE), (MODEL, TOKEN_TYPE)),
                        "{{gen_ai_request_model}} {{gen_ai_token_type}}",
                    ),
                ),
                "gen_ai.client.token.usage: input and output tokens of one call.",
                12,
            ),
            Panel(
                "Call duration (p95)",
                "timeseries",
                "s",
                ((quantile(0.95, Selector(DURATION), (MODEL,)), "{{gen_ai_request_model}}"),),
                "gen_ai.client.operation.duration.",
                12,
            ),
        ],
    ),
]


def panels() -> list[Panel]:
    """Every panel, in order."""
    return [p for _title, row in ROWS for p in row]


def build() -> Any:
    """The dashboard as a grafana-foundation-sdk model."""
    from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, QueryVariable, Row
    from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort

    ds = DataSourceRef(type_val="prometheus", uid="${datasource}")
    board = (
        Dashboard("tokenmeter: LLM tokens and cost")
        .uid(UID)
        .description(
            "Tokens x workflow volume x model tier: spend, waste, per-run spread and budgets from "
            "tokenmeter's OpenTelemetry metrics."
        )
        .tags(["tokenmeter", "llm", "finops", "opentelemetry"])
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    for name, label in (("team", TEAM), ("workflow", WORKFLOW)):
        source = TOKENS if name == "team" else f'{TOKENS}{{{TEAM}=~"$team"}}'
        board = board.with_variable(
            QueryVariable(name)
            .label(name.capitalize())
            .datasource(ds)
            .query(f"label_values({source}, {label})")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    for title, row in ROWS:
        board = board.with_row(Row(title))
        for p in row:
            board = board.with_panel(_panel(p, ds))
    return board.build()


def _panel(p: Panel, ds: Any) -> Any:
    from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
    from grafana_foundation_sdk.builders import common as common_builders
    from grafana_foundation_sdk.builders.prometheus import Dataquery
    from grafana_foundation_sdk.models import common
    from grafana_foundation_sdk.models.prometheus import PromQueryFormat

    builder: Any
    if p.kind == "stat":
        builder = (
            stat.Panel()
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
            .graph_mode(common.BigValueGraphMode.NONE)
        )
    elif p.kind == "table":
        builder = table.Panel()
    elif p.kind == "bargauge":
        builder = (
            bargauge.Panel().min(0).max(1).reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        )
    else:
        builder = (
            timeseries.Panel()
            .fill_opacity(10)
            .legend(
                common_builders.VizLegendOptions()
                .display_mode(common.LegendDisplayMode.LIST)
                .placement(common.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
        )
    builder = (
        builder.title(p.title)
        .description(p.description)
        .unit(p.unit)
        .datasource(ds)
        .span(p.width)
        .height(4 if p.kind == "stat" else 8)
    )
    for i, (expr, legend) in enumerate(p.targets):
        query = Dataquery().expr(expr.render()).ref_id("ABCDEFGH"[i]).datasource(ds)
        if p.kind != "timeseries":
            query = query.instant()  # one value over the dashboard's range ($__range)
        if p.kind == "table":
            query = query.format(PromQueryFormat.TABLE)
        if legend:
            query = query.legend_format(legend)
        builder = builder.with_target(query)
    return builder


def render_dashboard() -> str:
    """The dashboard JSON text (stable, so the checked-in file can be compared)."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    return JSONEncoder(sort_keys=True, indent=2).encode(build()) + "\n"


def main() -> int:
    """Write the dashboard JSON."""
    OUTPUT.write_text(render_dashboard())
    print(f"wrote {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
