"""Store outages never lose spend, never masquerade as breaches, and a crashed worker's reservations go soon.

Real faults only: a ``redis-server`` killed with SIGKILL and restarted on its AOF, an SQLite file
locked by another connection, a worker process killed with SIGKILL while it holds reservations.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tokenmeter import Usage
from tokenmeter.governance import Budget, _storelink
from tokenmeter.governance._journal import Journal
from tokenmeter.governance._stores import Line, StoreUnavailable, open_store, to_nano
from tokenmeter.governance._stores.sqlite import SQLiteStore
from tokenmeter.testing import Capture, capture

from .conftest import T0, FakeClock, _free_port, _ping
from .helpers import bucket, complete, gate, start

ROOT = Path(__file__).resolve().parents[2]
BUDGETS = [Budget("b", scope={}, limit_tokens=1_000_000, limit_usd=100, window="1d")]
USAGE = Usage(input=20, output=100)


def _cost(cap: Capture) -> int:
    cost = cap.meter.prices.cost("openai", "gpt-4o-mini", USAGE).usd
    assert cost is not None
    return to_nano(cost)


class AofRedis:
    """A redis-server with append-only persistence (fsync always) in ``tmp``; can be SIGKILLed and restarted."""

    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI") == "true":
                pytest.fail("redis-server is not installed (make redis)")
            pytest.skip("redis-server is not installed")
        self.binary, self.dir, self.port = binary, tmp, _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):  # readiness poll, bounded by each ping's socket timeout
            if self.proc.poll() is not None or _ping(self.port):
                break
            time.sleep(0.05)
        assert self.proc.poll() is None and _ping(self.port), "redis-server did not start"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[AofRedis]:
    server = AofRedis(tmp_path)
    yield server
    if server.proc is not None:
        server.proc.kill()
        server.proc.wait(timeout=10)


def test_redis_killed_and_restarted_charges_every_call_exactly(aof_redis: AofRedis, clock: FakeClock) -> None:
    with capture(budgets=BUDGETS, store=aof_redis.url + "?timeout_s=0.5", fail_open=True) as cap:
        g = gate(cap)
        g.clock = clock
        for _ in range(3):
            complete(usage=USAGE)  # before: charged at once
        in_flight = start()  # reserved before the crash, settled after it
        aof_redis.kill()
        in_flight.stop(USAGE)  # settle fails: journaled with its reservation id
        for _ in range(4):
            complete(usage=USAGE)  # outage: fail-open, journaled
        aof_redis.start()  # back, with the AOF's pre-crash spend
        clock.advance(1)
        for _ in range(2):
            complete(usage=USAGE)  # the cooldown after recovery: journaled too
        assert len(g.journal) == 2  # one bucket of charges + one reservation to release
        clock.advance(_storelink.OUTAGE_COOLDOWN_S)
        complete(usage=USAGE)  # store used again: the journal is replayed first
        assert len(g.journal) == 0
        state = bucket(cap, "b")
        calls = 3 + 1 + 4 + 2 + 1
        assert state.spent_tokens == calls * USAGE.total
        assert state.spent_usd == calls * _cost(cap)
        assert state.reservations == 0 and state.reserved_tokens == 0  # the in-flight reservation was released


def test_a_locked_sqlite_store_charges_the_outage_when_it_frees(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "b.db"
    with capture(budgets=BUDGETS, store=f"sqlite://{path}?timeout_s=0.05", fail_open=True) as cap:
        g = gate(cap)
        g.clock = clock
        complete(usage=USAGE)
        holder = sqlite3.connect(str(path), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            for _ in range(5):
                complete(usage=USAGE)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        clock.advance(_storelink.OUTAGE_COOLDOWN_S)
        complete(usage=USAGE)
        state = bucket(cap, "b")
        assert (state.spent_tokens, state.spent_usd) == (7 * USAGE.total, 7 * _cost(cap))


def test_the_journal_is_replayed_without_waiting_for_a_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_storelink, "OUTAGE_COOLDOWN_S", 0.2)
    path = tmp_path / "b.db"
    with capture(budgets=BUDGETS, store=f"sqlite://{path}?timeout_s=0.05&lease_s=0.3") as cap:
        holder = sqlite3.connect(str(path), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            for _ in range(3):
                complete(usage=USAGE)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        g = gate(cap)
        deadline = time.monotonic() + 20
        while len(g.journal) and time.monotonic() < deadline:  # the lease thread replays every lease_s / 3
            time.sleep(0.05)
        assert len(g.journal) == 0
        assert bucket(cap, "b").spent_tokens == 3 * USAGE.total


def test_shutdown_writes_the_journal_when_the_store_answers(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "b.db"
    with capture(budgets=BUDGETS, store=f"sqlite://{path}?timeout_s=0.05") as cap:
        gate(cap).clock = clock
        holder = sqlite3.connect(str(path), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        complete(usage=USAGE)
        holder.execute("ROLLBACK")
        holder.close()
    assert SQLiteStore(str(path)).state(BUDGETS[0].key(clock()), clock()).spent_tokens == USAGE.total


def test_the_journal_sums_per_bucket_and_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(limit=2)
    lines = [Line(f"k{i}", 5, 10, None, 100, T0) for i in range(3)]
    for _ in range(1000):
        journal.add(None, lines[:2], [None, None])
    journal.add("rid", lines[2:], [None])  # a third bucket: dropped (and said once); its release is kept
    assert journal.dropped == 1 and "journal holds 2 buckets" in caplog.text
    charges, releases = journal.take()
    assert sorted((line.key, line.usd, line.tokens) for line, _ in charges) == [
        ("k0", 5000, 10000),
        ("k1", 5000, 10000),
    ]
    assert list(releases) == ["rid"] and releases["rid"][0].tokens == 0
    assert len(journal) == 0


def _hold_in_worker(url: str, n: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    ready = tmp_path / "ready"
    code = f"from tests.governance._workers import hold_main; hold_main({url!r}, {n}, {str(ready)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, "the worker died"
        assert time.monotonic() < deadline, "the worker never reserved"
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_killed_worker_releases_its_reservations_within_one_lease(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    lease_s = 2.0
    base = f"sqlite://{tmp_path / 'b.db'}" if kind == "sqlite" else str(request.getfixturevalue("redis_url"))
    url = f"{base}?lease_s={lease_s}"
    key = Budget("held", scope={}, limit_tokens=1_000_000, window="1d").key(time.time())
    store = open_store(url)
    proc = _hold_in_worker(url, 4, tmp_path)
    try:
        time.sleep(2.5 * lease_s)  # longer than a lease: only renewal by the live worker keeps them held
        assert store.state(key, time.time()).reservations == 4
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed = time.time()
        assert store.state(key, killed).reservations == 4
        # Every lease the dead worker renewed ends at most lease_s after its death.
        assert store.state(key, killed + lease_s).reservations == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        store.close()


def test_renewal_never_revives_an_expired_reservation(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from .conftest import make_store

    store = make_store(store_kind, tmp_path, request)
    line = Line("r:1d:0", 0, 10, None, 100, T0 + 86400)
    store.reserve("live", [line], T0, T0 + 10)
    store.reserve("gone", [line], T0, T0 + 1)
    assert store.state(line.key, T0 + 2).reservations == 1  # "gone" expired (and is purged)
    store.renew([("live", line.key), ("gone", line.key)], T0 + 100)
    assert store.state(line.key, T0 + 50).reservations == 1
    store.renew([("live", line.key)], T0 + 20)  # never shortens
    assert store.state(line.key, T0 + 50).reservations == 1
    store.close()


def test_a_store_down_at_renewal_is_not_an_error(dead_redis_url: str) -> None:
    store = open_store(dead_redis_url)
    with pytest.raises(StoreUnavailable):
        store.renew([("r", "k")], T0)


@pytest.fixture
def dead_redis_url() -> str:
    return f"redis://127.0.0.1:{_free_port()}/0?timeout_s=0.2"


def test_live_calls_are_renewed_and_lost_ones_stop_being_renewed(clock: FakeClock) -> None:
    from tokenmeter.governance._journal import MAX_HOLD_S

    with capture(budgets=BUDGETS) as cap:
        g = gate(cap)
        g.clock = clock
        g.leases._clock = clock
        call = start()
        key = BUDGETS[0].key(clock())
        assert g.store is not None
        for _ in range(5):  # five leases long: renewal keeps the reservation
            clock.advance(g.lease_s * 0.9)
            g.leases.renew_now()
        assert g.store.state(key, clock()).reservations == 1 and g.leases.held() == 1
        clock.advance(MAX_HOLD_S)
        g.leases.renew_now()  # held for over an hour: taken as lost
        assert g.leases.held() == 0 and g.store.state(key, clock()).reservations == 0
        call.stop(USAGE)  # a late settle still charges it
        assert g.store.state(key, clock()).spent_tokens == USAGE.total


def test_a_forked_child_does_not_replay_or_renew_the_parents_journal_and_leases() -> None:
    journal = Journal()
    journal.add("rid", [Line("k", 1, 1, None, 10, T0)], [None])
    pid = os.fork()
    if pid == 0:  # the child: the parent's entries are the parent's to write
        os._exit(0 if len(journal) == 0 and journal.take() == ([], {}) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(journal) == 2  # the parent keeps its own
