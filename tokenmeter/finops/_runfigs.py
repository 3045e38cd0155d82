"""The report's run figures: per-workflow spreads and sums, reliability, cost per successful run.

Runs come one by one (``RunFacts``, from ``run_facts`` or ``runs``) and, when the ledger's writer fell behind,
folded into per-hour sums (``folded_runs``): sums count both; spreads, worst runs and step success by depth
need the runs kept one by one and say so (:func:`folded_note`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report import Figures

_ZERO = Decimal(0)


@dataclass
class Spread:
    """Nearest-rank percentiles of a per-run figure."""

    p50: Any = 0
    p95: Any = 0
    p99: Any = 0
    max: Any = 0

    @classmethod
    def of(cls, values: Sequence[Any]) -> Spread:
        """The spread of ``values`` (all zero when empty)."""
        v = sorted(values)
        if not v:
            return cls()
        return cls(quantile(v, 0.5), quantile(v, 0.95), quantile(v, 0.99), v[-1])


@dataclass
class WorkflowRuns:
    """Per-run figures of one workflow."""

    workflow: str
    runs: int
    succeeded: int
    tokens: Spread
    cost: Spread
    steps: Spread
    multiplier: float | None  # p99 / p50 of tokens per run: what an edge case costs against the nominal path
    worst: list[tuple[str, int]]  # (run id, tokens), largest first
    tokens_per_task: float  # mean tokens per run
    tokens_per_call: float  # mean tokens per LLM call of the workflow (a single prompt-response)
    total_cost: Decimal
    cost_per_success: Decimal | None  # every run's cost over the successful runs (None: no success)
    outcomes: dict[str, int] = field(default_factory=dict)
    estimated: bool = False  # percentiles interpolated in histogram buckets (a TSDB source), not exact
    # Runs the ledger folded into per-hour sums (its writer fell behind): counted in ``runs``, ``succeeded``,
    # the totals and the means; the spreads, ``multiplier`` and ``worst`` are over the ``runs - folded`` kept
    # one by one.
    folded: int = 0
    calls_per_run: float = 0.0  # mean LLM calls per run
    steps_per_run: float = 0.0  # mean steps per run
    duration_per_run_s: float = 0.0  # mean duration per run
    unpriced_runs: int = 0  # runs without a known cost (not in ``total_cost``, never $0)
    cost_per_run: Decimal | None = None  # ``total_cost`` over the priced runs (None: no priced run)

    @property
    def kept(self) -> int:
        """Runs kept one by one: what the spreads are computed over."""
        return self.runs - self.folded


@dataclass
class Reliability:
    """Run success, step success by depth and the end-to-end reliability the steps imply."""

    runs: int = 0
    succeeded: int = 0
    by_depth: dict[int, tuple[int, int]] = field(default_factory=dict)  # depth -> (ok, failed)
    mean_steps: float = 0.0
    folded: int = 0  # of ``runs``, folded into per-hour sums: ``by_depth`` covers the others only

    @property
    def observed(self) -> float | None:
        """Share of runs that succeeded."""
        return self.succeeded / self.runs if self.runs else None

    @property
    def per_step(self) -> float | None:
        """Share of steps (scopes and LLM calls) that succeeded."""
        ok = sum(o for o, _ in self.by_depth.values())
        total = ok + sum(f for _, f in self.by_depth.values())
        return ok / total if total else None

    @property
    def implied(self) -> float | None:
        """``per_step ** mean_steps``: the end-to-end rate if every step had to succeed."""
        p = self.per_step
        return None if p is None else p**self.mean_steps


def quantile(sorted_values: Sequence[Any], q: float) -> Any:
    """Nearest-rank quantile: the value at ``round(q * (n - 1))`` of the sorted values."""
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))]


def folded_note(folded: int, runs: int) -> str | None:
    """The caveat every output prints beside per-run spreads when ``folded`` of ``runs`` are only sums."""
    if not folded:
        return None
    return (
        f"{folded:,} runs folded (the ledger writer fell behind; see ledger_max_pending_runs): counts, success "
        f"and totals and means per run include them; percentiles, max, worst runs and step success by depth are "
        f"over the {runs - folded:,} runs kept one by one"
    )


# One run as the report needs it: workflow, run id, tokens, cost (None: unpriced), success, steps, outcome
# label, step tallies, LLM calls, duration (s). A reader may yield these directly (``run_facts``) instead of
# RunRow objects.
RunFacts = tuple[str, str, int, Decimal | None, bool, int, str, dict[int, tuple[int, int]], int, float]

_TOKENS, _COST, _SUCCESS, _STEPS, _LABEL, _CALLS, _DURATION = (itemgetter(i) for i in (2, 3, 4, 5, 6, 8, 9))


def read_folds(reader: Any, start: datetime, end: datetime, env: str | None) -> list[dict[str, Any]]:
    """The reader's runs folded into per-hour sums (``folded_runs``; none from a reader without them). A fold
    belongs to the hour its runs started in: a window edge inside an hour includes that hour's folds when the
    hour starts in the window."""
    folded = getattr(reader, "folded_runs", None)
    return [] if folded is None else list(folded(start, end, env=env))


def read_run_facts(reader: Any, start: datetime, end: datetime, env: str | None) -> Iterable[RunFacts]:
    """The runs kept one by one as :data:`RunFacts` (the reader's ``run_facts`` fast path, else its ``runs``)."""
    fast = getattr(reader, "run_facts", None)
    if fast is not None:
        facts: Iterable[RunFacts] = fast(start, end, env=env)
        return facts
    return (
        (
            r.workflow,
            r.run_id,
            r.total_tokens,
            r.cost_usd,
            r.success,
            r.steps,
            r.business_outcome or r.outcome,
            r.step_results,
            r.calls,
            r.duration_s,
        )
        for r in reader.runs(start, end, env=env)
    )


@dataclass
class _Sums:
    """What a workflow's runs add up to, whether kept one by one or folded."""

    runs: int = 0
    folded: int = 0
    succeeded: int = 0
    tokens: int = 0
    calls: int = 0
    steps: int = 0
    duration_s: float = 0.0
    cost: Decimal = _ZERO
    unpriced: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _fold_sums(folds: Iterable[dict[str, Any]]) -> dict[str, _Sums]:
    per: dict[str, _Sums] = defaultdict(_Sums)
    for f in folds:
        s = per[f["workflow"]]
        n = int(f["runs"])
        s.runs += n
        s.folded += n
        # a run succeeds when ok and not marked failed (the same rule as RunRow.success)
        s.succeeded += n - int(f["failed"]) if f["outcome"] == "ok" else 0
        s.tokens += sum(f["tokens"].values())
        s.calls += int(f["calls"])
        s.steps += int(f["steps"])
        s.duration_s += float(f["duration_s"])
        if f["cost_usd"] is not None:
            s.cost += f["cost_usd"]
        s.unpriced += int(f["unpriced_runs"])
        s.outcomes[f"{f['outcome']} (folded)"] += n  # a fold keeps the run outcome, not the business outcome
    return per


def run_figures(
    runs: Iterable[RunFacts], wf_calls: dict[str, Figures], folds: Iterable[dict[str, Any]] = ()
) -> tuple[list[WorkflowRuns], Reliability, Decimal, Decimal | None]:
    """Per-workflow figures, reliability, the runs' total cost and the cost per successful run of ``runs``
    (kept one by one) and ``folds`` (per-hour sums, as ``folded_runs`` yields them)."""
    per: dict[str, list[RunFacts]] = defaultdict(list)
    rel = Reliability()
    shapes: dict[int, int] = defaultdict(int)  # id of a step-tally dict -> runs sharing it (readers share them)
    tallies: dict[int, dict[int, tuple[int, int]]] = {}
    for r in runs:
        per[r[0]].append(r)
        key = id(r[7])
        shapes[key] += 1
        tallies[key] = r[7]
    by_depth: dict[int, tuple[int, int]] = {}
    for key, count in shapes.items():
        for depth, (ok, failed) in tallies[key].items():
            o, f = by_depth.get(depth, (0, 0))
            by_depth[depth] = (o + ok * count, f + failed * count)
    rel.by_depth = dict(sorted(by_depth.items()))
    sums = _fold_sums(folds)
    for name, rs in per.items():
        s = sums[name]
        s.runs += len(rs)
        s.succeeded += sum(map(_SUCCESS, rs))
        s.tokens += sum(map(_TOKENS, rs))
        s.calls += sum(map(_CALLS, rs))
        s.steps += sum(map(_STEPS, rs))
        s.duration_s += sum(map(_DURATION, rs))
        priced_costs = [c for c in map(_COST, rs) if c is not None]
        s.cost += sum(priced_costs, _ZERO)
        s.unpriced += len(rs) - len(priced_costs)
        for label, count in Counter(map(_LABEL, rs)).items():
            s.outcomes[label] += count
    out = []
    all_cost = _ZERO
    steps_total = 0
    for name, s in sorted(sums.items()):
        rs = per.get(name, [])
        spread = Spread.of(list(map(_TOKENS, rs)))
        all_cost += s.cost
        steps_total += s.steps
        rel.runs += s.runs
        rel.succeeded += s.succeeded
        rel.folded += s.folded
        calls = wf_calls.get(name)
        worst = sorted(rs, key=lambda r: -r[2])[:3]
        priced = s.runs - s.unpriced
        out.append(
            WorkflowRuns(
                workflow=name,
                runs=s.runs,
                succeeded=s.succeeded,
                tokens=spread,
                cost=Spread.of([c for c in map(_COST, rs) if c is not None]),
                steps=Spread.of(list(map(_STEPS, rs))),
                multiplier=spread.p99 / spread.p50 if spread.p50 else None,
                worst=[(r[1], r[2]) for r in worst],
                tokens_per_task=s.tokens / s.runs,
                tokens_per_call=calls.tokens / calls.calls if calls is not None and calls.calls else 0.0,
                total_cost=s.cost,
                cost_per_success=s.cost / s.succeeded if s.succeeded else None,
                outcomes=dict(s.outcomes),
                folded=s.folded,
                calls_per_run=s.calls / s.runs,
                steps_per_run=s.steps / s.runs,
                duration_per_run_s=s.duration_s / s.runs,
                unpriced_runs=s.unpriced,
                cost_per_run=s.cost / priced if priced else None,
            )
        )
    rel.mean_steps = steps_total / rel.runs if rel.runs else 0.0
    return out, rel, all_cost, (all_cost / rel.succeeded if rel.succeeded else None)
