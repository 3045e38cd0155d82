"""Warm-up: what the first metered call would load, loaded by a daemon thread ``configure()`` starts.

Without it the first call after ``configure()`` pays the set-up: genai-prices' bundled table (tens of ms),
the tiktoken encoding a budget's pre-call estimate needs (hundreds of ms: 200,000 ranks to parse), the
budget store's connection and scripts. ``configure()`` itself stays cheap (it loads none of them); the
thread loads them in the background so a call arriving later finds them ready.

Correctness never depends on the thread: every part is loaded under its own lock by whoever needs it
first (the price table under the import lock and genai-prices' snapshot cache, an encoding under the
tokenizer's file cache lock, a store connection under the store's own lock or pool). A call that needs a
part the thread is still loading waits for that part; one that needs a part the thread has not reached
loads it itself. Either way the figure is the exact one, never an approximation made to save time.

A failure in the thread is logged at debug level and swallowed: the part is then loaded at first use,
exactly as without a warm-up.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

_log = logging.getLogger("tokenmeter")

Task = tuple[str, Callable[[], Any]]


class Warmup:
    """A daemon thread running ``tasks`` in order; :meth:`wait` blocks until they are done."""

    def __init__(self, tasks: Sequence[Task]) -> None:
        self.tasks = list(tasks)
        self.timings: dict[str, float] = {}  # task name -> seconds it took (for benchmarks and debugging)
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Warmup:
        """Start the thread (once); with no tasks, it is done at once."""
        if self._thread is None:
            if not self.tasks:
                self._done.set()
                return self
            self._thread = threading.Thread(target=self._run, name="tokenmeter-warmup", daemon=True)
            _RUNNING.add(self)
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for name, task in self.tasks:
                started = time.perf_counter()
                try:
                    task()
                except Exception:
                    _log.debug("tokenmeter: warming up %s failed; it loads at first use", name, exc_info=True)
                self.timings[name] = time.perf_counter() - started
        finally:
            self._done.set()
            _RUNNING.discard(self)

    @property
    def done(self) -> bool:
        """Whether every task has run."""
        return self._done.is_set()

    @property
    def running(self) -> bool:
        """Whether its thread is running now (in a forked child, a parent's warm-up is not)."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every task has run (at most ``timeout`` seconds); ``True`` if they have."""
        return self._done.wait(timeout)


# Warm-ups in progress. A fork waits for them (bounded): a child forked while the thread is inside an
# import (genai-prices, tiktoken) would inherit that module's import lock held by a thread it does not
# have, and its first call would hang on that import.
_RUNNING: weakref.WeakSet[Warmup] = weakref.WeakSet()
FORK_WAIT_S = 5.0


def _before_fork() -> None:
    if not _RUNNING:
        return
    from . import _pacing

    _pacing.urgent(+1)  # a paced load waiting for a pause in the calls goes ahead at once: the fork waits for it
    try:
        for warmup in list(_RUNNING):
            if not warmup.wait(FORK_WAIT_S):
                _log.warning("tokenmeter: forking while the warm-up thread still runs; the child may wait on an import")
    finally:
        _pacing.urgent(-1)  # (the child resets it anyway)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork)


def tasks_for(meter: Any) -> list[Task]:
    """What the first call of ``meter`` would otherwise load on the caller's thread."""
    from ._price_table import data_date, load_table
    from ._tokens import _encoding_name

    tasks: list[Task] = [("price table", load_table)]
    gate = getattr(meter, "gate", None)
    if meter.options.budgets:
        # A budget estimates every call's input tokens before it is sent: o200k_base is the encoding of
        # every current OpenAI model (and the one used for others' estimates).
        store = getattr(gate, "store", None)
        warm = getattr(store, "warm_up", None)
        if callable(warm):  # first: the tokenizer's load waits for pauses in the calls (_pacing)
            tasks.append(("budget store", warm))
        tokenizer = meter.tokenizer
        tasks.append(("tokenizer o200k_base", lambda: tokenizer.encoding("o200k_base", paced=True)))
        tasks.append(("tokenizer model map", lambda: _encoding_name("gpt-4o")))  # imports tiktoken.model
    tasks.append(("price data date", data_date))  # last: only the info gauge needs it, at collection
    return tasks
