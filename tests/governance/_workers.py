"""Code run in child processes by the concurrency tests (importable by the ``spawn`` start method)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from tokenmeter.governance._stores import BudgetStore, Line


def _open(kind: str, where: str) -> BudgetStore:
    if kind == "sqlite":
        from tokenmeter.governance._stores.sqlite import SQLiteStore

        return SQLiteStore(where, timeout_s=30.0, lease_s=600.0)
    if kind == "redis":
        from tokenmeter.governance._stores.redis import RedisStore

        return RedisStore(where, timeout_s=30.0, lease_s=600.0)
    from tokenmeter.governance._stores.memory import MemoryStore

    return MemoryStore(lease_s=600.0)


def hammer(
    store: BudgetStore, line: Line, actual: Line, now: float, threads: int, attempts: int, go: Any
) -> tuple[int, int]:
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


def process_main(
    kind: str, where: str, line: Line, actual: Line, now: float, threads: int, attempts: int, go: Any, results: Any
) -> None:
    """Entry point of one child process: hammer the shared store, report the counts."""
    store = _open(kind, where)
    try:
        results.put(hammer(store, line, actual, now, threads, attempts, go))
    finally:
        store.close()


def hold_main(url: str, n: int, ready: str) -> None:
    """A worker that reserves ``n`` calls against budget ``held`` and never finishes them (killed by the test)."""
    import pathlib
    import time

    from tokenmeter import Request
    from tokenmeter._call import begin
    from tokenmeter.governance import Budget
    from tokenmeter.testing import capture

    with capture(budgets=[Budget("held", scope={}, limit_tokens=1_000_000, window="1d")], store=url):
        calls = [begin(Request("openai", "gpt-4o-mini", max_tokens=100)) for _ in range(n)]
        assert all(c is not None and c.reservation is not None for c in calls)
        pathlib.Path(ready).write_text("ready")
        while True:
            time.sleep(1)


def entity_main(url: str, customers: list[str], threads: int, attempts: int, go: Any, results: Any) -> None:
    """A worker process: ``threads`` threads each try ``attempts`` calls for every customer through the gate
    (template budget ``per-customer``: 1000 tokens per customer; each call reserves and uses 100)."""
    from tokenmeter import BudgetExceeded, Request, Usage, attributes
    from tokenmeter._call import begin
    from tokenmeter.governance import Budget
    from tokenmeter.testing import capture

    budget = Budget("per-customer", scope={"customer": "*"}, limit_tokens=1000, window="1d", overrides={"big": 2000})
    admitted: dict[str, int] = {c: 0 for c in customers}
    lock = threading.Lock()

    def work() -> None:
        go.wait()
        for _ in range(attempts):
            for customer in customers:
                with attributes(customer=customer):
                    try:
                        call = begin(Request("openai", "gpt-4o-mini", max_tokens=100))
                    except BudgetExceeded:
                        continue
                    assert call is not None
                    call.stop(Usage(output=100))
                    with lock:
                        admitted[customer] += 1

    with capture(budgets=[budget], store=url):
        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    results.put(admitted)
