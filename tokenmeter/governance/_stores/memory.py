"""The default store: buckets in this process's memory, behind one lock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ... import _lifecycle
from ._base import Admission, BucketState, BudgetStore, Line, Settled, fits, thresholds_reached

_SWEEP_EVERY_S = 60.0


@dataclass(slots=True)
class _Bucket:
    spent_usd: int = 0
    spent_tokens: int = 0
    warned: int = 0
    expires_at: float = 0.0
    reservations: dict[str, tuple[int, int, float]] = field(default_factory=dict)

    def purge(self, now: float) -> None:
        expired = [rid for rid, (_, _, until) in self.reservations.items() if until <= now]
        for rid in expired:
            del self.reservations[rid]

    def state(self) -> BucketState:
        res = self.reservations.values()
        return BucketState(
            self.spent_usd,
            self.spent_tokens,
            sum(r[0] for r in res),
            sum(r[1] for r in res),
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
            bucket = self._buckets[line.key] = _Bucket(expires_at=line.expires_at)
        bucket.expires_at = max(bucket.expires_at, line.expires_at)
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
                bucket.reservations[rid] = (line.usd, line.tokens, lease_until)
            return Admission(True, None, tuple(b.state() for b in buckets))

    def settle(self, rid: str | None, lines: Sequence[Line], now: float) -> list[Settled]:
        out: list[Settled] = []
        with self._lock:
            for line in lines:
                bucket = self._bucket(line, now)
                if rid is not None:
                    bucket.reservations.pop(rid, None)
                bucket.spent_usd += line.usd
                bucket.spent_tokens += line.tokens
                before = bucket.warned
                bucket.warned = max(before, thresholds_reached(bucket.spent_usd, bucket.spent_tokens, line.levels))
                out.append(Settled(bucket.state(), before, bucket.warned))
        return out

    def renew(self, held: Sequence[tuple[str, str]], lease_until: float) -> None:
        with self._lock:
            for rid, key in held:
                bucket = self._buckets.get(key)
                res = None if bucket is None else bucket.reservations.get(rid)
                if bucket is not None and res is not None:
                    bucket.reservations[rid] = (res[0], res[1], max(res[2], lease_until))

    def state(self, key: str, now: float) -> BucketState:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return BucketState()
            bucket.purge(now)
            return bucket.state()
