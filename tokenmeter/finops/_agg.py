"""Events from the hot path, folded into hourly usage cells and run rows (off the caller's thread).

The metered call only appends a tuple (:data:`CALL`, :data:`WASTE`, :data:`STEP`, :data:`RUN` events) to the
sink's queue; everything here runs on the ledger's writer thread, or on a caller's thread only when the queue
is full (then the event is folded here directly instead of queued: never dropped, never blocking on I/O).
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .._usage import TOKEN_CLASSES, class_counts
from ._runfold import PendingRuns, add_cost

CALL, WASTE, STEP, RUN = 0, 1, 2, 3
HOUR = 3600

# (hour, env, team, workflow, agent, tier, provider, model, operation, token_class, outcome, customer, cost_source)
CellKey = tuple[int, str, str, str, str, str, str, str, str, str, str, str, str]
KEY_FIELDS = (
    "env",
    "team",
    "workflow",
    "agent",
    "tier",
    "provider",
    "model",
    "operation",
    "token_class",
    "outcome",
    "customer",
    "cost_source",
)


@dataclass(slots=True)
class Cell:
    """Running sums of one usage key (cost ``None``: unpriced)."""

    tokens: int = 0
    cost: Decimal | None = None
    list_cost: Decimal | None = None
    unpriced: int = 0
    estimated: int = 0
    wasted_tokens: int = 0
    wasted_cost: Decimal = Decimal(0)
    calls: int = 0
    units: int = 0  # on a unit row (token class = a unit name): how many units were charged

    def merge(self, other: Cell) -> None:
        """Add ``other`` into this cell."""
        self.tokens += other.tokens
        self.cost = add_cost(self.cost, other.cost)
        self.list_cost = add_cost(self.list_cost, other.list_cost)
        self.unpriced += other.unpriced
        self.estimated += other.estimated
        self.wasted_tokens += other.wasted_tokens
        self.wasted_cost += other.wasted_cost
        self.calls += other.calls
        self.units += other.units


@dataclass(slots=True)
class RunRecord:
    """One finished run as the writer stores it."""

    run_id: str
    start: float
    env: str
    team: str
    workflow: str
    customer: str
    duration_s: float
    calls: int
    steps: int
    max_depth: int
    tokens: list[int]
    cost: Decimal | None
    outcome: str
    business_outcome: str | None
    succeeded: bool | None
    step_results: dict[int, list[int]] = field(default_factory=dict)  # depth -> [ok, failed]


def month_start(ts: int) -> int:
    """Epoch seconds of the first instant of ``ts``'s UTC month."""
    d = datetime.fromtimestamp(ts, UTC)
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())


def next_month(ts: int) -> int:
    """Epoch seconds of the first instant of the UTC month after ``ts``'s."""
    d = datetime.fromtimestamp(ts, UTC)
    y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return int(datetime(y, m, 1, tzinfo=UTC).timestamp())


def default_env() -> str:
    """``deployment.environment.name`` (or ``deployment.environment``) from ``OTEL_RESOURCE_ATTRIBUTES``."""
    for part in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, val = part.partition("=")
        if key.strip() in ("deployment.environment.name", "deployment.environment") and val.strip():
            return val.strip()
    return ""


