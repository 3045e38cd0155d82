"""The ledger sink: a cheap append on the caller's thread, a writer thread that folds and stores.

The hot path appends one tuple to a ``collections.deque`` (atomic under the GIL, no lock, no I/O). A daemon
writer thread wakes every ``flush_interval`` seconds (or when the queue is half full), folds the events into
hourly cells and writes them to the SQLite ledger in one transaction. A full queue never blocks and never
drops: the caller folds its event into the pending aggregate directly and ``stats["folded"]`` counts it.
A ledger file that cannot be written (read-only file system, full disk, locked, corrupt, not ours) is warned
about once and counted (``stats["write_errors"]``); metering continues in memory, and the rows wait to be
written when the file is writable again (a corrupt or foreign file is never written at all).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import _safe
from ._agg import CALL, RUN, STEP, WASTE, Aggregate, Cell, CellKey
from ._memory import MemoryStore
from ._runfold import PendingRuns

if TYPE_CHECKING:
    from ._sqlite import LedgerDB

_log = logging.getLogger("tokenmeter")
_SINKS: weakref.WeakSet[LedgerSink] = weakref.WeakSet()
_DRAIN_CHUNK = 2048
_COMPACT_EVERY_S = 3600.0


def register_fork_hook(after_in_child: Callable[[], None]) -> None:
    """Run ``after_in_child`` in a forked child (re-pointable to a shared at-fork registry)."""
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=after_in_child)


def _reset_after_fork() -> None:
    for sink in list(_SINKS):
        sink._reset_in_child()


register_fork_hook(_reset_after_fork)


class LedgerSink:
    """Receives every metered call, waste, step and finished run; keeps them in memory and (optionally) on disk."""

    def __init__(
        self,
        path: str | Callable[[], str] | None,
        *,
        flush_interval: float = 1.0,
        queue_size: int = 65_536,
        max_pending_runs: int = 10_000,
        retention_days: int = 400,
        run_retention_days: int = 90,
        list_prices: Any = None,
        env: str = "",
    ) -> None:
        # A callable (the default location) is resolved on first need, off configure()'s path: see ``path``.
        self._path: str | None = None if callable(path) else path
        self._path_fn: Callable[[], str] | None = path if callable(path) else None
        self._durable = path is not None
        self.flush_interval = flush_interval
        self.retention_days = retention_days
        self.run_retention_days = run_retention_days
        self._cap = queue_size
        self._max_runs = max_pending_runs
        self._high = max(1, queue_size // 2)
        self._list_prices = list_prices
        self._env = env
        self._init_state()
        _SINKS.add(self)
        atexit.register(self.close)

    @property
    def path(self) -> str | None:
        """The ledger file (``None``: memory only); the default location is computed when first needed."""
        fn = self._path_fn
        if fn is not None:
            self._path, self._path_fn = fn(), None  # idempotent: two threads racing compute the same path
        return self._path

    def _init_state(self) -> None:
        self.stats: dict[str, int] = {
            "queued": 0,
            "folded": 0,
            "written_rows": 0,
            "write_errors": 0,
            "flushes": 0,
            "runs_folded": 0,
        }
        self.degraded: str | None = None  # why the file is not written, if it is not
        self._pid = os.getpid()
        self._q: deque[tuple[Any, ...]] = deque()
        self._agg = Aggregate(self._list_prices, self._env, self._max_runs)
        self.memory = MemoryStore()
        self._unwritten: tuple[dict[CellKey, Cell], PendingRuns] | None = None
        self._db: LedgerDB | None = None
        self._db_failed = False
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._last_compact = 0.0
        self._warned: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="tokenmeter-ledger", daemon=True)
        self._thread.start()

    def _reset_in_child(self) -> None:
        """A forked child starts empty: its parent writes what the parent metered; never reuse its connection."""
        if not self._stop and self._pid != os.getpid():  # (a sink made in the child itself is left alone)
            self._init_state()

    # -- hot path (caller's thread) ------------------------------------------------------------------
    def _put(self, event: tuple[Any, ...]) -> None:
        q = self._q
        n = len(q)
        if n < self._high:
            q.append(event)
            return
        if n < self._cap:
            q.append(event)
            self._wake.set()
            return
        agg = self._agg  # full: fold here, in memory (never dropped, never waiting on the disk)
        with agg.lock:
            try:
                agg.absorb(event)
            except Exception:
                _safe.log_once("ledger.fold", "tokenmeter: folding a ledger event failed")
            self.stats["folded"] += 1
        self._wake.set()

    def call(
        self,
        scope: Any,
        tier: str,
        provider: str,
        model: str,
        operation: str,
        usage: Any,
        cost: Any,
        outcome: str,
        at: float | None = None,
    ) -> None:
        """One metered call (``outcome`` ok / error / blocked; ``usage`` None when none was reported).

        ``at`` is when the call was made (its request time, the moment it is priced at; ``record(timestamp=)``
        back-fills): the row lands in that hour. ``None``: now.
        """
        self._put(
            (CALL, time.time() if at is None else at, scope, tier, provider, model, operation, usage, cost, outcome)
        )

    def waste(self, scope: Any, tokens: list[int], cost: Decimal) -> None:
        """Tokens (per class) and cost of retried attempts or failed steps, reported as wasted."""
        self._put((WASTE, time.time(), scope, tokens, cost))

    def step(self, run_id: str, depth: int, ok: bool) -> None:
        """One agent / step / tool scope of a run finished (ok or raised)."""
        self._put((STEP, run_id, depth, ok))

    def run(
        self,
        scope: Any,
        run: Any,
        tokens: list[int],
        cost: Decimal,
        unpriced: int,
        calls: int,
        steps: int,
        outcome: str,
    ) -> None:
        """One workflow run finished (``outcome`` ok / error / stopped)."""
        self._put((RUN, time.time(), scope, run, tokens, cost, unpriced, calls, steps, outcome))

    def backlog(self) -> dict[str, int]:
        """What waits in memory for the writer or the file: ``events`` queued (at most ``ledger_queue_size``),
        finished ``runs`` kept one by one (at most ``ledger_max_pending_runs``), ``run_folds`` (per-hour sums of
        the runs beyond that) and usage ``cells`` (one per hour and attribution) not yet written."""
        agg, unwritten = self._agg, self._unwritten
        runs = len(agg.runs.runs)
        folds = len(agg.runs.folded)
        cells = len(agg.cells)
        if unwritten is not None:
            runs += len(unwritten[1].runs)
            folds += len(unwritten[1].folded)
            cells += len(unwritten[0])
        return {"events": len(self._q), "runs": runs, "run_folds": folds, "cells": cells}

    # -- writer --------------------------------------------------------------------------------------
    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop:
            # The interval runs from the start of the previous flush, so a slow flush does not stretch it
            # (what a SIGKILL can lose stays within one interval plus the flush in progress).
            self._wake.wait(max(0.0, last + self.flush_interval - time.monotonic()))
            self._wake.clear()
            last = time.monotonic()
            if self._stop:
                break
            try:
                self.flush()
            except Exception:
                _safe.log_once("ledger.loop", "tokenmeter: the ledger writer failed a flush; it keeps running")

    def _drain(self, rounds: bool) -> bool:
        """Fold the queue into the aggregate; with ``rounds``, stop early (True) when the pending runs are full:
        flush writes them and drains on, so a writer that can write keeps every run whole. Without (the file
        cannot be written now), drain it all: the writer folds the runs beyond the bound, not the callers."""
        q, agg = self._q, self._agg
        stats = self.stats
        while q:
            with agg.lock:
                runs = agg.runs
                for _ in range(_DRAIN_CHUNK):
                    if rounds and len(runs.runs) >= runs.limit:
                        return True
                    try:
                        event = q.popleft()
                    except IndexError:
                        break
                    try:
                        agg.absorb(event)
                    except Exception:
                        _safe.log_once("ledger.absorb", "tokenmeter: folding a ledger event failed")
                    stats["queued"] += 1
        return False

    def flush(self) -> bool:
        """Fold everything queued and write it to the file now; False if the file could not be written."""
        with self._flush_lock:
            stalled = 0
            while True:
                before = self.stats["queued"]
                more = self._drain(self._unwritten is None or not self._durable)
                ok = self._flush_taken()
                self.stats["flushes"] += 1
                # each round writes ledger_max_pending_runs runs (a round that drained nothing has just freed
                # the room held by unwritten runs: the next one drains)
                stalled = 0 if self.stats["queued"] > before else stalled + 1
                if not (more and ok) or stalled > 1:
                    return ok

    def _flush_taken(self) -> bool:
        cells, runs = self._agg.take()
        if cells or runs:
            self.memory.merge(cells, runs.runs, folded=runs.folded)
        if runs.folded:
            self._note_folded(runs.folded_runs())
        if not self._durable:
            return True
        if self._unwritten is not None:
            old_cells, old_runs = self._unwritten
            for key, cell in cells.items():
                old_cells.setdefault(key, Cell()).merge(cell)
            before = old_runs.folded_runs()
            old_runs.extend(runs)  # within the bound: the newer runs fold if the older fill it
            self._note_folded(old_runs.folded_runs() - before - runs.folded_runs())
            cells, runs = old_cells, old_runs
            self._unwritten = None
        return self._write(cells, runs)

    def _note_folded(self, n: int) -> None:
        if n > 0:
            self.stats["runs_folded"] += n
            where = f"the ledger {self.path} (as per-hour sums in its table runs_folded)" if self._durable else "memory"
            _safe.warn_once(
                "ledger.runs_folded",
                f"tokenmeter: the ledger writer is behind: more than {self._max_runs} finished runs waited, the "
                f"next are folded into {where} instead of one row each (counted in stats['runs_folded']); their calls, "
                "tokens and cost are all kept (ledger_max_pending_runs)",
            )

    def _hold(self, cells: dict[CellKey, Cell], runs: PendingRuns) -> None:
        self._unwritten = (cells, runs)
        self._agg.hold(len(runs.runs))

    def _write(self, cells: dict[CellKey, Cell], runs: PendingRuns) -> bool:
        if self._db is None and not (cells or runs) and not self._db_failed:
            return True  # the file (its directory, schema, WAL) is created at the first row, not before
        db = self._open()
        if db is None:
            if cells or runs:
                self._hold(cells, runs)
            return False
        try:
            if cells or runs:
                self.stats["written_rows"] += db.write(cells, runs.runs, runs.folded)
                if self._agg.held:
                    self._agg.hold(0)
            now = time.time()
            if now - self._last_compact > _COMPACT_EVERY_S:
                self._last_compact = now
                db.compact(self.retention_days, self.run_retention_days, now)
            if self.degraded is not None:
                _log.warning("tokenmeter: the ledger %s is writable again; pending rows written", self.path)
                self.degraded = None
            return True
        except Exception as exc:
            self.stats["write_errors"] += 1
            self._hold(cells, runs)
            self._degrade(
                "write",
                f"cannot write the ledger {self.path} ({exc}); metering continues in memory "
                "and the rows are written when the file is writable again",
            )
            return False

    def _open(self) -> LedgerDB | None:
        if self._db is not None:
            return self._db
        if self._db_failed or not self._durable:
            return None
        from ._sqlite import LedgerDB, LedgerFileError  # on the writer thread: configure() never loads sqlite3

        try:
            path = self.path  # the default location is computed here, on the writer thread, at the first write
            self._db = LedgerDB(path or "")
        except LedgerFileError as exc:
            self._db_failed = True  # a corrupt or foreign file is never touched again by this process
            self.stats["write_errors"] += 1
            self._degrade(
                "file",
                f"{exc}; the ledger stays in memory (move the file away or set TOKENMETER_LEDGER to another path)",
            )
        except Exception as exc:
            self.stats["write_errors"] += 1
            where = self._path or "(default location)"
            self._degrade("open", f"cannot open the ledger {where} ({exc}); metering continues in memory")
        return self._db

    def _degrade(self, site: str, message: str) -> None:
        self.degraded = message
        if site not in self._warned:
            self._warned.add(site)
            _log.warning("tokenmeter: %s", message)

    # -- lifecycle -----------------------------------------------------------------------------------
    def close(self) -> None:
        """Write what is pending and stop the writer (idempotent; also run at interpreter exit)."""
        if self._stop:
            return
        self._stop = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        try:
            self.flush()
        except Exception:
            _safe.log_once("ledger.close", "tokenmeter: the final ledger flush failed")
        if self._db is not None:
            try:
                self._db.close()
            except Exception:
                pass
            self._db = None
        try:
            atexit.unregister(self.close)
        except Exception:
            pass

    # -- compatibility with the former in-memory ledger ----------------------------------------------
    def rollup(self, by: str) -> Any:
        """Totals grouped by one dimension, from this process's memory (``flush()`` first)."""
        self.flush()
        return self.memory.rollup(by)
