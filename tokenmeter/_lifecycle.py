"""Process lifecycle: fork safety, bounded flush/shutdown, and exit hooks, in one registry.

Fork. A child forked while another parent thread held one of tokenmeter's locks would inherit it held
and hang at its first metered call. Every lock tokenmeter creates comes from :func:`lock` /
:func:`rlock`, which remember it (weakly) so the child re-initialises all of them, then runs each
component's ``after_fork`` hook (the meter rebuilds its providers and stores, the stream reaper
restarts, the FinOps ledger writer restarts its thread...). Components register with :func:`register`.

Exit. ``flush`` and ``shutdown`` hooks run under one deadline, each in a daemon helper thread that
the caller stops waiting for when the deadline passes: an exporter that never answers costs at most
the timeout, and the call returns ``False``. At interpreter exit :func:`shutdown` runs once, bounded
by ``configure(shutdown_timeout_ms=...)``. A ``multiprocessing`` child (which leaves through
``os._exit`` and skips ``atexit``) runs it through multiprocessing's own exit finalizers; a child made
with a bare ``os.fork()`` must call ``tokenmeter.shutdown()`` itself before ``os._exit``.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_log = logging.getLogger("tokenmeter")

DEFAULT_TIMEOUT_MS = 5_000


@dataclass
class Hooks:
    """What one component does after a fork (in the child), on flush and on shutdown.

    ``flush`` and ``shutdown`` take the time left in milliseconds and return whether they completed.
    """

    after_fork: Callable[[], None] | None = None
    flush: Callable[[int], bool] | None = None
    shutdown: Callable[[int], bool] | None = None


_HOOKS: dict[str, Hooks] = {}
_seq = itertools.count()
_LOCKS: weakref.WeakSet[Any] = weakref.WeakSet()
_timeout_ms = DEFAULT_TIMEOUT_MS
_pid = os.getpid()
_forks = 0


def lock() -> threading.Lock:
    """A ``threading.Lock`` re-initialised (released) in a forked child."""
    new = threading.Lock()
    _LOCKS.add(new)
    return new


def rlock() -> threading.RLock:
    """A ``threading.RLock`` re-initialised (released) in a forked child."""
    new = threading.RLock()
    _LOCKS.add(new)
    return new


def register(name: str, hooks: Hooks) -> None:
    """Add (or replace) the hooks of component ``name``; they run in registration order."""
    _HOOKS[name] = hooks


def unregister(name: str) -> None:
    """Remove the hooks of component ``name`` (no error when absent)."""
    _HOOKS.pop(name, None)


def set_timeout_ms(timeout_ms: int) -> None:
    """The default bound of :func:`flush` / :func:`shutdown` (``configure(shutdown_timeout_ms=...)``)."""
    global _timeout_ms
    _timeout_ms = timeout_ms


def timeout_ms() -> int:
    """The configured default bound of flush and shutdown, in milliseconds."""
    return _timeout_ms


def forks() -> int:
    """How many times this process's ancestry forked since tokenmeter was imported (0 in the original)."""
    return _forks


# -- bounded execution -------------------------------------------------------------------------------
class _Job:
    """One hook running in a daemon thread; the caller waits only until its deadline."""

    __slots__ = ("done", "ok", "thread")

    def __init__(self, name: str, fn: Callable[[int], bool], budget_ms: int) -> None:
        self.ok = False
        self.done = threading.Event()

        def run() -> None:
            try:
                self.ok = bool(fn(budget_ms))
            except Exception:
                _log.warning("tokenmeter: %s failed", name, exc_info=True)
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, name=f"tokenmeter-{name}", daemon=True)
        self.thread.start()


_jobs_lock = lock()
_running: dict[str, _Job] = {}  # a flush still blocked on a dead exporter is waited for, not started again


def run_bounded(name: str, fn: Callable[[int], bool], timeout_millis: int) -> bool:
    """Run ``fn(timeout_millis)`` in a daemon thread; ``False`` if it failed or is not done in time."""
    deadline = time.monotonic() + max(timeout_millis, 0) / 1000
    with _jobs_lock:
        job = _running.get(name)
        if job is None or job.done.is_set():
            job = _Job(name, fn, timeout_millis)
            _running[name] = job
    finished = job.done.wait(max(deadline - time.monotonic(), 0))
    if not finished:
        _log.warning(
            "tokenmeter: %s did not finish within %d ms; giving up waiting (is the exporter reachable?)",
            name,
            timeout_millis,
        )
        return False
    return job.ok


def _each(kind: str, timeout_millis: int | None) -> bool:
    budget = _timeout_ms if timeout_millis is None else timeout_millis
    deadline = time.monotonic() + budget / 1000
    ok = True
    for name, hooks in list(_HOOKS.items()):
        fn = getattr(hooks, kind)
        if fn is None:
            continue
        left = int((deadline - time.monotonic()) * 1000)
        if left <= 0:
            return False
        # A flush still blocked on a dead exporter is waited for again; every shutdown is its own.
        job = f"{kind}-{name}" if kind == "flush" else f"{kind}-{name}-{next(_seq)}"
        ok = run_bounded(job, fn, left) and ok
    return ok


def flush(timeout_millis: int | None = None) -> bool:
    """Flush every registered component within ``timeout_millis`` (default: the configured bound)."""
    return _each("flush", timeout_millis)


def shutdown(timeout_millis: int | None = None) -> bool:
    """Flush and shut down every registered component within the bound; ``False`` if not all made it."""
    return _each("shutdown", timeout_millis)


# -- fork ---------------------------------------------------------------------------------------------
def _after_fork_child() -> None:
    global _pid, _forks
    _pid = os.getpid()
    _forks += 1
    for held in list(_LOCKS):
        try:
            held._at_fork_reinit()
        except Exception:  # pragma: no cover - every lock type of CPython >= 3.9 has it
            pass
    _running.clear()
    if "multiprocessing.util" in sys.modules:  # a multiprocessing child: flush on its way out (os._exit)
        hook_multiprocessing()
    for name, hooks in list(_HOOKS.items()):
        if hooks.after_fork is None:
            continue
        try:
            hooks.after_fork()
        except Exception:
            _log.warning("tokenmeter: resetting %s in a forked child failed", name, exc_info=True)


class _ForkToken:
    """Registered with multiprocessing so its children get an exit finalizer (they skip ``atexit``)."""


_TOKEN = _ForkToken()


def _multiprocessing_child(_token: Any) -> None:
    try:
        from multiprocessing import util

        util.Finalize(None, _at_exit, exitpriority=100)
    except Exception:  # pragma: no cover - multiprocessing internals moved
        _log.debug("tokenmeter: no multiprocessing exit hook", exc_info=True)


def hook_multiprocessing() -> None:
    """Make ``multiprocessing`` fork children flush on their way out (called by ``configure``).

    Only when the application has imported ``multiprocessing`` (importing it costs ~6 ms of ``configure``);
    otherwise a forked child registers itself (``_after_fork_child``) before ``multiprocessing`` runs its
    after-fork hooks, which is also in time: its ``Process._bootstrap`` clears the finalizers first.
    """
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    try:
        util.register_after_fork(_TOKEN, _multiprocessing_child)
    except Exception:  # pragma: no cover
        _log.debug("tokenmeter: cannot hook multiprocessing", exc_info=True)


_exited = False


def _at_exit() -> None:
    global _exited
    if _exited:
        return
    _exited = True
    try:
        shutdown()
    except Exception:  # pragma: no cover - never fail the interpreter's exit
        pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)
atexit.register(_at_exit)
