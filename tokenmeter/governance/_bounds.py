"""Reservations made with an upper bound while the tokenizer loads, and their trimming to the exact count.

Right after ``configure()`` the ``o200k_base`` encoding is still being built by the warm-up thread
(~0.2-0.5 s). A call arriving then does not wait for it: its input is counted as an upper bound (the
UTF-8 bytes of its text, never below the exact count; see ``_tokens``), and that bound is reserved.
What keeps the budgets exact:

* An admission made with a bound is one exact counting makes too: ``fits`` is monotone in the amount
  wanted, and a bound is never below the exact estimate. The overspend bound (spend <= limit +
  sum(actual - estimate) over under-estimated calls) can only shrink: a larger estimate under-estimates less.
* A reserve **refused** while a bound took part -- the call's own estimate, or a bound held by another
  call of this gate -- waits for the tokenizer, trims every bound this gate holds to its exact count,
  and is decided again with the exact count: no call is refused that exact counting would admit
  (:meth:`Bounds._exactify`). The run guard does the same.
* Every bound held is trimmed by the thread that loaded the encoding, right after it (so a bound is held
  for about the load time -- which waits for pauses in the calls, at most ``_pacing.MAX_WAIT_S`` --, not
  the call's duration). Trimming reserves the exact amounts under a new
  id (``enforce=False``: it is admitted like the reservation it replaces was) *before* it releases the
  bound, so the call never holds less than its exact estimate, even for an instant.

What this cannot do: another *process* in its own first moments holds its bounds in a shared store
until its own tokenizer is loaded (it trims them then); a call of this process refused in that window
sees them, as it would see any reservation.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

from .. import _lifecycle, _pacing, _safe
from .._ids import new_id
from .._usage import Usage
from ._budget import REQUESTS
from ._settler import Pending
from ._stores import to_nano


class Estimate(NamedTuple):
    """Tokens and nano-dollars a call is expected to use (``usd`` is ``None`` for an unpriced model).

    ``bound``: the input was counted as an upper bound while the tokenizer loads (see ``_bounds``)."""

    tokens: int
    usd: int | None
    bound: bool = False


PASSIVE_WAIT_S = 30.0  # the trimming thread waits this long for the background load, then loads itself


class Bounds:
    """Mixin of the gate: its pre-call estimates, the tickets reserved with a bound and the thread trimming them."""

    meter: Any  # set by the gate
    expected_output_tokens: int
    _estimates: Any

    def _init_bounds(self) -> None:
        self._bounds: dict[int, tuple[Any, Any]] = {}  # id(ticket) -> (ticket, call)
        self._bound_lock = _lifecycle.lock()
        self._trimming = False
        self.meter.tokenizer.when_loaded(self._trim_loaded)  # trims in the thread that loaded the encoding

    def _hold_bound(self, ticket: Any, call: Any) -> None:
        """Remember ``ticket`` (reserved with a bound); it is trimmed once its encoding is loaded."""
        from .._warmup import Warmup

        with self._bound_lock:
            self._bounds[id(ticket)] = (ticket, call)
            # Loaded since this call was estimated: the load's hook ran before; trim in a thread (rare).
            if not self._trimming and self.meter.tokenizer.ready(call.request.model):
                self._trimming = True
                Warmup([("budget bounds", self._trim_all)]).start()

    def _trim_loaded(self) -> None:
        """Trim the bounds whose encoding is now loaded (never waits for another load)."""
        with self._bound_lock:
            entries = list(self._bounds.values())
        for ticket, call in entries:
            if self.meter.tokenizer.ready(call.request.model):
                self._trim(ticket)

    def _unbound(self, ticket: Any, exact: bool = False) -> None:
        """Forget ``ticket`` before it is settled or released; ``exact``: trim it first (the estimate is charged).

        Takes the lock even when the ticket is gone: a trim in progress (which holds it while it swaps the
        reservation in the store) finishes first, so the caller then settles the reservation it left."""
        if exact and id(ticket) in self._bounds:
            self._trim(ticket)
        with self._bound_lock:
            self._bounds.pop(id(ticket), None)

    def _trim_all(self) -> None:
        """The trimming thread: trim every bound held until none is left (waits for the tokenizer)."""
        deadline = time.monotonic() + PASSIVE_WAIT_S
        while True:
            with self._bound_lock:
                if not self._bounds:
                    self._trimming = False
                    return
                ticket, call = next(iter(self._bounds.values()))
            # Wait for the paced background load without hurrying it (a waiting caller would lift its pacing).
            while (
                not self.meter.tokenizer.ready(call.request.model)
                and time.monotonic() < deadline
                and not _pacing._urgent
            ):
                time.sleep(0.005)
            self._trim(ticket)

    def _exactify(self) -> None:
        """Wait for the tokenizer, then trim every bound this gate holds (before a refusal is final)."""
        with self._bound_lock:
            tickets = [t for t, _ in self._bounds.values()]
        for ticket in tickets:
            self._trim(ticket)

    def _trim(self, ticket: Any) -> None:
        """Replace ``ticket``'s bound by its exact estimate: in the store (exact first, then the bound
        released), on the run guard, and in the ticket itself. Never raises."""
        entry = self._bounds.get(id(ticket))
        if entry is None:
            return
        call = entry[1]
        try:
            exact = self._measure(call, wait=True)[0]  # waits for the encoding
            with self._bound_lock:
                if self._bounds.pop(id(ticket), None) is None:
                    return  # settled or trimmed meanwhile
                if ticket.bound:
                    self._trim_lines(ticket, exact)
                if ticket.run is not None and ticket.estimate.bound:
                    old = ticket.estimate
                    self._runs.adjust(ticket.run, exact.tokens - old.tokens, (exact.usd or 0) - (old.usd or 0))  # type: ignore[attr-defined]
                    ticket.estimate = exact
        except Exception:
            with self._bound_lock:
                self._bounds.pop(id(ticket), None)
            _safe.log_once("gate.trim", "tokenmeter: trimming a pre-call bound failed; it holds until the call settles")

    def _trim_lines(self, ticket: Any, exact: Any) -> None:
        lines = [
            line if line.key.endswith(REQUESTS) else line.with_amounts(exact.usd or 0, exact.tokens)
            for line in ticket.lines
        ]
        if ticket.rid is not None and self.store is not None:  # type: ignore[attr-defined]
            now = self.clock()  # type: ignore[attr-defined]
            rid = new_id()
            loose = [dataclasses.replace(line, enforce=False) for line in lines]
            admission = self._exchange([], (rid, loose, now, now + self.lease_s))[1]  # type: ignore[attr-defined]
            assert admission is not None and admission.admitted
            self.leases.hold(rid, [line.key for line in lines])  # type: ignore[attr-defined]
            old, ticket.rid = ticket.rid, rid
            zero = [line.with_amounts(0, 0) for line in ticket.lines]
            ticket.lines, ticket.bound = lines, False
            self._exchange([Pending(old, zero, ticket.budgets, now, None)])  # type: ignore[attr-defined]
        else:
            ticket.lines, ticket.bound = lines, False

    def _estimate(self, call: Any, wait: bool = False) -> Estimate:
        """``call``'s estimate, counted in ``tokenmeter.budget.estimates`` (an upper bound while the
        tokenizer loads, unless ``wait``)."""
        estimate, exact = self._measure(call, wait)
        self._estimates.add(
            1,
            {
                "gen_ai.provider.name": call.request.provider,
                "tokenmeter.estimate.exact": exact,
                "tokenmeter.estimate.upper_bound": estimate.bound,
            },
        )
        return estimate

    def _measure(self, call: Any, wait: bool) -> tuple[Estimate, bool]:
        """``call``'s estimate and whether its input was counted exactly."""
        req = call.request
        meter = self.meter
        text = req.messages if req.messages is not None else req.prompt
        counted = meter.tokenizer.count(text, req.model, wait=wait) if text else None
        n_in = int(counted) if counted is not None else 0
        if req.operation == "embeddings":
            n_out = 0
        else:
            n_out = req.max_tokens if req.max_tokens is not None else self.expected_output_tokens
        cost = meter.prices.cost(req.provider, req.model, Usage(input=n_in, output=n_out))
        usd = None if cost.usd is None else to_nano(cost.usd)
        bound = counted is not None and counted.bound
        return Estimate(n_in + n_out, usd, bound), counted is not None and not counted.estimated
