"""A budget store a forked child opens at its first use, never inside the fork hook.

Opening a store is I/O that may wait (SQLite's schema transaction waits for the file lock up to the
store's timeout, Redis dials): work no ``os.register_at_fork`` hook should do. The child's gate gets
this stand-in instead; the first reserve / settle / state opens the real store (a failure is a
:class:`StoreUnavailable`, handled by the gate's ``fail_open`` like any outage).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import _lifecycle
from ._stores import Admission, BucketState, BudgetStore, Line, Settled, StoreUnavailable, open_store
from ._stores import _split as split_url
from ._stores._base import ReserveOp, SettleOp


class ReopenedStore(BudgetStore):
    """Opens ``open_store(url)`` on first use; delegates everything to it."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._store: BudgetStore | None = None
        self._lock = _lifecycle.lock()
        self.lease_s = split_url(url)[2] if url != "memory" else BudgetStore.lease_s
        self.timeout_s = split_url(url)[3] if url != "memory" else 2.0
        self.defers_settles = url.startswith(("redis://", "rediss://"))

    def _real(self) -> BudgetStore:
        store = self._store
        if store is None:
            with self._lock:
                if self._store is None:
                    try:
                        self._store = open_store(self._url)
                    except Exception as exc:
                        raise StoreUnavailable(f"cannot open the budget store after a fork: {exc}") from exc
                store = self._store
        return store

    def reserve(self, rid: str, lines: Sequence[Line], now: float, lease_until: float) -> Admission:
        return self._real().reserve(rid, lines, now, lease_until)

    def settle(self, rid: str | None, lines: Sequence[Line], now: float) -> list[Any]:
        return self._real().settle(rid, lines, now)

    def exchange(
        self, settles: Sequence[SettleOp], reserve: ReserveOp | None
    ) -> tuple[list[list[Settled]], Admission | None]:
        return self._real().exchange(settles, reserve)

    def renew(self, held: Sequence[tuple[str, str]], lease_until: float) -> None:
        self._real().renew(held, lease_until)

    def state(self, key: str, now: float) -> BucketState:
        return self._real().state(key, now)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def __getattr__(self, name: str) -> Any:  # anything else a store offers
        return getattr(self._real(), name)
