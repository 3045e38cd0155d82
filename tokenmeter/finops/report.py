"""The FinOps report model: one set of figures, whatever reader the rows come from.

``build_report(reader, start, end)`` reads :class:`UsageRow` and :class:`RunRow` from any
:class:`~tokenmeter.finops.Reader` (the SQLite ledger, an in-memory meter, a Prometheus-compatible TSDB) and
computes totals; tokens and cost by team / workflow / agent / tier / model / token class; the tier mix (share
of calls vs share of spend); cache savings; the wasted share; per-run percentiles and the p99/p50 edge-case
multiplier per workflow with the worst runs' ids; tokens per task; steps per run; reliability (run success,
step success by depth, the end-to-end rate they imply next to the observed one); cost per successful run.
Unpriced tokens are counted and called out, never priced at $0. Rendering lives in :mod:`._render`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .._usage import TOKEN_CLASSES, Usage
from ._render import render_text
from ._rows import UsageRow
from ._runfigs import (
    Reliability,
    Spread,
    WorkflowRuns,
    folded_note,
    quantile,
    read_folds,
    read_run_facts,
    run_figures,
)
from ._units import UnitFigures
from .chargeback import Chargeback

DIMENSIONS = ("env", "team", "workflow", "agent", "tier", "provider", "model", "operation", "customer")
DEFAULT_BY = ("team", "workflow", "agent", "tier", "model")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FOREVER = datetime(2200, 1, 1, tzinfo=UTC)
_ZERO = Decimal(0)


@dataclass
class Figures:
    """Usage of one group: calls sent, blocked, tokens, priced cost, unpriced tokens, waste."""

    name: str = ""
    calls: int = 0  # sent (ok + error)
    errors: int = 0
    blocked: int = 0
    tokens: int = 0
    cost: Decimal = _ZERO  # of the priced tokens
    list_cost: Decimal = _ZERO
    unpriced_tokens: int = 0
    estimated_tokens: int = 0
    wasted_tokens: int = 0
    wasted_cost: Decimal = _ZERO
    charge: Decimal | None = None  # with a chargeback: cost x (1 + rate) of the priced tokens; else None
    rate: Decimal | None = None  # the chargeback rate of a cost-center group (one entity, one rate)

    def add(self, row: UsageRow, charge: Decimal | None = None) -> None:
        """Add one usage row (and its chargeback ``charge``, when there is one)."""
        if row.outcome == "blocked":
            self.blocked += row.calls
        else:
            self.calls += row.calls
            if row.outcome == "error":
                self.errors += row.calls
        self.tokens += row.tokens
        if row.cost_usd is not None:
            self.cost += row.cost_usd
        if row.list_cost_usd is not None:
            self.list_cost += row.list_cost_usd
        self.unpriced_tokens += row.unpriced_tokens
        self.estimated_tokens += row.estimated_tokens
        self.wasted_tokens += row.wasted_tokens
        self.wasted_cost += row.wasted_cost_usd
        if charge is not None:
            self.charge = charge if self.charge is None else self.charge + charge

    @property
    def all_unpriced(self) -> bool:
        """Every token of the group is unpriced: its cost is unknown, not $0."""
        return self.tokens > 0 and self.unpriced_tokens == self.tokens


@dataclass
class Report:
    """Every figure of a FinOps report over ``[start, end)``."""

    source: str
    start: datetime
    end: datetime
    env: str | None
    total: Figures
    by: dict[str, list[Figures]]
    token_classes: dict[str, Figures]
    tier_mix: list[tuple[str, float, float]]  # tier, share of calls, share of spend
    cache_read_share: float | None
    cache_saved_usd: Decimal | None
    workflows: list[WorkflowRuns]
    reliability: Reliability
    unpriced_by_model: dict[str, int]
    cost_per_success: Decimal | None
    runs_total_cost: Decimal
    chargeback: Chargeback | None = None  # the definition the ``charge`` figures were computed with
    units: dict[str, UnitFigures] = field(default_factory=dict)  # per-request unit charges, by unit name

    @property
    def empty(self) -> bool:
        """Nothing was metered in the window."""
        return not (self.total.calls or self.total.blocked or self.total.tokens or self.reliability.runs)

    @property
    def wasted_share(self) -> float | None:
        """Wasted tokens over all tokens."""
        return self.total.wasted_tokens / self.total.tokens if self.total.tokens else None

    @property
    def runs_note(self) -> str | None:
        """What the run figures cover when some runs were folded into sums (``None``: every run is whole)."""
        return folded_note(self.reliability.folded, self.reliability.runs)


def _usage_rows(
    reader: Any, start: datetime, end: datetime, env: str | None, dims: Sequence[str]
) -> Iterable[UsageRow]:
    summary = getattr(reader, "summary", None)
    rows: Iterable[UsageRow]
    if summary is not None:  # a reader that aggregates where the rows live (the SQLite ledger, in SQL)
        rows = summary(start, end, env=env, dims=dims)
    else:
        granularity = "month" if "month" in getattr(reader, "granularities", ()) else "day"
        rows = reader.usage(start, end, env=env, granularity=granularity)
    return rows


def build_report(
    reader: Any,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    env: str | None = None,
    by: Sequence[str] = DEFAULT_BY,
    prices: Any = None,
    chargeback: Chargeback | None = None,
) -> Report:
    """Read ``reader`` over ``[start, end)`` (default: everything) and compute the report.

    ``prices`` (a :class:`~tokenmeter.PriceBook`) prices cache reads at the uncached input rate for the
    cache savings figure; without it the savings are not computed. ``chargeback`` adds a ``charge`` (cost x
    (1 + the row's cost-center rate)) to every figure beside the raw cost, which stays as it is.
    """
    start, end = start or EPOCH, end or FOREVER
    for name in by:
        if name not in DIMENSIONS:
            raise ValueError(f"unknown --by dimension {name!r}; use {', '.join(DIMENSIONS)}")
    center: tuple[str, ...] = ()
    if chargeback is not None:
        chargeback.check_reader(reader)
        center = (chargeback.cost_center,)
    dims = tuple(
        dict.fromkeys(("team", "workflow", "tier", "provider", "model", "token_class", "outcome", *by, *center))
    )
    factors: dict[str, Decimal] = {}  # cost-center entity -> 1 + rate
    total = Figures("total")
    groups: dict[str, dict[str, Figures]] = {d: {} for d in by}
    classes: dict[str, Figures] = {c: Figures(c) for c in TOKEN_CLASSES}
    tiers: dict[str, Figures] = {}
    cache_reads: dict[tuple[str, str], int] = defaultdict(int)
    unpriced: dict[str, int] = defaultdict(int)
    units: dict[str, UnitFigures] = {}
    wf_calls: dict[str, Figures] = {}
    for row in _usage_rows(reader, start, end, env, dims):
        charge = None
        if chargeback is not None and row.cost_usd is not None:
            entity = getattr(row, chargeback.cost_center)
            f = factors.get(entity)
            if f is None:
                f = factors[entity] = chargeback.factor(entity)
            charge = row.cost_usd * f
        total.add(row, charge)
        for d in by:
            name = getattr(row, d)
            if name or d in ("agent", "customer"):
                g = groups[d].get(name)
                if g is None:
                    g = groups[d][name] = Figures(name or "(none)")
                    if chargeback is not None and d == chargeback.cost_center:
                        g.rate = chargeback.rate(name)
                g.add(row, charge)
        if row.token_class in classes:
            classes[row.token_class].add(row, charge)
        elif row.model:  # a unit row: its token class is the unit's name (waste rows carry no model)
            u = units.get(row.token_class)
            if u is None:
                u = units[row.token_class] = UnitFigures(row.token_class)
            u.add(row, charge)
        if row.model:  # waste rows carry no model; tier mix counts calls and spend
            t = tiers.get(row.tier)
            if t is None:
                t = tiers[row.tier] = Figures(row.tier)
            t.add(row, charge)
            if row.unpriced_tokens:
                unpriced[row.model] += row.unpriced_tokens
            if row.token_class == "cache_read" and row.tokens:
                cache_reads[(row.provider, row.model)] += row.tokens
        w = wf_calls.get(row.workflow)
        if w is None:
            w = wf_calls[row.workflow] = Figures(row.workflow)
        w.add(row)
    workflows, reliability, runs_cost, per_success = run_figures(
        read_run_facts(reader, start, end, env), wf_calls, read_folds(reader, start, end, env)
    )
    if not reliability.runs and getattr(reader, "run_stats", None) is not None:
        from ._histograms import from_run_stats  # a TSDB keeps run histograms, not run rows

        workflows, reliability, runs_cost, per_success = from_run_stats(reader.run_stats(start, end, env=env), wf_calls)
    return Report(
        source=reader.describe(),
        start=start,
        end=end,
        env=env,
        total=total,
        by={d: sorted(g.values(), key=lambda f: (-f.cost, -f.tokens, f.name)) for d, g in groups.items()},
        token_classes=classes,
        tier_mix=_tier_mix(tiers, total),
        cache_read_share=_cache_share(classes),
        cache_saved_usd=_cache_saved(cache_reads, prices),
        workflows=workflows,
        reliability=reliability,
        unpriced_by_model=dict(sorted(unpriced.items())),
        cost_per_success=per_success,
        runs_total_cost=runs_cost,
        chargeback=chargeback,
        units=dict(sorted(units.items())),
    )


def _tier_mix(tiers: dict[str, Figures], total: Figures) -> list[tuple[str, float, float]]:
    out = []
    for name, t in sorted(tiers.items(), key=lambda kv: -kv[1].cost):
        calls = t.calls / total.calls if total.calls else 0.0
        spend = float(t.cost / total.cost) if total.cost else 0.0
        out.append((name, calls, spend))
    return out


def _cache_share(classes: dict[str, Figures]) -> float | None:
    inputs = sum(classes[c].tokens for c in ("input", "cache_read", "cache_write"))
    return classes["cache_read"].tokens / inputs if inputs else None


def _cache_saved(reads: dict[tuple[str, str], int], prices: Any) -> Decimal | None:
    if prices is None or not reads:
        return None
    saved = _ZERO
    for (provider, model), n in reads.items():
        full = prices.cost(provider, model, Usage(input=n)).usd
        paid = prices.cost(provider, model, Usage(cache_read=n)).usd
        if full is not None and paid is not None:
            saved += full - paid
    return saved


__all__ = [
    "DEFAULT_BY",
    "DIMENSIONS",
    "Figures",
    "Reliability",
    "Report",
    "Spread",
    "UnitFigures",
    "WorkflowRuns",
    "build_report",
    "folded_note",
    "quantile",
    "render_text",
]
