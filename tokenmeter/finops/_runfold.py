"""Finished runs that wait for the ledger file, bounded: kept one by one up to ``ledger_max_pending_runs``, the
rest folded into per-hour sums (:class:`RunFold`) written to the table ``runs_folded`` (issue 16)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._usage import TOKEN_CLASSES

if TYPE_CHECKING:
    from ._agg import RunRecord

HOUR = 3600


def add_cost(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    """``a + b`` where ``None`` is an unknown (unpriced) cost: unknown plus a known cost is the known part."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


# (hour of the run's start, env, team, workflow, customer, outcome): runs folded when too many wait for the file
RunFoldKey = tuple[int, str, str, str, str, str]


@dataclass(slots=True)
class RunFold:
    """Sums of the finished runs of one :data:`RunFoldKey` that did not fit the pending list (``runs`` of them)."""

    runs: int = 0
    calls: int = 0
    steps: int = 0
    max_depth: int = 0
    tokens: list[int] = field(default_factory=lambda: [0] * len(TOKEN_CLASSES))
    cost: Decimal | None = None  # the priced runs' cost; ``None`` while every run is unpriced
    unpriced_runs: int = 0
    duration_s: float = 0.0
    succeeded: int = 0  # runs marked success=True / False (the rest were not marked)
    failed: int = 0

    def add(self, r: RunRecord) -> None:
        """Fold one run in."""
        self.runs += 1
        self.calls += r.calls
        self.steps += r.steps
        self.max_depth = max(self.max_depth, r.max_depth)
        tokens = self.tokens
        for i, n in enumerate(r.tokens[: len(tokens)]):
            tokens[i] += n
        if r.cost is None:
            self.unpriced_runs += 1
        else:
            self.cost = r.cost if self.cost is None else self.cost + r.cost
        self.duration_s += r.duration_s
        if r.succeeded is not None:
            if r.succeeded:
                self.succeeded += 1
            else:
                self.failed += 1

    def merge(self, o: RunFold) -> None:
        """Add another fold of the same key."""
        self.runs += o.runs
        self.calls += o.calls
        self.steps += o.steps
        self.max_depth = max(self.max_depth, o.max_depth)
        self.tokens = [a + b for a, b in zip(self.tokens, o.tokens, strict=True)]
        self.cost = add_cost(self.cost, o.cost)
        self.unpriced_runs += o.unpriced_runs
        self.duration_s += o.duration_s
        self.succeeded += o.succeeded
        self.failed += o.failed


