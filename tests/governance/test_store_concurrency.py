"""Several processes x threads against one budget: no lost updates, counts exact, overspend within the bound."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from tokenmeter.governance._stores import Line
from tokenmeter.governance._stores.memory import MemoryStore

from ._workers import _open, hammer, process_main
from .conftest import T0

PROCESSES, THREADS, ATTEMPTS = 4, 4, 20  # 320 attempts against room for 100
EXPIRES = T0 + 86400


def _run(kind: str, where: str, line: Line, actual: Line) -> tuple[int, int]:
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(target=process_main, args=(kind, where, line, actual, T0, THREADS, ATTEMPTS, go, results))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    go.set()  # every thread of every process starts racing at once
    counts = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def _where(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        where = str(tmp_path / "shared.db")
        _open("sqlite", where).close()  # create the schema before the race
        return where
    return str(request.getfixturevalue("redis_url"))


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_exact_estimates_admit_exactly_what_fits(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    where = _where(kind, tmp_path, request)
    # Dollars and tokens at once: 100 calls of 30 tokens / $0.0003 fill both limits exactly.
    line = Line("shared:1d:0", 300_000, 30, 30_000_000, 3000, EXPIRES)
    admitted, refused = _run(kind, where, line, line)
    assert admitted == 100
    assert admitted + refused == PROCESSES * THREADS * ATTEMPTS
    state = _open(kind, where).state(line.key, T0)
    assert (state.spent_tokens, state.spent_usd) == (3000, 30_000_000)  # no lost update, never over
    assert (state.reserved_tokens, state.reservations) == (0, 0)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_underestimates_overspend_only_within_the_bound(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    where = _where(kind, tmp_path, request)
    line = Line("under:1d:0", 0, 30, None, 3000, EXPIRES)
    actual = line.with_amounts(0, 37)  # every call uses 7 tokens more than estimated
    admitted, refused = _run(kind, where, line, actual)
    assert admitted + refused == PROCESSES * THREADS * ATTEMPTS
    state = _open(kind, where).state(line.key, T0)
    assert state.spent_tokens == 37 * admitted  # counts exact: every settle landed once
    assert state.reservations == 0
    assert state.spent_tokens <= 3000 + admitted * (37 - 30)  # the documented bound
    assert admitted <= 3000 // 30  # each admission needed room for its estimate


def test_memory_store_threads_admit_exactly_what_fits() -> None:
    store = MemoryStore()
    line = Line("mem:1d:0", 0, 7, None, 700, EXPIRES)
    go = threading.Event()
    go.set()
    admitted, refused = hammer(store, line, line, T0, threads=16, attempts=25, go=go)
    assert (admitted, refused) == (100, 300)
    assert store.state(line.key, T0).spent_tokens == 700
