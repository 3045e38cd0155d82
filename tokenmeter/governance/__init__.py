"""Governance: budgets (reserve -> settle in a shared store), tier policy, approval gate, per-run guard.

The core calls :func:`build_gate` once per configured meter and then ``gate.before(call)`` before each
LLM call is sent, ``gate.after(call, usage, cost, error)`` when it finished and ``gate.close()`` at
shutdown.

Semantics, in one place:

* Estimate: input tokens counted with ``count_tokens(messages or prompt, model)``, output = the
  request's ``max_tokens`` or ``configure(expected_output_tokens=...)`` (0 for embeddings), priced
  with the meter's price book. The estimate is reserved atomically on every budget in scope (all or
  none); after the call the actual usage replaces it; a call that failed without usage releases it;
  a call whose provider reported no usage is charged its estimate. Until the tokenizer has loaded
  after ``configure()`` the input is an upper bound (UTF-8 bytes), trimmed to the exact count once it
  has, and decided again exactly before any refusal (``_bounds``).
* Admission (budgets and per-run limits alike): ``spent + reserved + estimate <= limit`` and
  ``spent + reserved < limit``. Landing exactly on the limit is allowed; a used-up limit admits
  nothing. A burst of concurrent calls admits exactly as many as fit, whichever processes they run in.
* Bound: spend <= limit + sum of under-estimates (see :class:`Budget`), also with Redis, whose settles
  leave the caller's path (``_settler``): a settle not yet landed keeps its reservation, so it counts.
* Cost per call: SQLite -- one statement for the reserve, one for the settle, each its own transaction;
  Redis -- one round trip on the caller's path (the reserve; settles are queued and batched, or carried
  by the next reserve); memory -- running totals per bucket.
* Leases: a reservation holds budget until ``lease_until``; the process that made it renews it every
  ``lease_s / 3`` while the call runs (default ``lease_s`` 60 s, ``?lease_s=`` on the store URL), so
  a crashed process's reservations stop holding budget at most ``lease_s`` after it died.
* Windows are fixed UTC periods (see ``_windows``); a call is charged to the window it was admitted in.
* Store down or slow (every operation bounded by ``timeout_s``, default 2 s): with ``fail_open=True``
  (default) calls are metered and allowed, a ``warn`` decision is recorded and one warning logged per
  outage; with ``fail_open=False`` they raise :class:`~tokenmeter.BudgetStoreUnavailable` (a
  :class:`~tokenmeter.PolicyViolation`, not a :class:`~tokenmeter.BudgetExceeded`: no budget is
  known to be used up). After a fault the store is left alone for ``OUTAGE_COOLDOWN_S`` so calls do
  not each wait for a timeout. What calls spend while the store is away (the outage and its cooldown)
  is journaled in the process and charged to its windows when the store answers again (``_journal``).
"""

from __future__ import annotations

from typing import Any

from ._budget import Budget, BudgetWarning, load_budgets
from ._gate import Gate
from ._policy import Policy
from ._stores import BudgetStore, StoreUnavailable, open_store


def build_gate(meter: Any, options: Any, otel_meter: Any, *, forked: bool = False) -> Gate:
    """The gate of ``meter``: cheap (a few attribute reads per call) when nothing is configured.

    ``forked``: in a forked child, where the store is opened at its first use, not now (see ``_reopen``).
    """
    if forked and options.budgets:
        from ._reopen import ReopenedStore

        return Gate(meter, options, otel_meter, store=ReopenedStore(options.store))
    return Gate(meter, options, otel_meter)


__all__ = [
    "Budget",
    "BudgetStore",
    "BudgetWarning",
    "Gate",
    "Policy",
    "StoreUnavailable",
    "build_gate",
    "load_budgets",
    "open_store",
]
