"""What this process metered, in memory: the source of ``meter.report()`` and of :class:`MemoryReader`."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._usage import TOKEN_CLASSES
from ._agg import HOUR, Cell, CellKey, RunRecord, month_start, next_month
from ._runfold import RunFold, RunFoldKey, fold_dict

if TYPE_CHECKING:  # loaded when read (the writer, built by configure(), only merges)
    from .._ledger import Totals
    from ._rows import Granularity, RunRow, UsageRow

MAX_RUNS_KEPT = 10_000  # per workflow, for the per-run spread; older runs drop off
HOURLY_KEPT_S = 48 * 3600  # in-memory cells older than this are kept per day


class MemoryStore:
    """Usage cells (exact Decimal costs), the latest runs of each workflow and the runs folded into per-hour
    sums when more than ``ledger_max_pending_runs`` waited for the writer (``folded``, never dropped; like
    the cells, per hour for the last ``HOURLY_KEPT_S``, per day before).

    Cells are hourly for the last ``HOURLY_KEPT_S`` and daily before (a long-running process keeps
    attributions x days, not attributions x hours); ``days`` holds the daily cells, keyed by day start.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cells: dict[CellKey, Cell] = defaultdict(Cell)
        self.days: dict[CellKey, Cell] = defaultdict(Cell)
        self.runs: dict[str, deque[RunRecord]] = defaultdict(lambda: deque(maxlen=MAX_RUNS_KEPT))
        self.folded: dict[RunFoldKey, RunFold] = {}
        self._compacted_hour = 0

    def merge(
        self,
        cells: dict[CellKey, Cell],
        runs: list[RunRecord],
        now: float | None = None,
        folded: dict[RunFoldKey, RunFold] | None = None,
    ) -> None:
        """Add a batch handed over by the writer (``folded``: its runs folded into sums, copied: the writer's
        folds may keep growing until written)."""
        hour = int(time.time() if now is None else now) // HOUR * HOUR
        with self.lock:
            for key, cell in cells.items():
                self.cells[key].merge(cell)
            for run in runs:
                self.runs[run.workflow].append(run)
            for fkey, fold in (folded or {}).items():
                mine = self.folded.get(fkey)
                if mine is None:
                    mine = self.folded[fkey] = RunFold()
                mine.merge(fold)
            if hour != self._compacted_hour:
                self._compacted_hour = hour
                cutoff = hour - HOURLY_KEPT_S
                for key in [k for k in self.cells if k[0] < cutoff]:
                    cell = self.cells.pop(key)
                    self.days[(key[0] - key[0] % 86400, *key[1:])].merge(cell)
                for fkey in [k for k in self.folded if k[0] < cutoff and k[0] % 86400]:  # folds too, per day
                    fold = self.folded.pop(fkey)
                    day: RunFoldKey = (fkey[0] - fkey[0] % 86400, *fkey[1:])
                    into = self.folded.get(day)
                    if into is None:
                        self.folded[day] = fold
                    else:
                        into.merge(fold)

    def snapshot(self) -> tuple[list[tuple[CellKey, Cell]], list[RunRecord]]:
        """Copies to read without holding the lock (daily cells carry their day's start as the hour)."""
        with self.lock:
            cells = [
                (
                    k,
                    Cell(
                        c.tokens,
                        c.cost,
                        c.list_cost,
                        c.unpriced,
                        c.estimated,
                        c.wasted_tokens,
                        c.wasted_cost,
                        c.calls,
                        c.units,
                    ),
                )
                for d in (self.days, self.cells)
                for k, c in d.items()
            ]
            runs = [r for q in self.runs.values() for r in q]
        return cells, runs

    def folds(self) -> list[dict[str, Any]]:
        """Copies of the folded runs, as :func:`._runfold.read_folded` yields them."""
        with self.lock:
            return [fold_dict(k, f) for k, f in self.folded.items()]

    def rollup(self, by: str) -> dict[str, Totals]:
        """Totals grouped by ``team``, ``workflow``, ``tier``, ``provider`` or ``model`` (waste: team/workflow)."""
        from .._ledger import Totals

        index = {"team": 2, "workflow": 3, "tier": 5, "provider": 6, "model": 7}[by]
        grouped: dict[str, Totals] = defaultdict(Totals)
        for key, c in self.snapshot()[0]:
            name = str(key[index])
            if not name:
                continue
            t = grouped[name]
            if key[9] in TOKEN_CLASSES:  # a unit row (web searches...) adds its cost, not tokens
                t.tokens[TOKEN_CLASSES.index(key[9])] += c.tokens
            t.cost += c.cost or 0
            t.unpriced_tokens += c.unpriced
            t.calls += c.calls
            if key[10] == "error":
                t.errors += c.calls
            elif key[10] == "blocked":
                t.blocked += c.calls
            t.wasted_tokens += c.wasted_tokens
            t.wasted_cost += c.wasted_cost
        return dict(grouped)


