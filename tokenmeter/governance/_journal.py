"""What the gate keeps locally about the store: spend it could not write yet, and leases it must renew.

* :class:`Journal` -- while the store is down (or skipped during the outage cooldown), settlements
  are journaled here instead of being lost: amounts are summed per bucket key (so a long outage costs
  one entry per bucket, not per call) and reservations that could not be released are remembered by
  id. When the store answers again the journal is replayed (charge first, then release), so the
  spend of the outage lands in the window each call was made in, exactly. Bounded: at most
  ``JOURNAL_MAX`` buckets and ``JOURNAL_MAX`` reservation ids; past that a charge is dropped, counted
  and logged once. It lives in process memory: a process that dies during an outage loses it.
* :class:`Leases` -- the reservations of calls still running in this process. A thread renews them
  every ``lease_s / 3`` so a live call keeps its reservation however long it runs, while a crashed
  process's reservations stop holding budget at most ``lease_s`` after it died. A call unsettled for
  ``MAX_HOLD_S`` (an hour) is taken as lost and no longer renewed (its settle still charges it).

Both reset themselves in a forked child (their contents belong to the parent).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .. import _safe
from ._stores import BudgetStore, Line, StoreUnavailable

_log = logging.getLogger("tokenmeter")
JOURNAL_MAX = 10_000
MAX_HOLD_S = 3600.0  # a call still unsettled after this long stops being renewed (a lost call, not a slow one)
REPLAY_CHUNK = 64  # lines per store operation when replaying (Redis: one round trip each)


class Journal:
    """Settlements waiting for the store (see the module docstring)."""

    def __init__(self, limit: int = JOURNAL_MAX) -> None:
        self.limit = limit
        self.dropped = 0
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._charges: dict[str, tuple[Line, Any]] = {}  # bucket key -> (summed amounts, its budget)
        self._releases: dict[str, tuple[Line, ...]] = {}  # reservation id -> its lines (zero amounts)

    def _own(self) -> None:
        if self._pid != os.getpid():  # forked: what is here is the parent's to replay
            self._pid = os.getpid()
            self._charges, self._releases = {}, {}

    def __len__(self) -> int:
        with self._lock:
            self._own()
            return len(self._charges) + len(self._releases)

    def add(self, rid: str | None, lines: Sequence[Line], budgets: Sequence[Any]) -> None:
        """Journal a settlement: charge each line's amounts, release reservation ``rid`` (if any)."""
        with self._lock:
            self._own()
            if rid is not None:
                if len(self._releases) < self.limit:
                    self._releases[rid] = tuple(line.with_amounts(0, 0) for line in lines)
                # else: that reservation simply expires with its lease
            for line, budget in zip(lines, budgets, strict=True):
                if not (line.usd or line.tokens):
                    continue
                held = self._charges.get(line.key)
                if held is not None:
                    old = held[0]
                    self._charges[line.key] = (old.with_amounts(old.usd + line.usd, old.tokens + line.tokens), budget)
                elif len(self._charges) < self.limit:
                    self._charges[line.key] = (line, budget)
                else:
                    self.dropped += 1
                    if self.dropped == 1:
                        _log.warning(
                            "tokenmeter: the budget journal holds %d buckets; spend on further buckets "
                            "made while the store is down is not charged",
                            self.limit,
                        )

    def take(self) -> tuple[list[tuple[Line, Any]], dict[str, tuple[Line, ...]]]:
        """Everything journaled, removed from the journal (give back what failed with :meth:`restore`)."""
        with self._lock:
            self._own()
            charges, releases = list(self._charges.values()), self._releases
            self._charges, self._releases = {}, {}
            return charges, releases

    def restore(self, charges: Sequence[tuple[Line, Any]], releases: dict[str, tuple[Line, ...]]) -> None:
        """Put back what a replay could not write."""
        with self._lock:
            for rid, lines in releases.items():
                if len(self._releases) < self.limit:
                    self._releases.setdefault(rid, lines)
        for line, budget in charges:
            self.add(None, [line], [budget])


def replay(
    journal: Journal, store: BudgetStore, now: float, warn: Callable[[list[Any], list[Line], list[Any]], None]
) -> bool:
    """Write what ``journal`` holds to ``store`` (charges, then releases); False (and kept) if the store fails.

    ``warn(budgets, lines, settled)`` is called for each written chunk so crossed thresholds still fire.
    """
    charges, releases = journal.take()
    done = 0
    try:
        for i in range(0, len(charges), REPLAY_CHUNK):
            chunk = charges[i : i + REPLAY_CHUNK]
            lines = [line for line, _ in chunk]
            settled = store.settle(None, lines, now)
            done = i + len(chunk)
            warn([budget for _, budget in chunk], lines, settled)
        for rid in list(releases):
            store.settle(rid, releases[rid], now)
            del releases[rid]
    except StoreUnavailable as exc:
        journal.restore(charges[done:], releases)
        _log.debug("tokenmeter: replaying the budget journal failed: %s", exc)
        return False
    if charges or releases:
        _log.info("tokenmeter: charged the spend of %d budget bucket(s) made while the store was away", len(charges))
    return True


class Leases:
    """Reservations of this process's running calls, renewed by a daemon thread every ``lease_s / 3``."""

    def __init__(
        self,
        lease_s: float,
        renew: Callable[[Sequence[tuple[str, str]], float], None],
        clock: Callable[[], float],
        tick: Callable[[], None],
    ) -> None:
        self.lease_s = lease_s
        self._renew = renew
        self._clock = clock
        self._tick = tick  # also run on each wake-up (the gate replays its journal there)
        self._lock = threading.Lock()
        self._held: dict[str, tuple[tuple[str, ...], float]] = {}  # rid -> (bucket keys, held since)
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _own(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._held, self._thread, self._stop = {}, None, threading.Event()
            self._lock = threading.Lock()

    def hold(self, rid: str, keys: Sequence[str]) -> None:
        """Keep renewing reservation ``rid`` (on buckets ``keys``) until :meth:`drop`."""
        self._own()
        with self._lock:
            self._held[rid] = (tuple(keys), self._clock())
        self.start()

    def start(self) -> None:
        """Start the renewal thread if it is not running (it also replays the journal: see ``tick``)."""
        self._own()
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="tokenmeter-leases", daemon=True)
                self._thread.start()

    def drop(self, rid: str) -> None:
        """Stop renewing ``rid`` (settled or released)."""
        with self._lock:
            self._held.pop(rid, None)

    def held(self) -> int:
        """How many reservations are being renewed."""
        return len(self._held)

    def renew_now(self) -> None:
        """Extend every held reservation to ``now + lease_s`` (one store operation)."""
        now = self._clock()
        with self._lock:
            for rid in [r for r, (_, since) in self._held.items() if now - since > MAX_HOLD_S]:
                del self._held[rid]
            pairs = [(rid, key) for rid, (keys, _) in self._held.items() for key in keys]
        if pairs:
            self._renew(pairs, self._clock() + self.lease_s)

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self.lease_s / 3):
            try:
                self.renew_now()
            except Exception as exc:  # store down: the gate's journal and cooldown deal with it
                _log.debug("tokenmeter: renewing budget leases failed: %s", exc)
            try:
                self._tick()
            except Exception:
                _safe.log_once("leases.tick", "tokenmeter: the budget lease thread failed")

    def close(self, timeout: float = 1.0) -> None:
        """Stop the renewal thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(timeout)
