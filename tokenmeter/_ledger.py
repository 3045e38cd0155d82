"""The embedded default: in-process totals of everything metered, readable without any backend."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from . import _lifecycle
from ._usage import TOKEN_CLASSES, Usage, add_counts

_MAX_RUNS_KEPT = 10_000  # per workflow, for the per-run spread; older runs are dropped
_N = TypeVar("_N", int, Decimal)


@dataclass
class Totals:
    """Token, cost and call totals of one attribution key."""

    tokens: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])
    cost: Decimal = Decimal(0)
    unpriced_tokens: int = 0
    calls: int = 0
    errors: int = 0
    blocked: int = 0
    wasted_tokens: int = 0
    wasted_cost: Decimal = Decimal(0)

    @property
    def total_tokens(self) -> int:
        """All tokens of every class."""
        return sum(self.tokens)


Key = tuple[str, str, str, str, str]  # team, workflow, tier, provider, model


class Ledger:
    """Thread-safe totals keyed by (team, workflow, tier, provider, model), plus per-run figures."""

    def __init__(self) -> None:
        self._lock = _lifecycle.lock()
        self._totals: dict[Key, Totals] = defaultdict(Totals)
        self._runs: dict[str, deque[tuple[int, Decimal, int]]] = defaultdict(lambda: deque(maxlen=_MAX_RUNS_KEPT))

    def add_call(self, key: Key, usage: Usage | None, cost: Decimal | None, outcome: str) -> None:
        """Add one call (``outcome`` ok / error / blocked)."""
        with self._lock:
            t = self._totals[key]
            t.calls += 1
            if outcome == "error":
                t.errors += 1
            elif outcome == "blocked":
                t.blocked += 1
            if usage is not None:
                add_counts(t.tokens, usage)
                if cost is None:
                    t.unpriced_tokens += usage.total
            if cost is not None:
                t.cost += cost

    def add_waste(self, team: str, workflow: str, tokens: int, cost: Decimal) -> None:
        """Add tokens and cost of attempts that were retried or steps that failed (by team and workflow)."""
        with self._lock:
            t = self._totals[(team, workflow, "", "", "")]
            t.wasted_tokens += tokens
            t.wasted_cost += cost

    def add_run(self, workflow: str, tokens: int, cost: Decimal, steps: int) -> None:
        """Record one finished workflow run."""
        with self._lock:
            self._runs[workflow].append((tokens, cost, steps))  # the oldest run drops off past the limit

    def totals(self) -> dict[Key, Totals]:
        """A copy of the totals per key."""
        with self._lock:
            return {
                k: Totals(list(v.tokens), v.cost, v.unpriced_tokens, v.calls, v.errors, v.blocked, v.wasted_tokens,
                          v.wasted_cost)
                for k, v in self._totals.items()
            }

    def runs(self) -> dict[str, list[tuple[int, Decimal, int]]]:
        """``{workflow: [(tokens, cost, steps), ...]}`` of finished runs."""
        with self._lock:
            return {k: list(v) for k, v in self._runs.items()}

    def rollup(self, by: str) -> dict[str, Totals]:
        """Totals grouped by ``"team"``, ``"workflow"``, ``"tier"``, ``"provider"`` or ``"model"``."""
        index = ("team", "workflow", "tier", "provider", "model").index(by)
        grouped: dict[str, Totals] = defaultdict(Totals)
        for key, t in self.totals().items():
            if not key[index]:
                continue  # waste is kept per team and workflow only
            g = grouped[key[index]]
            for i, n in enumerate(t.tokens):
                g.tokens[i] += n
            g.cost += t.cost
            g.unpriced_tokens += t.unpriced_tokens
            g.calls += t.calls
            g.errors += t.errors
            g.blocked += t.blocked
            g.wasted_tokens += t.wasted_tokens
            g.wasted_cost += t.wasted_cost
        return dict(grouped)

    def format(self) -> str:
        """The report as plain text: totals; by team, workflow, tier and model; waste; per-run spread."""
        lines: list[str] = []
        total = Totals()
        for t in self.rollup("team").values():
            _add(total, t)
        if total.calls:
            lines.append(f"Total: {total.calls - total.blocked:,} calls sent ({total.blocked:,} blocked before "
                         f"sending), {total.total_tokens:,} tokens, ${_usd(total.cost)}"
                         + (f" + {total.unpriced_tokens:,} unpriced tokens" if total.unpriced_tokens else ""))
            lines.append("")
        for by in ("team", "workflow", "tier", "model"):
            rows = sorted(self.rollup(by).items(), key=lambda kv: -kv[1].cost)
            if not rows:
                continue
            waste = by in ("team", "workflow")
            lines.append(f"By {by}:")
            lines.append(f"  {by:<26}{'calls':>7}{'blocked':>8}{'tokens':>12}{'cost USD':>13}{'unpriced tok':>14}"
                         + (f"{'wasted tok':>12}" if waste else ""))
            for name, t in rows:
                # A row with only unpriced tokens has no cost, which is not the same as costing $0.
                cost = "unpriced" if not t.cost and t.unpriced_tokens == t.total_tokens > 0 else _usd(t.cost)
                lines.append(
                    f"  {name:<26}{t.calls - t.blocked:>7}{t.blocked:>8}{t.total_tokens:>12,}{cost:>13}"
                    f"{t.unpriced_tokens:>14,}" + (f"{t.wasted_tokens:>12,}" if waste else "")
                )
            lines.append("")
        if total.total_tokens:
            classes = ", ".join(f"{c} {n:,}" for c, n in zip(TOKEN_CLASSES, total.tokens, strict=False) if n)
            lines.append(f"Token classes: {classes}")
            share = 100.0 * total.wasted_tokens / total.total_tokens
            lines.append(f"Wasted on retries and failed steps: {total.wasted_tokens:,} tokens ({share:.1f}%), "
                         f"${_usd(total.wasted_cost)}")
            lines.append("")
        runs = self.runs()
        if runs:
            lines.append("Per-run spread (tokens and cost per run):")
            lines.append(f"  {'workflow':<26}{'runs':>6}{'p50':>10}{'p99':>10}{'max':>10}{'p99/p50':>9}"
                         f"{'cost p50':>11}{'cost p99':>11}")
            for name, values in sorted(runs.items()):
                tokens = sorted(v[0] for v in values)
                costs = sorted(v[1] for v in values)
                p50, p99 = _quantile(tokens, 0.5), _quantile(tokens, 0.99)
                ratio = f"{p99 / p50:.1f}x" if p50 else "-"
                lines.append(f"  {name:<26}{len(tokens):>6}{p50:>10,}{p99:>10,}{tokens[-1]:>10,}{ratio:>9}"
                             f"{_quantile(costs, 0.5):>11.4f}{_quantile(costs, 0.99):>11.4f}")
        return "\n".join(lines).rstrip() + "\n"


def _add(total: Totals, t: Totals) -> None:
    for i, n in enumerate(t.tokens):
        total.tokens[i] += n
    total.cost += t.cost
    total.unpriced_tokens += t.unpriced_tokens
    total.calls += t.calls
    total.blocked += t.blocked
    total.wasted_tokens += t.wasted_tokens
    total.wasted_cost += t.wasted_cost


def _usd(value: Decimal) -> str:
    return f"{value:.6f}"


def _quantile(sorted_values: list[_N], q: float) -> _N:
    if not sorted_values:
        raise ValueError("no values")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]
