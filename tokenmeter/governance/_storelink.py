"""The gate's link to its budget store: one exchange per write, the outage cooldown and journal, lease renewal.

:class:`StoreLink` is the part of :class:`~tokenmeter.governance._gate.Gate` that talks to the store: it writes
queued settles (and a reserve) in one store operation, journals what a fault left unwritten, replays the journal
when the store answers again, renews leases and turns crossed warning levels into warnings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import BudgetStoreUnavailable
from . import _signals
from ._budget import Budget
from ._journal import Journal, Leases, replay
from ._settler import Pending, Settler
from ._stores import Admission, BudgetStore, Line, Settled, StoreUnavailable
from ._stores._base import ReserveOp

_log = logging.getLogger("tokenmeter")
OUTAGE_COOLDOWN_S = 5.0  # after a store fault, skip the store this long instead of timing out on every call


class StoreLink:
    """Store-side plumbing shared by the gate's ``before`` and ``after`` (see the module docstring)."""

    store: BudgetStore | None
    fail_open: bool
    clock: Callable[[], float]
    on_budget_warning: Callable[[Any], Any] | None
    journal: Journal
    leases: Leases
    settler: Settler | None
    _down_until: float | None
    _replaying: threading.Lock

    def _decide(self, call: Any, ticket: Any, decision: str, reason: str, budget: Any = None, **extra: Any) -> None:
        raise NotImplementedError  # the gate records decisions

    def _store_failed(
        self,
        call: Any,
        ticket: Any,
        matched: Sequence[Budget],
        lines: Sequence[Line],
        exc: StoreUnavailable,
        now: float,
    ) -> None:
        if self._down_until is None:
            mode = "allowing calls (fail_open)" if self.fail_open else "blocking calls (fail_open=False)"
            _log.warning("tokenmeter: the budget store is unavailable (%s); %s until it answers again", exc, mode)
        if self._down_until is None or now >= self._down_until:
            self._down_until = now + OUTAGE_COOLDOWN_S
        if not self.fail_open:
            raise BudgetStoreUnavailable(
                f"the budget store is unavailable and fail_open is False: {exc}",
                budget=matched[0].name,
                model=call.request.model,
            )
        ticket.rid, ticket.lines, ticket.budgets = None, lines, matched
        self._decide(call, ticket, "warn", "budget store unavailable; allowed because fail_open is True")

    def _store_ok(self) -> None:
        if self._down_until is not None:
            self._down_until = None
            _log.warning("tokenmeter: the budget store answers again; budgets are enforced")
        if len(self.journal):
            self._replay()

    def _replay(self) -> None:
        """Write the journal (spend the store missed while it was away) to the store, charges first."""
        store = self.store
        if store is None or not len(self.journal) or not self._replaying.acquire(blocking=False):
            return
        try:
            now = self.clock()
            if self._down_until is not None and now < self._down_until:
                return
            if replay(self.journal, store, now, lambda b, lines, settled: self._warn(b, lines, settled, now, None)):
                self._down_until = None
            else:
                self._down_until = now + OUTAGE_COOLDOWN_S
        finally:
            self._replaying.release()

    def _renew(self, held: Sequence[tuple[str, str]], lease_until: float) -> None:
        store = self.store
        now = self.clock()
        if store is None or (self._down_until is not None and now < self._down_until):
            return
        store.renew(held, lease_until)

    def _queued(self) -> list[Pending]:
        return self.settler.take() if self.settler is not None else []

    def _exchange(
        self, items: Sequence[Pending], reserve: ReserveOp | None = None
    ) -> tuple[list[list[Settled]], Admission | None]:
        """Write the settles ``items`` (then reserve, if given) in one store operation; a fault journals them."""
        assert self.store is not None
        try:
            results, admission = self.store.exchange([(i.rid, i.lines, i.now) for i in items], reserve)
        except StoreUnavailable:
            for item in items:
                if item.rid is not None:
                    self.leases.drop(item.rid)
                self.journal.add(item.rid, item.lines, item.budgets)
            if items:
                self.leases.start()
            raise
        finally:
            if self.settler is not None and items:
                self.settler.landed(items)
        for item, settled in zip(items, results, strict=True):
            if item.rid is not None:
                self.leases.drop(item.rid)
            self._warn(item.budgets, item.lines, settled, item.now, item.span)
        self._store_ok()
        return results, admission

    def _send_settles(self, batch: list[Pending]) -> None:
        """The settle thread's write of ``batch`` (journaled while the store is away)."""
        now = self.clock()
        try:
            if self._down_until is not None and now < self._down_until:
                raise StoreUnavailable("in outage cooldown")
            self._exchange(batch)
        except StoreUnavailable as exc:
            self._settle_failed(exc, now)

    def _settle_failed(self, exc: StoreUnavailable, now: float) -> None:
        if self._down_until is None:
            _log.warning(
                "tokenmeter: settling a budget reservation failed (%s); its spend is journaled and "
                "charged when the store answers again",
                exc,
            )
        if self._down_until is None or now >= self._down_until:
            self._down_until = now + OUTAGE_COOLDOWN_S

    def _warn(
        self, budgets: Sequence[Budget], lines: Sequence[Line], settled: Sequence[Any], now: float, span: Any
    ) -> None:
        for budget, line, result in zip(budgets, lines, settled, strict=True):
            if result.warned_after > result.warned_before:
                crossed = budget.warn_at[result.warned_before : result.warned_after]
                _signals.warn(budget, line, result.state, crossed, now, span, self.on_budget_warning)
