"""Per-run figures from run histograms, for sources that keep no run rows (a Prometheus-compatible TSDB).

The reader's ``run_stats(start, end, env=)`` yields, per (workflow, team, env, outcome), ``runs``, the sums
``tokens`` / ``cost_usd`` / ``steps`` and cumulative ``buckets["tokens" | "cost" | "steps"] = {le: runs}``.
Percentiles are interpolated inside their bucket as PromQL's ``histogram_quantile`` does, so they are
flagged ``estimated``; worst run ids and step success by depth are not available from histograms.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report import Figures, Reliability, WorkflowRuns

_ZERO = Decimal(0)


def bucket_quantile(buckets: dict[float, Decimal], q: float) -> float:
    """The ``q`` quantile of cumulative ``{upper bound: count}`` buckets (0 without observations)."""
    bounds = sorted(buckets.items())
    if not bounds or bounds[-1][1] <= 0:
        return 0.0
    rank = q * float(bounds[-1][1])
    lower, below = 0.0, 0.0
    for upper, count in bounds:
        if float(count) >= rank:
            if upper == float("inf"):
                return lower
            inside = float(count) - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, float(count)
    return lower


def _spread(buckets: dict[float, Decimal], *, whole: bool) -> Any:
    from .report import Spread

    values = [bucket_quantile(buckets, q) for q in (0.5, 0.95, 0.99, 1.0)]
    if whole:
        return Spread(*(round(v) for v in values))
    return Spread(*(Decimal(str(round(v, 9))) for v in values))


def from_run_stats(
    stats: Iterable[Any], wf_calls: dict[str, Figures]
) -> tuple[list[WorkflowRuns], Reliability, Decimal, Decimal | None]:
    """The report's per-workflow run figures and reliability from run histograms."""
    from .report import Reliability, WorkflowRuns

    per: dict[str, list[Any]] = defaultdict(list)
    for s in stats:
        if s.runs:
            per[s.workflow].append(s)
    rel = Reliability()
    steps_total = _ZERO
    out = []
    all_cost = _ZERO
    for name, group in sorted(per.items()):
        runs = sum(int(s.runs) for s in group)
        ok = sum(int(s.runs) for s in group if s.outcome == "ok")
        tokens = sum((Decimal(s.tokens) for s in group), _ZERO)
        cost = sum((Decimal(s.cost_usd) for s in group), _ZERO)
        steps_total += sum((Decimal(s.steps) for s in group), _ZERO)
        merged: dict[str, dict[float, Decimal]] = {}
        for of in ("tokens", "cost", "steps"):
            m: dict[float, Decimal] = defaultdict(Decimal)
            for s in group:
                for le, n in s.buckets.get(of, {}).items():
                    m[float(le)] += Decimal(n)
            merged[of] = dict(m)
        t = _spread(merged["tokens"], whole=True)
        calls = wf_calls.get(name)
        rel.runs += runs
        rel.succeeded += ok
        all_cost += cost
        out.append(
            WorkflowRuns(
                workflow=name,
                runs=runs,
                succeeded=ok,
                tokens=t,
                cost=_spread(merged["cost"], whole=False),
                steps=_spread(merged["steps"], whole=True),
                multiplier=t.p99 / t.p50 if t.p50 else None,
                worst=[],
                tokens_per_task=float(tokens) / runs,
                tokens_per_call=calls.tokens / calls.calls if calls is not None and calls.calls else 0.0,
                total_cost=cost,
                cost_per_success=cost / ok if ok else None,
                outcomes={o: sum(int(s.runs) for s in group if s.outcome == o) for o in {s.outcome for s in group}},
                estimated=True,
            )
        )
    rel.mean_steps = float(steps_total) / rel.runs if rel.runs else 0.0
    return out, rel, all_cost, (all_cost / rel.succeeded if rel.succeeded else None)
