"""The budget store interface and the admission rules every store implements identically.

Amounts are integers: dollars in nano-USD (1e-9, rounded up) and tokens. A *bucket* is one budget in
one window; it holds the settled spend, the live reservations (each with a lease) and how many
``warn_at`` thresholds have fired. Expired leases are dropped before every decision, so a process that
crashed between reserve and settle holds budget for at most one lease.

Admission rule, per limit (dollars, tokens): with ``committed = spent + reserved``, a reservation of
``want`` is admitted iff ``committed < limit and committed + want <= limit``. So a call that lands
exactly on the limit is admitted, and a budget that is used up admits nothing, not even a call
estimated at zero. All lines of one reservation are decided and applied atomically: either every
budget takes its share or none does.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

NANO = Decimal(1_000_000_000)
Level = tuple[int | None, int | None]


def to_nano(usd: Decimal) -> int:
    """Dollars as whole nano-dollars, rounded up (a store never under-counts spend)."""
    return int((usd * NANO).to_integral_value(rounding=ROUND_CEILING))


def from_nano(nano: int) -> Decimal:
    """Whole nano-dollars as dollars."""
    return Decimal(nano) / NANO


class StoreUnavailable(Exception):
    """The budget store could not be reached or answer in time."""


@dataclass(frozen=True, slots=True)
class Line:
    """One bucket touched by a reservation or settlement.

    ``usd`` / ``tokens`` are the estimate (reserve) or the actual amount (settle). ``enforce=False``
    admits the line even over its limit (``action="warn"`` budgets). ``levels`` are the ``warn_at``
    thresholds as absolute ``(usd, tokens)`` amounts, ascending. ``expires_at`` is when the bucket's
    data may be dropped (its window's end plus a margin).
    """

    key: str
    usd: int
    tokens: int
    limit_usd: int | None
    limit_tokens: int | None
    expires_at: float
    enforce: bool = True
    levels: tuple[Level, ...] = ()

    def with_amounts(self, usd: int, tokens: int) -> Line:
        """The same bucket with other amounts."""
        return Line(
            self.key, usd, tokens, self.limit_usd, self.limit_tokens, self.expires_at, self.enforce, self.levels
        )


@dataclass(frozen=True, slots=True)
class BucketState:
    """A bucket as one store operation left it."""

    spent_usd: int = 0
    spent_tokens: int = 0
    reserved_usd: int = 0
    reserved_tokens: int = 0
    reservations: int = 0
    warned: int = 0


@dataclass(frozen=True, slots=True)
class Admission:
    """Result of a reserve: admitted or not, which line refused, each bucket's state afterwards."""

    admitted: bool
    refused: int | None
    states: tuple[BucketState, ...]


@dataclass(frozen=True, slots=True)
class Settled:
    """Result of settling one line: the bucket afterwards and the warn thresholds fired before/after."""

    state: BucketState
    warned_before: int
    warned_after: int


SettleOp = tuple[str | None, Sequence[Line], float]  # (reservation id, actual lines, now)
ReserveOp = tuple[str, Sequence[Line], float, float]  # (reservation id, lines, now, lease_until)


def fits(state: BucketState, line: Line) -> bool:
    """Whether ``line`` may be reserved on a bucket in ``state`` (the admission rule above)."""
    for limit, committed, want in (
        (line.limit_usd, state.spent_usd + state.reserved_usd, line.usd),
        (line.limit_tokens, state.spent_tokens + state.reserved_tokens, line.tokens),
    ):
        if limit is not None and (committed >= limit or committed + want > limit):
            return False
    return True


def thresholds_reached(spent_usd: int, spent_tokens: int, levels: Sequence[Level]) -> int:
    """How many warn levels the settled spend has reached (levels are ascending)."""
    reached = 0
    for usd, tokens in levels:
        if (usd is not None and spent_usd >= usd) or (tokens is not None and spent_tokens >= tokens):
            reached += 1
        else:
            break
    return reached


class BudgetStore(abc.ABC):
    """Where budget buckets live: in-memory, an SQLite file or Redis. Every method is atomic.

    Faults (unreachable, timed out, locked) raise :class:`StoreUnavailable` within the store's timeout.
    Times are epoch seconds from the caller's clock.
    """

    lease_s: float = 60.0
    #: Each operation is a network round trip: the gate sends settles off the caller's path (``_settler``).
    defers_settles: bool = False

    @abc.abstractmethod
    def reserve(self, rid: str, lines: Sequence[Line], now: float, lease_until: float) -> Admission:
        """Reserve every line under id ``rid`` until ``lease_until``, or nothing if any enforced line does not fit."""

    @abc.abstractmethod
    def settle(self, rid: str | None, lines: Sequence[Line], now: float) -> list[Settled]:
        """Drop reservation ``rid`` (if still live) and add each line's actual amounts to the spend."""

    @abc.abstractmethod
    def renew(self, held: Sequence[tuple[str, str]], lease_until: float) -> None:
        """Extend the live reservations ``(id, bucket key)`` in ``held`` to ``lease_until`` (expired ones stay gone)."""

    @abc.abstractmethod
    def state(self, key: str, now: float) -> BucketState:
        """The bucket ``key`` as of ``now`` (expired leases not counted)."""

    def exchange(
        self, settles: Sequence[SettleOp], reserve: ReserveOp | None
    ) -> tuple[list[list[Settled]], Admission | None]:
        """Settle each of ``settles`` in order, then reserve (if given); one round trip where the store can."""
        done = [self.settle(rid, lines, now) for rid, lines, now in settles]
        return done, None if reserve is None else self.reserve(*reserve)

    def close(self) -> None:  # noqa: B027 - optional hook, stores without resources keep it
        """Release connections and files."""
