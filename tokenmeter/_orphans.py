"""Streams dropped without being closed are finished later, never inside the garbage collector.

``__del__`` may run while this very thread holds one of tokenmeter's (non-reentrant) locks, so a
collected stream proxy only queues its finalizer here. The queue is drained at the start of the next
metered call, on ``force_flush()``, and by a daemon thread about once a second.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from . import _lifecycle

_QUEUE: deque[Callable[[], None]] = deque()
_reaper: threading.Thread | None = None
_PERIOD_S = 1.0


def abandon(finish: Callable[[], None]) -> None:
    """Queue ``finish`` (called from ``__del__``: no locks, no allocation beyond the append)."""
    _QUEUE.append(finish)


_DRAINING = _lifecycle.rlock()  # whoever drains waits for a drain under way elsewhere to complete


def drain() -> None:
    """Run every queued finalizer (each is once-only and never raises); return when all are done."""
    with _DRAINING:
        while _QUEUE:
            try:
                finish = _QUEUE.popleft()
            except IndexError:
                return
            finish()


def _reap() -> None:
    while True:
        time.sleep(_PERIOD_S)
        if _QUEUE:
            drain()


def start_reaper() -> None:
    """Start the daemon thread that drains the queue (idempotent)."""
    global _reaper
    if _reaper is None or not _reaper.is_alive():
        _reaper = threading.Thread(target=_reap, name="tokenmeter-stream-reaper", daemon=True)
        _reaper.start()


def _after_fork() -> None:
    """In a forked child: the queued finalizers are the parent's calls (never counted twice); restart."""
    global _reaper
    _QUEUE.clear()
    if _reaper is not None:
        _reaper = None
        start_reaper()


_lifecycle.register("stream-reaper", _lifecycle.Hooks(after_fork=_after_fork))