def run_row(r: RunRecord) -> RunRow:
    """A stored run as the shared row type."""
    from ._rows import RunRow

    return RunRow(
        r.run_id,
        r.workflow,
        r.team,
        r.env,
        datetime.fromtimestamp(r.start, UTC),
        r.duration_s,
        r.calls,
        r.steps,
        r.max_depth,
        dict(zip(TOKEN_CLASSES, r.tokens, strict=False)),
        r.cost,
        r.outcome,
        r.business_outcome,
        r.customer,
        succeeded=r.succeeded,
        step_results={d: (t[0], t[1]) for d, t in r.step_results.items()},
    )


def _period(hour: int, granularity: str) -> tuple[int, int]:
    if granularity == "hour":
        return hour, hour + HOUR
    if granularity == "day":
        day = hour - hour % 86400
        return day, day + 86400
    m = month_start(hour)
    return m, next_month(m)


class MemoryReader:
    """A :class:`~tokenmeter.finops.Reader` over a meter's in-memory store (tests, notebooks, ``report()``)."""

    granularities = ("hour", "day", "month")

    def __init__(self, meter: Any) -> None:
        self.meter = meter

    def describe(self) -> str:
        """Where the rows come from."""
        return "memory (this process)"

    def _store(self) -> MemoryStore:
        sink = self.meter.ledger
        sink.flush()
        store: MemoryStore = sink.memory
        return store

    def usage(
        self, start: datetime, end: datetime, *, env: str | None = None, granularity: Granularity | str = "day"
    ) -> Iterable[UsageRow]:
        """Usage rows of hours in ``[start, end)`` aggregated to ``granularity``."""
        from ._rows import UsageRow

        a, b = start.timestamp(), end.timestamp()
        grouped: dict[tuple[int, int, tuple[str, ...]], Cell] = defaultdict(Cell)
        for cell_key, cell in self._store().snapshot()[0]:
            if a <= cell_key[0] < b and (env is None or cell_key[1] == env):
                p0, p1 = _period(cell_key[0], granularity)
                grouped[(p0, p1, cell_key[1:])].merge(cell)
        for (p0, p1, d), c in grouped.items():
            yield UsageRow(
                start=datetime.fromtimestamp(p0, UTC),
                end=datetime.fromtimestamp(p1, UTC),
                env=d[0],
                team=d[1],
                workflow=d[2],
                agent=d[3],
                tier=d[4],
                provider=d[5],
                model=d[6],
                operation=d[7],
                token_class=d[8],
                outcome=d[9],
                customer=d[10],
                cost_source=d[11],
                tokens=c.tokens,
                cost_usd=c.cost,
                list_cost_usd=c.list_cost,
                unpriced_tokens=c.unpriced,
                estimated_tokens=c.estimated,
                wasted_tokens=c.wasted_tokens,
                wasted_cost_usd=c.wasted_cost,
                calls=c.calls,
                units=c.units,
            )

    def runs(self, start: datetime, end: datetime, *, env: str | None = None) -> Iterable[RunRow]:
        """Runs (the latest 10,000 per workflow) that started in ``[start, end)``."""
        a, b = start.timestamp(), end.timestamp()
        for r in self._store().snapshot()[1]:
            if a <= r.start < b and (env is None or r.env == env):
                yield run_row(r)

    def folded_runs(self, start: datetime, end: datetime, *, env: str | None = None) -> list[dict[str, Any]]:
        """Runs folded into per-hour sums (more than ``ledger_max_pending_runs`` waited for the writer) whose
        hour is in ``[start, end)``, like :meth:`SQLiteReader.folded_runs <._sqlite.SQLiteReader.folded_runs>`."""
        return [f for f in self._store().folds() if start <= f["start"] < end and (env is None or f["env"] == env)]


__all__ = ["MAX_RUNS_KEPT", "MemoryReader", "MemoryStore", "run_row"]


if TYPE_CHECKING:  # both readers satisfy the shared protocol (checked by mypy)
    from ._rows import Reader
    from ._sqlite import SQLiteReader

    def _conforms(memory: MemoryReader, sqlite: SQLiteReader) -> tuple[Reader, Reader]:
        return memory, sqlite
