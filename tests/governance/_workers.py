"""Code run in child processes by the concurrency tests (importable by the ``spawn`` start method)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from tokenmeter._governance._stores import BudgetStore, Line


def _open(kind: str, where: str) -> BudgetStore:
    if kind == "sqlite":
        from tokenmeter._governance._stores.sqlite import SQLiteStore

        return SQLiteStore(where, timeout_s=30.0, lease_s=600.0)
    if kind == "redis":
        from tokenmeter._governance._stores.redis import RedisStore

        return RedisStore(where, timeout_s=30.0, lease_s=600.0)
    from tokenmeter._governance._stores.memory import MemoryStore

    return MemoryStore(lease_s=600.0)


def hammer(store: BudgetStore, line: Line, actual: Line, now: float, threads: int, attempts: int,
           go: Any) -> tuple[int, int]:
    """``threads`` threads each try ``attempts`` reserve -> settle cycles; returns (admitted, refused)."""
    counts = [0, 0]
    lock = threading.Lock()

    def work() -> None:
        go.wait()
        for _ in range(attempts):
            rid = uuid.uuid4().hex
            admitted = store.reserve(rid, [line], now, now + 600).admitted
            if admitted:
                store.settle(rid, [actual], now)
            with lock:
                counts[0 if admitted else 1] += 1

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return counts[0], counts[1]


def process_main(kind: str, where: str, line: Line, actual: Line, now: float, threads: int, attempts: int,
                 go: Any, results: Any) -> None:
    """Entry point of one child process: hammer the shared store, report the counts."""
    store = _open(kind, where)
    try:
        results.put(hammer(store, line, actual, now, threads, attempts, go))
    finally:
        store.close()
