"""The per-run guard: ``workflow(max_tokens=..., max_cost_usd=...)`` stops a run before it overspends.

A run's spend is its rollup node (every finished call beneath it) plus the estimates of its calls
still in flight. Both are read under one lock, and a call's reservation is released only after its
actual usage reached the node, so concurrent calls of one run never see less than was spent. The
admission rule is the budgets' one: at most exactly the limit, nothing once it is used up.
"""

from __future__ import annotations

from decimal import Decimal

from .. import _lifecycle
from .._context import Run
from ._stores import to_nano


class RunGuard:
    """In-flight estimates per run id (entries disappear when a run has nothing in flight)."""

    def __init__(self) -> None:
        self._lock = _lifecycle.lock()
        self._in_flight: dict[str, list[int]] = {}  # run id -> [tokens, nano-USD, calls]

    def reserve(self, run: Run, tokens: int, usd: int | None) -> str | None:
        """Reserve a call's estimate on ``run``; returns why it does not fit, or ``None`` when reserved."""
        with self._lock:
            spent_tokens, spent_cost = _spent(run)
            held = self._in_flight.get(run.run_id, [0, 0, 0])
            if run.max_tokens is not None:
                committed = spent_tokens + held[0]
                if committed >= run.max_tokens or committed + tokens > run.max_tokens:
                    return (
                        f"run of workflow {run.workflow!r} has used {committed} of its {run.max_tokens} tokens; "
                        f"this call needs about {tokens} more"
                    )
            if run.max_cost_usd is not None and usd is not None:
                limit = to_nano(Decimal(str(run.max_cost_usd)))
                committed = to_nano(spent_cost) + held[1]
                if committed >= limit or committed + usd > limit:
                    return (
                        f"run of workflow {run.workflow!r} has used ${committed / 1e9:.6f} of its "
                        f"${run.max_cost_usd} limit; this call needs about ${usd / 1e9:.6f} more"
                    )
            self._in_flight[run.run_id] = [held[0] + tokens, held[1] + (usd or 0), held[2] + 1]
            return None

    def adjust(self, run: Run, tokens: int, usd: int) -> None:
        """Change a call's reserved estimate by ``tokens`` / ``usd`` (a bound trimmed to the exact count)."""
        with self._lock:
            held = self._in_flight.get(run.run_id)
            if held is not None:
                held[0] += tokens
                held[1] += usd

    def release(self, run: Run, tokens: int, usd: int | None) -> None:
        """Drop a call's estimate (its actual usage is already in the run's node)."""
        with self._lock:
            held = self._in_flight.get(run.run_id)
            if held is None:
                return
            held[0] -= tokens
            held[1] -= usd or 0
            held[2] -= 1
            if held[2] <= 0:
                del self._in_flight[run.run_id]


def _spent(run: Run) -> tuple[int, Decimal]:
    tokens, cost, *_ = run.node.snapshot()
    return sum(tokens), cost