class Aggregate:
    """Hourly usage cells, finished runs and per-run step tallies, filled from events."""

    def __init__(self, list_prices: Any = None, env: str = "", max_runs: int = 10_000) -> None:
        self.cells: dict[CellKey, Cell] = defaultdict(Cell)
        self.max_runs = max_runs  # finished runs kept one by one until written (the rest fold: see PendingRuns)
        self.held = 0  # of those, already held by the sink (unwritten from a failed write)
        self.runs = PendingRuns(max_runs)
        self._open_runs: dict[str, tuple[int, dict[int, list[int]]]] = {}  # run id -> (max depth, step tallies)
        self.list_prices = list_prices
        self.env = env
        self.lock = threading.Lock()

    def take(self) -> tuple[dict[CellKey, Cell], PendingRuns]:
        """Hand over what was gathered and start empty (open runs' tallies stay)."""
        with self.lock:
            cells, runs = self.cells, self.runs
            self.cells, self.runs = defaultdict(Cell), PendingRuns(max(0, self.max_runs - self.held))
            return cells, runs

    def hold(self, held: int) -> None:
        """The sink holds ``held`` unwritten runs: new runs get the rest of ``max_runs`` before folding."""
        with self.lock:
            self.held = held
            self.runs.limit = max(0, self.max_runs - held)

    # -- events ------------------------------------------------------------------------------------
    def absorb(self, event: tuple[Any, ...]) -> None:
        """Fold one event (caller holds ``self.lock``)."""
        kind = event[0]
        if kind == CALL:
            self._call(*event[1:])
        elif kind == WASTE:
            self._waste(*event[1:])
        elif kind == STEP:
            self._step(event[1], event[2], event[3])
        else:
            self._run(*event[1:])

    def _base(self, ts: float, scope: Any) -> tuple[int, str, str, str, str]:
        return (
            int(ts) // HOUR * HOUR,
            scope.env or self.env,
            scope.team or "-",
            scope.workflow or "-",
            scope.agent or "",
        )

    def _call(
        self,
        ts: float,
        scope: Any,
        tier: str,
        provider: str,
        model: str,
        operation: str,
        usage: Any,
        cost: Any,
        outcome: str,
    ) -> None:
        hour, env, team, wf, agent = self._base(ts, scope)
        # A cell's key: where (hour .. operation) + (class or unit, outcome, customer, cost source).
        where = (hour, env, team, wf, agent, tier, provider, model, operation)
        customer = getattr(scope, "customer", None) or ""
        source = cost.source
        cells = self.cells
        run = scope.run
        if run is not None:
            self._step(run.run_id, scope.depth, outcome == "ok")
        if usage is None:
            cells[(*where, "input", outcome, customer, source)].calls += 1
            return
        by_class = cost.by_class
        list_parts = self._list_parts(provider, model, usage, cost)
        estimated = usage.estimated
        for i, n in enumerate(class_counts(usage)):
            if not n and i:
                continue
            cell = cells[(*where, TOKEN_CLASSES[i], outcome, customer, source)]
            cell.tokens += n
            if i == 0:
                cell.calls += 1
            if by_class is None:
                cell.unpriced += n
            else:
                cell.cost = by_class[i] if cell.cost is None else cell.cost + by_class[i]
            if list_parts is not None:
                cell.list_cost = list_parts[i] if cell.list_cost is None else cell.list_cost + list_parts[i]
            if estimated:
                cell.estimated += n
        if usage.units or cost.units:
            self._units(where, outcome, customer, usage, cost)

    def _units(self, where: tuple[Any, ...], outcome: str, customer: str, usage: Any, cost: Any) -> None:
        """Per-request units (web searches, cache storage...): a row of their own named by the unit, with the
        count and the cost (0 tokens, so token totals stay the five classes'); list cost is the same charge
        when the table's. A unit without a rate keeps its count under the source ``unpriced`` (cost unknown,
        never $0); a request fee counts one request per call."""
        source = cost.source
        listed = source.startswith("table:")
        priced = dict(cost.units)
        counts = dict(usage.units)
        if "request" in priced:
            counts.setdefault("request", 1)
        cells = self.cells
        for name, n in counts.items():
            usd = priced.get(name)
            cell = cells[(*where, name, outcome, customer, source if usd is not None else "unpriced")]
            cell.units += n
            if usd is not None:
                cell.cost = usd if cell.cost is None else cell.cost + usd
                if listed:
                    cell.list_cost = usd if cell.list_cost is None else cell.list_cost + usd

    def _list_parts(self, provider: str, model: str, usage: Any, cost: Any) -> tuple[Decimal, ...] | None:
        """The published (price table) cost of each class: the cost itself unless overridden or reported."""
        if cost.by_class is not None and cost.source.startswith("table:"):
            return tuple(cost.by_class)
        if self.list_prices is None:
            return None
        table = self.list_prices.cost(provider, model, usage)
        return None if table.by_class is None else tuple(table.by_class)

    def _waste(self, ts: float, scope: Any, tokens: list[int], cost: Decimal) -> None:
        hour, env, team, wf, agent = self._base(ts, scope)
        customer = getattr(scope, "customer", None) or ""
        classes = [i for i, n in enumerate(tokens) if n] or [0]
        for j, i in enumerate(classes):
            cell = self.cells[
                (hour, env, team, wf, agent, scope.tier or "", "", "", "", TOKEN_CLASSES[i], "ok", customer, "")
            ]
            cell.wasted_tokens += tokens[i]
            if j == 0:
                cell.wasted_cost += cost

    def _step(self, run_id: str, depth: int, ok: bool) -> None:
        found = self._open_runs.get(run_id)
        if found is None:
            if len(self._open_runs) > 100_000:  # runs that never finished (a lost frame): forget the oldest
                self._open_runs.pop(next(iter(self._open_runs)))
            found = self._open_runs[run_id] = (depth, {})
        max_depth, tallies = found
        if depth > max_depth:
            self._open_runs[run_id] = (depth, tallies)
        tally = tallies.get(depth)
        if tally is None:
            tally = tallies[depth] = [0, 0]
        tally[0 if ok else 1] += 1

    def _run(
        self,
        ts: float,
        scope: Any,
        run: Any,
        tokens: list[int],
        cost: Decimal,
        unpriced: int,
        calls: int,
        steps: int,
        outcome: str,
    ) -> None:
        max_depth, tallies = self._open_runs.pop(run.run_id, (scope.depth, {}))
        marks = run.marks
        business = marks.get("outcome")
        succeeded = marks.get("success")
        total = sum(tokens)
        self.runs.add(
            RunRecord(
                run.run_id,
                run.started,
                scope.env or self.env,
                scope.team or "-",
                scope.workflow or "-",
                getattr(scope, "customer", None) or "",
                max(0.0, ts - run.started),
                calls,
                steps,
                max_depth,
                list(tokens),
                None if total and unpriced >= total else cost,
                outcome,
                business,
                succeeded,
                tallies,
            )
        )