class PendingRuns:
    """Finished runs waiting for the file: the first ``limit`` one by one, the rest folded per hour and
    attribution (:class:`RunFold`), so memory is bounded however long the file cannot be written.

    Every run is in exactly one of the two (never both), so nothing is counted twice when written.
    """

    __slots__ = ("folded", "limit", "runs")

    def __init__(self, limit: int) -> None:
        self.runs: list[RunRecord] = []
        self.folded: dict[RunFoldKey, RunFold] = {}
        self.limit = limit

    def add(self, r: RunRecord) -> None:
        """Keep ``r`` whole if there is room, else fold it."""
        if len(self.runs) < self.limit:
            self.runs.append(r)
            return
        key = (int(r.start) // HOUR * HOUR, r.env, r.team, r.workflow, r.customer, r.outcome)
        fold = self.folded.get(key)
        if fold is None:
            fold = self.folded[key] = RunFold()
        fold.add(r)

    def extend(self, newer: PendingRuns) -> None:
        """Append ``newer`` (runs that finished after these) within this list's limit."""
        for r in newer.runs:
            self.add(r)
        for key, fold in newer.folded.items():
            mine = self.folded.get(key)
            if mine is None:
                self.folded[key] = fold
            else:
                mine.merge(fold)

    def folded_runs(self) -> int:
        """How many runs are folded (not kept one by one)."""
        return sum(f.runs for f in self.folded.values())

    def __bool__(self) -> bool:
        return bool(self.runs or self.folded)


# Runs folded when more than ledger_max_pending_runs waited for the file (see _agg.PendingRuns); created with
# the first fold, so a ledger that never fell behind has no such table.
FOLDED_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs_folded (
  period INTEGER NOT NULL, env TEXT NOT NULL, team TEXT NOT NULL, workflow TEXT NOT NULL, customer TEXT NOT NULL,
  outcome TEXT NOT NULL, runs INTEGER NOT NULL, calls INTEGER NOT NULL, steps INTEGER NOT NULL,
  max_depth INTEGER NOT NULL, tok_input INTEGER NOT NULL, tok_cache_read INTEGER NOT NULL,
  tok_cache_write INTEGER NOT NULL, tok_output INTEGER NOT NULL, tok_reasoning INTEGER NOT NULL,
  cost_nano INTEGER, unpriced_runs INTEGER NOT NULL, duration_s REAL NOT NULL, succeeded INTEGER NOT NULL,
  failed INTEGER NOT NULL,
  PRIMARY KEY (period, env, team, workflow, customer, outcome)
) WITHOUT ROWID"""
_FOLDED_SUMS = ("runs", "calls", "steps", "tok_input", "tok_cache_read", "tok_cache_write", "tok_output")
FOLDED_UPSERT = (
    "INSERT INTO runs_folded VALUES (" + ",".join("?" * 20) + ") ON CONFLICT (period, env, team, workflow, customer, "
    "outcome) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in (*_FOLDED_SUMS, "tok_reasoning", "unpriced_runs", "duration_s"))
    + ", succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed"
    + ", max_depth = max(max_depth, excluded.max_depth)"
    + ", cost_nano = CASE WHEN cost_nano IS NULL THEN excluded.cost_nano WHEN excluded.cost_nano IS NULL "
    "THEN cost_nano ELSE cost_nano + excluded.cost_nano END"
)


def folded_row(key: RunFoldKey, f: RunFold, cost_nano: int | None) -> tuple[Any, ...]:
    """One ``runs_folded`` row (the columns of :data:`FOLDED_SCHEMA`, in order)."""
    return (
        *key,
        f.runs,
        f.calls,
        f.steps,
        f.max_depth,
        *f.tokens,
        cost_nano,
        f.unpriced_runs,
        f.duration_s,
        f.succeeded,
        f.failed,
    )


def fold_dict(key: RunFoldKey, f: RunFold) -> dict[str, Any]:
    """One fold as :func:`read_folded` yields it (the in-memory reader's ``folded_runs``)."""
    return {
        "start": datetime.fromtimestamp(key[0], UTC),
        "env": key[1],
        "team": key[2],
        "workflow": key[3],
        "customer": key[4],
        "outcome": key[5],
        "runs": f.runs,
        "calls": f.calls,
        "steps": f.steps,
        "max_depth": f.max_depth,
        "tokens": dict(zip(TOKEN_CLASSES, f.tokens, strict=False)),
        "cost_usd": f.cost,
        "unpriced_runs": f.unpriced_runs,
        "duration_s": f.duration_s,
        "succeeded": f.succeeded,
        "failed": f.failed,
    }


def read_folded(query: Callable[..., Any], start: datetime, end: datetime, env: str | None) -> list[dict[str, Any]]:
    """The ``runs_folded`` rows of hours in ``[start, end)``: one dict per (hour, env, team, workflow, customer,
    outcome) with ``runs`` and their summed ``calls``, ``steps``, ``tokens`` (per class), ``cost_usd`` (``None``:
    all unpriced), ``unpriced_runs``, ``duration_s``, ``succeeded`` / ``failed`` counts and the deepest
    ``max_depth``. Empty when the table does not exist (the writer never fell that far behind)."""
    if not query("SELECT 1 FROM sqlite_master WHERE name = 'runs_folded'", []).fetchone():
        return []
    cur = query(
        "SELECT * FROM runs_folded WHERE period >= ? AND period < ?",
        [int(start.timestamp()), int(end.timestamp())],
        env,
    )
    names = [d[0] for d in cur.description]
    out = []
    for r in cur.fetchall():
        row = dict(zip(names, r, strict=True))
        row["start"] = datetime.fromtimestamp(row.pop("period"), UTC)
        cost = row.pop("cost_nano")
        row["cost_usd"] = None if cost is None else Decimal(cost) / Decimal(10) ** 9
        row["tokens"] = {c: row.pop(f"tok_{c}") for c in TOKEN_CLASSES}
        out.append(row)
    return out
