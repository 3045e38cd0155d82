"""When the background load of a tokenizer encoding may take the GIL: between metered calls, not during one.

Building tiktoken's ``o200k_base`` encoding holds the GIL for 0.2-0.4 s in ONE call (tiktoken's Rust
``CoreBPE`` constructor converts 200,000 ranks; nothing outside tiktoken can split or shorten it), and
parsing the rank file before it competes for the GIL too. A call running meanwhile cannot run: the
first budgeted call right after ``configure()`` took +0.33 s that way. So the warm-up thread's load
is *paced*: before each slice of the parse it waits while the process is busy (a budgeted call in flight,
or another thread running Python), and before tiktoken's constructor until it has been quiet for
``QUIET_S`` -- at most ``MAX_WAIT_S`` after the load began (then it goes ahead: a service that never
pauses pays the stall once, as before). Calls made meanwhile do not wait for it: their
estimate is an upper bound (see ``governance/_bounds``).

A load somebody waits for (a caller needing the exact count: ``count_tokens()``, a reserve refused on a
bound) is *urgent*: it is never paced, and it lifts the pacing of a background load in progress.
"""

from __future__ import annotations

import os
import threading
import time
import weakref

QUIET_S = 0.02
MAX_WAIT_S = 2.0
_POLL_S = 0.005
_CONTENDED_S = 0.0005


class Flight:
    """The budgeted calls of one gate in flight (ids), while its tokenizer is not loaded yet."""

    def __init__(self) -> None:
        self.calls: set[int] = set()  # set.add / discard are atomic: no lock on the call's path
        _FLIGHTS.add(self)


_FLIGHTS: weakref.WeakSet[Flight] = weakref.WeakSet()
_urgent = 0
_urgent_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _urgent, _urgent_lock
    _urgent, _urgent_lock = 0, threading.Lock()
    for flight in list(_FLIGHTS):  # the parent's calls are not in flight here
        flight.calls.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def urgent(delta: int) -> None:
    """A caller starts (+1) / stops (-1) waiting for an encoding load."""
    global _urgent
    with _urgent_lock:
        _urgent += delta


def _busy() -> bool:
    """A budgeted call is in flight, or another thread is running Python: giving the GIL up for a moment
    takes more than 0.5 ms to get it back (a thread that wants it runs first, up to the switch interval)."""
    if any(f.calls for f in list(_FLIGHTS)):
        return True
    started = time.perf_counter()
    time.sleep(0)  # releases the GIL: a waiting thread takes it
    return time.perf_counter() - started > _CONTENDED_S


def pace(deadline: float, quiet_s: float = 0.0) -> None:
    """Wait until the process has been quiet (``_busy`` false) for ``quiet_s`` -- at once when it is quiet
    and ``quiet_s`` is 0 --, a caller waits for the load, or ``deadline`` (``time.monotonic()``) passed."""
    quiet_since: float | None = None
    while True:
        now = time.monotonic()
        if _urgent or now >= deadline:
            return
        if _busy():
            quiet_since = None
        elif quiet_since is None:
            if quiet_s <= 0:
                return
            quiet_since = now
        elif now - quiet_since >= quiet_s:
            return
        time.sleep(_POLL_S)
