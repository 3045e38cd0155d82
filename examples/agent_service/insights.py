"""FinOps read-out of what was metered: one line per insight, in the language of the cost function
``tokens x workflow volume x model tier`` and the four moves (budget as utility demand, tier workloads by
model class, operation-level visibility, governance before autonomous volume).

Everything is read from the meter's embedded ledger, except the governance counts, which come from the
service's call log (the ledger keeps totals, not why a call was routed).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import tokenmeter
from tokenmeter._ledger import Totals

from . import agents
from .workload import WorkloadResult


def insights(meter: tokenmeter.Meter, result: WorkloadResult) -> list[str]:
    """The insight lines for one workload metered by ``meter``."""
    ledger = meter.ledger
    total = _sum(ledger.rollup("team").values())
    sent = total.calls - total.blocked
    lines = [
        f"Cost function = tokens x workflow volume x model tier: {len(result.runs)} runs, {sent} LLM calls, "
        f"{total.total_tokens:,} tokens, ${total.cost:.4f}"
        + (f" (+ {total.unpriced_tokens:,} unpriced tokens)." if total.unpriced_tokens else "."),
        _per_task_line(ledger.runs(), result),
        _edge_case_line(ledger.runs(), result),
        _tier_line(ledger.rollup("tier"), sent, total.cost),
        f"Waste: {total.wasted_tokens:,} tokens ({_pct(total.wasted_tokens, total.total_tokens)}), "
        f"${total.wasted_cost:.4f}, went to {sum(1 for c in result.calls if c.wasted == 'retried')} retried "
        "validation attempts and to runs that were stopped before they delivered.",
        *_cache_line(meter, total),
        _governance_line(result),
        *_unpriced_line(ledger.totals()),
        _forecast_line(ledger.rollup("workflow"), ledger.runs()),
        *(f"Budget: {w}" for w in result.budget_warnings),
    ]
    return [line for line in lines if line]


def _pct(part: float | Decimal, whole: float | Decimal) -> str:
    return f"{100.0 * float(part) / float(whole):.0f}%" if whole else "0%"


def _median(values: Iterable[int]) -> int:
    ordered = sorted(values)  # the ledger's p50: the value at round(0.5 * (n - 1))
    return ordered[round(0.5 * (len(ordered) - 1))] if ordered else 0


def _sum(rows: Iterable[Totals]) -> Totals:
    total = Totals()
    for t in rows:
        total.tokens = [a + b for a, b in zip(total.tokens, t.tokens, strict=True)]
        total.cost += t.cost
        total.unpriced_tokens += t.unpriced_tokens
        total.calls += t.calls
        total.blocked += t.blocked
        total.wasted_tokens += t.wasted_tokens
        total.wasted_cost += t.wasted_cost
    return total


def _per_task_line(runs: dict[str, list[tuple[int, Decimal, int]]], result: WorkloadResult) -> str:
    calls_per_run: dict[str, list[int]] = {}
    for run in result.runs:
        calls = sum(1 for c in result.calls if c.run == run.index and c.outcome == "ok")
        calls_per_run.setdefault(run.workflow, []).append(calls)
    parts = [f"{name} {_median(calls_per_run.get(name, []))} calls / {_median(v[0] for v in values):,} tokens"
             for name, values in sorted(runs.items())]
    if not parts:
        return ""
    return ("Tokens per task, not per prompt: a median run takes " + ", ".join(parts)
            + "; every call re-sends the growing context (agentic tasks use 5-30x a single prompt-response).")


def _edge_case_line(runs: dict[str, list[tuple[int, Decimal, int]]], result: WorkloadResult) -> str:
    worst = max(((name, v[0]) for name, values in runs.items() for v in values), key=lambda nv: nv[1], default=None)
    if worst is None:
        return ""
    name, tokens = worst
    p50 = _median(v[0] for v in runs[name])
    stopped = [r for r in result.runs if r.outcome == "stopped" and r.workflow == name]
    if stopped:
        run = stopped[0]
        calls = sum(1 for c in result.calls if c.run == run.index and c.outcome == "ok")
        who = "the per-run guard" if run.detail.startswith("run of workflow") else "a budget"
        guard = f"; {who} stopped it before call {calls + 1}: {run.detail}"
    else:
        guard = "; no per-run guard had to step in"
    return (f"Edge case: the worst {name} run used {tokens:,} tokens, {tokens / max(p50, 1):.0f}x its median run "
            f"({p50:,}){guard}.")


def _tier_line(by_tier: dict[str, Totals], sent: int, cost: Decimal) -> str:
    parts = []
    for tier in ("frontier", "standard", "small"):
        t = by_tier.get(tier)
        if t is not None:
            parts.append(f"{tier} {_pct(t.calls - t.blocked, sent)} of calls / {_pct(t.cost, cost)} of spend")
    if not parts:
        return ""
    return ("Model tier: " + ", ".join(parts)
            + ". Commodity steps go small; frontier reasoning only where the value justifies it.")


def _cache_line(meter: tokenmeter.Meter, total: Totals) -> list[str]:
    if not total.tokens[1]:
        return []
    saved = Decimal(0)
    for (_team, _workflow, _tier, provider, model), t in meter.ledger.totals().items():
        if t.tokens[1]:
            full = meter.prices.cost(provider, model, tokenmeter.Usage(input=t.tokens[1])).usd
            paid = meter.prices.cost(provider, model, tokenmeter.Usage(cache_read=t.tokens[1])).usd
            if full is not None and paid is not None:
                saved += full - paid
    inputs = total.tokens[0] + total.tokens[1] + total.tokens[2]
    return [f"Caching: {_pct(total.tokens[1], inputs)} of input tokens were cache reads, saving ${saved:.4f} "
            "against uncached prices (keep the stable system prompt first)."]


def _governance_line(result: WorkloadResult) -> str:
    ok = [c for c in result.calls if c.outcome == "ok"]
    approved = sum(1 for c in ok if c.model == c.requested_model == agents.FRONTIER)
    downgraded = sum(1 for c in ok if c.model != c.requested_model)
    denied = sum(1 for c in result.calls if c.outcome == "deny")
    blocked = sum(1 for c in result.calls if c.outcome == "block")
    return (f"Governance before volume: {approved} frontier calls approved (refund fraud review), {denied} denied "
            f"(support fell back to standard), {downgraded} downgraded by tier policy (data team), {blocked} "
            "blocked before sending by a per-run guard or a budget.")


def _unpriced_line(totals: dict[tuple[str, str, str, str, str], Totals]) -> list[str]:
    unpriced = {key[4]: 0 for key, t in totals.items() if t.unpriced_tokens}
    for key, t in totals.items():
        if t.unpriced_tokens:
            unpriced[key[4]] += t.unpriced_tokens
    if not unpriced:
        return []
    return [f"Unpriced: {sum(unpriced.values()):,} tokens on {', '.join(sorted(unpriced))} have no price; they are "
            "counted, never billed as $0. Add configure(prices=...) with your own rate."]


def _forecast_line(by_workflow: dict[str, Totals], runs: dict[str, list[tuple[int, Decimal, int]]]) -> str:
    parts = [f"{name} ${t.cost / len(runs[name]) * 1000:,.2f}" for name, t in sorted(by_workflow.items())
             if runs.get(name)]
    if not parts:
        return ""
    return "Budget as utility demand: at this mix, 1,000 runs cost " + ", ".join(parts) + " (priced tokens)."
