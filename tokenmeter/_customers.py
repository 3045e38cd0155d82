"""The opt-in customer dimension on metrics: the top-N spenders of the current window, the rest as ``_other``.

Customer ids are unbounded, so they never become a plain metric attribute. With
``configure(customer_metrics=N)`` two gauges report the window-to-date spend
(``tokenmeter.customer.cost`` in USD, ``tokenmeter.customer.tokens``) of the ``N`` customers that
spent most in the current UTC day, one series each, plus ``_other`` (everyone else) and ``_none``
(calls without a customer). The series of a window always add up exactly to what was metered in it;
membership is recomputed at every collection and everything resets when the window turns (gauges, so
a customer leaving the top N never looks like a counter reset). Exact per-customer totals are kept for
at most ``MAX_TRACKED`` customers per window; customers beyond that are summed straight into ``_other``.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable
from decimal import Decimal

from opentelemetry.metrics import CallbackOptions, Observation

from .governance._windows import bounds, label

OTHER = "_other"
NONE = "_none"
MAX_TRACKED = 200_000
CUSTOMER_ATTR = "tokenmeter.customer.id"
WINDOW_ATTR = "tokenmeter.window.start"


class _Spend:
    __slots__ = ("tokens", "usd")

    def __init__(self) -> None:
        self.usd = Decimal(0)
        self.tokens = 0


class TopCustomers:
    """Window-to-date spend per customer, reported as the top ``n`` plus ``_other`` / ``_none``."""

    def __init__(self, n: int, clock: Callable[[], float], window: str = "1d", max_tracked: int = MAX_TRACKED) -> None:
        self.n = n
        self.window = window
        self.clock = clock
        self.max_tracked = max_tracked
        self._lock = threading.Lock()
        self._start = bounds(window, clock())[0]
        self._spend: dict[str, _Spend] = {}

    def add(self, customer: str, tokens: int, usd: Decimal | None) -> None:
        """Count one call's usage for ``customer`` ("" for none)."""
        start = bounds(self.window, self.clock())[0]
        key = customer or NONE
        with self._lock:
            if start != self._start:
                self._start, self._spend = start, {}
            entry = self._spend.get(key)
            if entry is None:
                if len(self._spend) >= self.max_tracked:
                    key = OTHER
                    entry = self._spend.get(key)
                if entry is None:
                    entry = self._spend[key] = _Spend()
            if usd is not None:
                entry.usd += usd
            entry.tokens += tokens

    def snapshot(self) -> tuple[int, list[tuple[str, Decimal, int]]]:
        """``(window start, [(customer or _other/_none, usd, tokens)])`` -- the top ``n`` and the folded rest."""
        start = bounds(self.window, self.clock())[0]
        with self._lock:
            if start != self._start:
                self._start, self._spend = start, {}
            items = [(k, v.usd, v.tokens) for k, v in self._spend.items()]
        named = [i for i in items if i[0] not in (OTHER, NONE)]
        top = heapq.nlargest(self.n, named, key=lambda i: (i[1], i[2], i[0]))
        chosen = {i[0] for i in top}
        rest_usd, rest_tokens = Decimal(0), 0
        out: list[tuple[str, Decimal, int]] = list(top)
        for key, usd, tokens in items:
            if key == NONE:
                out.append((key, usd, tokens))
            elif key not in chosen:
                rest_usd += usd
                rest_tokens += tokens
        if rest_usd or rest_tokens:
            out.append((OTHER, rest_usd, rest_tokens))
        return start, out

    def observe_cost(self, options: CallbackOptions) -> Iterable[Observation]:
        """``tokenmeter.customer.cost`` points."""
        start, rows = self.snapshot()
        return [Observation(float(usd), {CUSTOMER_ATTR: k, WINDOW_ATTR: label(start)}) for k, usd, _ in rows]

    def observe_tokens(self, options: CallbackOptions) -> Iterable[Observation]:
        """``tokenmeter.customer.tokens`` points."""
        start, rows = self.snapshot()
        return [Observation(tokens, {CUSTOMER_ATTR: k, WINDOW_ATTR: label(start)}) for k, _, tokens in rows]
