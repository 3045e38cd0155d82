"""Settles sent off the caller's path (stores whose every operation is a network round trip: Redis).

After a call, the gate queues its settle here instead of waiting for the store. A reserve takes whatever is
queued with it (the store applies those settles first, in the same round trip); what no reserve took within
``LINGER_S`` is sent by a daemon thread (``tokenmeter-settle``), many settles per round trip. (Waking that
thread at once would cost a thread hand-off per call and make the next reserve wait for a round trip already
on the wire: lingering lets a busy process carry its settles for free.) So the caller pays one round trip per
call -- the reserve -- and this process's next reserve always sees its earlier settles: the one made in the
same thread or asyncio task waits for a batch already on the wire that holds its own last settle.

Overspend: a queued settle's reservation stays in the store (and its lease keeps being renewed) until the
settle lands, so until then the call counts with its estimate; the bound stated in :class:`~tokenmeter.Budget`
is unchanged. Nothing is lost on the way out: ``meter.force_flush()`` and the gate's ``close``
(``tokenmeter.shutdown()``, interpreter exit, a ``multiprocessing`` child's exit) send what is queued, within
the store timeout; a settle the store refuses goes to the outage journal like any other. A forked child drops
the parent's queue (the parent sends it) and starts its own.
"""

from __future__ import annotations

import collections
import contextvars
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import _lifecycle
from ._stores import BucketState, Line

BATCH = 64  # settles per round trip of the sender thread
LINGER_S = 0.002  # how long a queued settle waits for a reserve to carry it before the thread sends it
_LAST: contextvars.ContextVar[Pending | None] = contextvars.ContextVar("tokenmeter_last_settle", default=None)


class Pending:
    """One settle: reservation ``rid`` (``None``: a plain charge), its actual ``lines``, their budgets, and
    the span that gets its warnings (``None`` when it is sent after the call's span ended)."""

    __slots__ = ("budgets", "done", "lines", "now", "rid", "span")

    def __init__(
        self, rid: str | None, lines: Sequence[Line], budgets: Sequence[Any], now: float, span: Any = None
    ) -> None:
        self.rid, self.lines, self.budgets, self.now, self.span = rid, lines, budgets, now, span
        self.done = False


def near_warn(states: Sequence[BucketState], reserved: Sequence[Line], actual: Sequence[Line]) -> bool:
    """Whether this settle may cross a ``warn_at`` level: then it is sent at once, so that the warning's span
    event lands on the call's own span (as with every other store).

    ``states`` are the buckets right after the call's reserve. The settled spend after this settle is
    predicted as that spend, plus every reservation then live settling at its estimate, with this call's
    estimate replaced by its actual amounts. (Exact for one process calling one at a time; under
    concurrency a warning may still come from a queued settle: logged and called back as always, with no
    span event.)
    """
    if len(states) != len(actual):
        return True
    for state, estimate, line in zip(states, reserved, actual, strict=False):
        if state.warned >= len(line.levels):
            continue
        usd, tokens = line.levels[state.warned]
        spent_usd = state.spent_usd + state.reserved_usd - estimate.usd + line.usd
        spent_tokens = state.spent_tokens + state.reserved_tokens - estimate.tokens + line.tokens
        if (usd is not None and spent_usd >= usd) or (tokens is not None and spent_tokens >= tokens):
            return True
    return False


class Settler:
    """The queue and its sender thread. ``send(batch)`` writes a batch to the store (and handles failures)."""

    def __init__(self, send: Callable[[list[Pending]], None], timeout_s: float) -> None:
        self._send = send
        self._timeout_s = timeout_s
        self._lock = _lifecycle.lock()
        self._landed = threading.Condition(_lifecycle.lock())
        self._queue: collections.deque[Pending] = collections.deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._busy = 0  # batches being sent (by the sender thread or a flush)
        self._pid = os.getpid()

    def _own(self) -> None:
        """In a forked child: start empty (what was queued is the parent's to send)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._queue = collections.deque()
            self._wake, self._thread, self._busy = threading.Event(), None, 0

    def add(self, item: Pending) -> None:
        """Queue ``item`` and wake the sender (the calling thread / task will see it at its next reserve)."""
        self._own()
        if self._closed:  # after shutdown: no thread any more, write it now
            try:
                self._send([item])
            finally:
                self.landed([item])
            return
        with self._lock:
            first = not self._queue
            self._queue.append(item)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="tokenmeter-settle", daemon=True)
                self._thread.start()
        _LAST.set(item)
        if first:
            self._wake.set()

    def take(self) -> list[Pending]:
        """Everything still queued, removed (the caller sends it with its own operation and calls :meth:`landed`).

        First waits (bounded by the store timeout) for a batch in flight holding this thread's or task's own
        last settle, so that a reserve always sees the settles made before it in the same flow.
        """
        self._own()
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
        last = _LAST.get()
        if last is not None and not last.done and last not in items:
            with self._landed:
                self._landed.wait_for(lambda: last.done, self._timeout_s)
        return items

    def landed(self, items: Sequence[Pending]) -> None:
        """Mark ``items`` as written (or journaled) and wake whoever waits for them."""
        with self._landed:
            for item in items:
                item.done = True
            self._landed.notify_all()

    def __len__(self) -> int:
        return len(self._queue)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            if not self._closed:
                time.sleep(LINGER_S)  # a reserve in the meantime carries what is queued
            self._drain()

    def _drain(self) -> bool:
        """Send what is queued, a batch per round trip; False when there was nothing."""
        sent = False
        while True:
            with self._lock:
                if not self._queue:
                    return sent
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                with self._landed:
                    self._busy += 1
            try:
                self._send(batch)  # handles store faults itself (journal); never raises StoreUnavailable
            finally:
                with self._landed:
                    self._busy -= 1
                self.landed(batch)
            sent = True

    def flush(self, timeout_s: float | None = None) -> bool:
        """Send everything queued now from the calling thread, and wait for batches in flight; True if all landed."""
        self._own()
        self._drain()
        with self._landed:
            return self._landed.wait_for(lambda: not self._queue and not self._busy, timeout_s or self._timeout_s)

    def close(self) -> None:
        """Send what is queued and stop the sender thread."""
        self._closed = True
        self.flush()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(self._timeout_s)
