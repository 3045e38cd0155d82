"""Recording and alert rules for tokenmeter's metrics; ``python -m examples.prometheus.rules`` writes them to
``examples/prometheus/tokenmeter-rules.yml`` (checked in; a test fails when the two differ).

Budget alerts keep the ``tokenmeter_budget_owner`` label (``Budget(owner=...)``) so Alertmanager can route
each to the team that owns the budget. Alerts follow the FinOps moves: budgets as utility demand (burn rate,
projected exhaustion, exhausted), runaway runs (the p99/p50 spread of tokens per run, calls refused by a
per-run guard or budget), cost visibility (unpriced tokens appearing: usage that would otherwise be billed as
a silent $0) and waste.
Every alert expression is ``<query> <comparison> <threshold>``, so the query itself can be graphed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from .promql import (
    BUDGET,
    BUDGET_NAME,
    BUDGET_OWNER,
    CALLS,
    PROVIDER,
    RUN_TOKENS,
    TEAM,
    TIER,
    TOKEN_CLASS,
    TOKENS,
    UNPRICED,
    WASTED_TOKENS,
    WORKFLOW,
    Compare,
    Expr,
    PredictLinear,
    Recorded,
    deriv,
    increase,
    max_by,
    quantile,
    rate,
    sel,
    sum_by,
)
from .promql import COST as COST_METRIC
from .promql import MODEL as MODEL_LABEL

OUTPUT = Path(__file__).with_name("tokenmeter-rules.yml")
HOUR = 3600


@dataclass(frozen=True)
class Alert:
    """One alerting rule."""

    name: str
    expr: Compare
    for_: str
    severity: str
    summary: str
    description: str
    labels: dict[str, str] = field(default_factory=dict)


# -- recording rules -------------------------------------------------------------------------------------
COST_RATE = Recorded("tokenmeter:cost_usd:rate5m", sum_by((TEAM, WORKFLOW, TIER), rate(sel(COST_METRIC), "5m")))
TOKENS_RATE = Recorded("tokenmeter:tokens:rate5m", sum_by((TEAM, WORKFLOW, TIER, TOKEN_CLASS), rate(sel(TOKENS), "5m")))
WASTED_RATIO = Recorded(
    "tokenmeter:wasted_tokens:ratio_rate1h",
    sum_by((TEAM, WORKFLOW), rate(sel(WASTED_TOKENS), "1h")) / sum_by((TEAM, WORKFLOW), rate(sel(TOKENS), "1h")),
)
RUN_P50 = Recorded("tokenmeter:run_tokens:p50_1h", quantile(0.5, sel(RUN_TOKENS), (TEAM, WORKFLOW), "1h"))
RUN_P99 = Recorded("tokenmeter:run_tokens:p99_1h", quantile(0.99, sel(RUN_TOKENS), (TEAM, WORKFLOW), "1h"))
RUN_SPREAD = Recorded("tokenmeter:run_tokens:p99_over_p50_1h", RUN_P99 / RUN_P50)
BURN_RATE = Recorded(
    "tokenmeter:budget_utilization:burn_rate1h", max_by((BUDGET_NAME, BUDGET_OWNER), deriv(sel(BUDGET), "1h")) * HOUR
)

RECORDING: list[Recorded] = [COST_RATE, TOKENS_RATE, WASTED_RATIO, RUN_P50, RUN_P99, RUN_SPREAD, BURN_RATE]

# -- alerts ----------------------------------------------------------------------------------------------
ALERTS: list[Alert] = [
    Alert(
        "TokenBudgetBurnRateHigh",
        Compare(BURN_RATE, ">", 0.10),
        "15m",
        "warning",
        "Budget {{ $labels.tokenmeter_budget_name }} burns {{ $value | humanizePercentage }} of its limit per hour",
        "At this pace a daily budget is gone in under 10 hours. Check which team and workflow drive the spend "
        "(dashboard row 'Spend by attribution') before the budget starts blocking calls.",
    ),
    Alert(
        "TokenBudgetProjectedExhaustion",
        Compare(max_by((BUDGET_NAME, BUDGET_OWNER), PredictLinear(sel(BUDGET), "1h", 6 * HOUR)), ">=", 1),
        "15m",
        "warning",
        "Budget {{ $labels.tokenmeter_budget_name }} will be used up within 6 hours",
        "Linear forecast of the last hour: {{ $value | humanizePercentage }} of the limit in 6 h. Raise the "
        "limit, route the workload to a cheaper tier, or accept that calls will be blocked.",
    ),
    Alert(
        "TokenBudgetExhausted",
        Compare(max_by((BUDGET_NAME, BUDGET_OWNER), sel(BUDGET)), ">=", 1),
        "0m",
        "critical",
        "Budget {{ $labels.tokenmeter_budget_name }} is used up",
        "Calls in its scope are now blocked (action block), downgraded (downgrade) or only warned about (warn).",
    ),
    Alert(
        "TokenRunawayRuns",
        Compare(RUN_SPREAD, ">", 10),
        "10m",
        "warning",
        '{{ $labels.gen_ai_workflow_name }}: the p99 run uses {{ $value | printf "%.0f" }}x the median run',
        "A few runs of this workflow cost an order of magnitude more than the typical one (agent loops, growing "
        "context, retries). Set workflow(max_tokens=... / max_cost_usd=...) to stop them before they are sent.",
    ),
    Alert(
        "TokenCallsBlocked",
        Compare(sum_by((TEAM, WORKFLOW), increase(sel(CALLS, tokenmeter_outcome="blocked"), "15m")), ">", 0),
        "0m",
        "info",
        '{{ $labels.gen_ai_workflow_name }} ({{ $labels.tokenmeter_team_name }}): {{ $value | printf "%.0f" }} '
        "calls refused before sending in 15 minutes",
        "A per-run guard, a budget or the tier policy refused calls. Expected for runaway runs; if it persists, "
        "the workflow is hitting its limits on the normal path.",
    ),
    Alert(
        "TokenUnpricedTokens",
        Compare(sum_by((PROVIDER, MODEL_LABEL), increase(sel(UNPRICED), "15m")), ">", 0),
        "0m",
        "warning",
        "Tokens of {{ $labels.gen_ai_request_model }} have no price",
        '{{ $value | printf "%.0f" }} tokens in 15 minutes are metered but not priced, so cost reports under-count '
        "them. Add the model to configure(prices=...) (a negotiated or self-hosted rate).",
    ),
    Alert(
        "TokenWastedShareHigh",
        Compare(WASTED_RATIO, ">", 0.20),
        "30m",
        "warning",
        "{{ $labels.gen_ai_workflow_name }}: {{ $value | humanizePercentage }} of tokens are wasted",
        "Retried attempts and failed steps burn more than a fifth of this workflow's tokens. Fix the validation "
        "that fails, or make the first attempt cheaper.",
    ),
]


def render_rules() -> str:
    """The rules file as YAML text (stable, so the checked-in file can be compared)."""
    import yaml

    groups = [
        {
            "name": "tokenmeter.recording",
            "interval": "1m",
            "rules": [{"record": r.name, "expr": r.expr.render()} for r in RECORDING],
        },
        {
            "name": "tokenmeter.alerts",
            "interval": "1m",
            "rules": [
                {
                    "alert": a.name,
                    "expr": a.expr.render(),
                    "for": a.for_,
                    "labels": {"severity": a.severity, **a.labels},
                    "annotations": {"summary": a.summary, "description": a.description},
                }
                for a in ALERTS
            ],
        },
    ]
    header = (
        "# Generated by `python -m examples.prometheus.rules` from examples/prometheus/rules.py: edit that.\n"
        "# Recording and alert rules for tokenmeter metrics (promtool check rules passes on this file).\n"
    )
    return header + str(yaml.safe_dump({"groups": groups}, sort_keys=False, width=120, allow_unicode=True))


def all_expressions() -> list[tuple[str, Expr]]:
    """(rule name, expression) of every recording rule and every alert."""
    return [(r.name, r.expr) for r in RECORDING] + [(a.name, a.expr) for a in ALERTS]


def main() -> int:
    """Write the rules file."""
    OUTPUT.write_text(render_rules())
    print(f"wrote {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
