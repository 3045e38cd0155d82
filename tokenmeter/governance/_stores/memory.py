"""The default store: buckets in this process's memory, behind one lock.

Each bucket keeps running totals of its live reservations and the earliest lease end among them, so a
reserve or settle costs the same however many calls are in flight: expired leases are looked for only
once that earliest end has passed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ... import _lifecycle
from ._base import Admission, BucketState, BudgetStore, Line, Settled, fits, thresholds_reached

_SWEEP_EVERY_S = 60.0


class _Bucket:
    __slots__ = (
        "expires_at",
        "first_end",
        "reservations",
        "reserved_tokens",
        "reserved_usd",
        "spent_tokens",
        "spent_usd",
        "warned",
    )

    def __init__(self, expires_at: float) -> None:
        self.spent_usd = self.spent_tokens = self.warned = 0
        self.reserved_usd = self.reserved_tokens = 0
        self.expires_at = expires_at
        self.first_end = math.inf  # no live reservation ends before this
        self.reservations: dict[str, tuple[int, int, float]] = {}

    def purge(self, now: float) -> None:
        if now < self.first_end:
            return
        live = {rid: r for rid, r in self.reservations.items() if r[2] > now}
        self.reservations = live
        self.reserved_usd = sum(r[0] for r in live.values())
        self.reserved_tokens = sum(r[1] for r in live.values())
        self.first_end = min((r[2] for r in live.values()), default=math.inf)

    def hold(self, rid: str, usd: int, tokens: int, until: float) -> None:
        self.drop(rid)
        self.reservations[rid] = (usd, tokens, until)
        self.reserved_usd += usd
        self.reserved_tokens += tokens
        if until < self.first_end:
            self.first_end = until

    def drop(self, rid: str) -> None:
        held = self.reservations.pop(rid, None)
        if held is not None:
            self.reserved_usd -= held[0]
            self.reserved_tokens -= held[1]

    def state(self) -> BucketState:
        return BucketState(
            self.spent_usd,
            self.spent_tokens,
            self.reserved_usd,
            self.reserved_tokens,
            len(self.reservations),
            self.warned,
        )


class MemoryStore(BudgetStore):
    """Buckets in a dictionary: exact and fast, but per process (use SQLite or Redis to share budgets)."""

    def __len__(self) -> int:
        """How many buckets are kept (expired ones go at the next sweep)."""
        return len(self._buckets)

    def __init__(self, *, lease_s: float = 60.0) -> None:
        self.lease_s = lease_s
        self._lock = _lifecycle.lock()
        self._buckets: dict[str, _Bucket] = {}
        self._next_sweep = 0.0

    def _bucket(self, line: Line, now: float) -> _Bucket:
        bucket = self._buckets.get(line.key)
        if bucket is None:
            # A new bucket: forget buckets whose windows are long over (one sweep per minute at most, so
            # creating 100,000 per-entity buckets stays linear).
            if now >= self._next_sweep:
                self._next_sweep = now + _SWEEP_EVERY_S
                for key in [k for k, b in self._buckets.items() if b.expires_at <= now]:
                    del self._buckets[key]
            bucket = self._buckets[line.key] = _Bucket(line.expires_at)
        elif line.expires_at > bucket.expires_at:
            bucket.expires_at = line.expires_at
        bucket.purge(now)
        return bucket

    def reserve(self, rid: str, lines: Sequence[Line], now: float, lease_until: float) -> Admission:
        with self._lock:
            buckets = [self._bucket(line, now) for line in lines]
            states = tuple(b.state() for b in buckets)
            for i, (line, state) in enumerate(zip(lines, states, strict=True)):
                if line.enforce and not fits(state, line):
                    return Admission(False, i, states)
            for line, bucket in zip(lines, buckets, strict=True):
                bucket.hold(rid, line.usd, line.tokens, lease_until)
            return Admission(True, None, tuple(b.state() for b in buckets))

    def settle(self, rid: str | None, lines: Sequence[Line], now: float) -> list[Settled]:
        out: list[Settled] = []
        with self._lock:
            for line in lines:
                bucket = self._bucket(line, now)
                if rid is not None:
                    bucket.drop(rid)
                bucket.spent_usd += line.usd
                bucket.spent_tokens += line.tokens
                before = bucket.warned
                if line.levels:
                    bucket.warned = max(before, thresholds_reached(bucket.spent_usd, bucket.spent_tokens, line.levels))
                out.append(Settled(bucket.state(), before, bucket.warned))
        return out

    def renew(self, held: Sequence[tuple[str, str]], lease_until: float) -> None:
        with self._lock:
            for rid, key in held:
                bucket = self._buckets.get(key)
                res = None if bucket is None else bucket.reservations.get(rid)
                if bucket is not None and res is not None:  # (a longer lease never moves first_end earlier)
                    bucket.reservations[rid] = (res[0], res[1], max(res[2], lease_until))

    def state(self, key: str, now: float) -> BucketState:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return BucketState()
            bucket.purge(now)
            return bucket.state()
