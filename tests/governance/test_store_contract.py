"""One contract, three stores: memory, SQLite and Redis must decide and account identically."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenmeter.governance._stores import BucketState, BudgetStore, Line

from .conftest import LEASE_S, T0

EXPIRES = T0 + 86400


def tokens(key: str, n: int, limit: int | None = 100, *, enforce: bool = True, levels: tuple = ()) -> Line:
    return Line(key, 0, n, None, limit, EXPIRES, enforce, levels)


def usd(key: str, nano: int, limit: int | None) -> Line:
    return Line(key, nano, 0, limit, None, EXPIRES)


def test_reserve_then_settle_replaces_the_estimate_with_the_actual(store: BudgetStore) -> None:
    adm = store.reserve("r1", [tokens("b", 30)], T0, T0 + LEASE_S)
    assert adm.admitted and adm.refused is None
    assert adm.states == (BucketState(0, 0, 0, 30, 1, 0),)
    assert store.state("b", T0) == BucketState(0, 0, 0, 30, 1, 0)
    [settled] = store.settle("r1", [tokens("b", 25)], T0 + 1)
    assert settled.state == BucketState(0, 25, 0, 0, 0, 0)
    assert store.state("b", T0 + 1) == BucketState(0, 25, 0, 0, 0, 0)


def test_exactly_at_the_limit_is_admitted_and_a_used_up_budget_admits_nothing(store: BudgetStore) -> None:
    assert store.reserve("a", [tokens("b", 60)], T0, T0 + LEASE_S).admitted
    assert store.reserve("b", [tokens("b", 40)], T0, T0 + LEASE_S).admitted  # 60 + 40 == 100: lands on the limit
    refused = store.reserve("c", [tokens("b", 1)], T0, T0 + LEASE_S)
    assert not refused.admitted and refused.refused == 0
    assert refused.states == (BucketState(0, 0, 0, 100, 2, 0),)
    assert not store.reserve("d", [tokens("b", 0)], T0, T0 + LEASE_S).admitted  # even a zero estimate
    store.settle("a", [tokens("b", 60)], T0)
    store.settle("b", [tokens("b", 40)], T0)
    assert not store.reserve("e", [tokens("b", 0)], T0, T0 + LEASE_S).admitted
    assert store.state("b", T0) == BucketState(0, 100, 0, 0, 0, 0)


def test_one_over_the_limit_is_refused_even_on_an_empty_budget(store: BudgetStore) -> None:
    assert not store.reserve("a", [tokens("b", 101)], T0, T0 + LEASE_S).admitted
    assert store.reserve("a", [tokens("b", 100)], T0, T0 + LEASE_S).admitted


def test_a_burst_admits_exactly_what_fits(store: BudgetStore) -> None:
    admitted = [store.reserve(f"r{i}", [tokens("b", 30)], T0, T0 + LEASE_S).admitted for i in range(10)]
    assert admitted == [True, True, True] + [False] * 7  # 3 x 30 = 90 <= 100 < 4 x 30


def test_settling_below_the_estimate_frees_room(store: BudgetStore) -> None:
    for i in range(3):
        assert store.reserve(f"r{i}", [tokens("b", 30)], T0, T0 + LEASE_S).admitted
    assert not store.reserve("x", [tokens("b", 30)], T0, T0 + LEASE_S).admitted
    store.settle("r0", [tokens("b", 5)], T0)  # used 5 of the 30 reserved
    assert store.reserve("x", [tokens("b", 30)], T0, T0 + LEASE_S).admitted  # 5 + 60 + 30 = 95


def test_release_gives_everything_back(store: BudgetStore) -> None:
    assert store.reserve("r", [tokens("b", 100)], T0, T0 + LEASE_S).admitted
    store.settle("r", [tokens("b", 0)], T0)
    assert store.state("b", T0) == BucketState()
    assert store.reserve("r2", [tokens("b", 100)], T0, T0 + LEASE_S).admitted


def test_dollar_limits_are_exact_in_nano_dollars(store: BudgetStore) -> None:
    assert store.reserve("a", [usd("u", 150_000, 450_000)], T0, T0 + LEASE_S).admitted
    assert store.reserve("b", [usd("u", 300_000, 450_000)], T0, T0 + LEASE_S).admitted
    assert not store.reserve("c", [usd("u", 1, 450_000)], T0, T0 + LEASE_S).admitted
    store.settle("a", [usd("u", 149_999, 450_000)], T0)
    assert store.reserve("c", [usd("u", 1, 450_000)], T0, T0 + LEASE_S).admitted
    assert store.state("u", T0) == BucketState(149_999, 0, 300_001, 0, 2, 0)


def test_amounts_near_two_to_the_53_stay_exact(store: BudgetStore) -> None:
    big = 2**53 - 10
    assert store.reserve("a", [usd("u", big, 2**53 - 1)], T0, T0 + LEASE_S).admitted
    store.settle("a", [usd("u", big, 2**53 - 1)], T0)
    assert store.reserve("b", [usd("u", 9, 2**53 - 1)], T0, T0 + LEASE_S).admitted
    assert not store.reserve("c", [usd("u", 1, 2**53 - 1)], T0, T0 + LEASE_S).admitted
    store.settle("b", [usd("u", 9, 2**53 - 1)], T0)
    assert store.state("u", T0).spent_usd == 2**53 - 1


def test_both_limits_must_fit(store: BudgetStore) -> None:
    both = Line("b", 500, 10, 1000, 100, EXPIRES)
    assert store.reserve("a", [both], T0, T0 + LEASE_S).admitted
    over_usd = Line("b", 501, 10, 1000, 100, EXPIRES)
    assert not store.reserve("b", [over_usd], T0, T0 + LEASE_S).admitted
    over_tokens = Line("b", 1, 91, 1000, 100, EXPIRES)
    assert not store.reserve("c", [over_tokens], T0, T0 + LEASE_S).admitted


def test_a_reservation_across_budgets_is_all_or_nothing(store: BudgetStore) -> None:
    assert store.reserve("fill", [tokens("small", 90, 100)], T0, T0 + LEASE_S).admitted
    adm = store.reserve("r", [tokens("big", 20, 1000), tokens("small", 20, 100)], T0, T0 + LEASE_S)
    assert not adm.admitted and adm.refused == 1
    assert store.state("big", T0) == BucketState()  # nothing was taken from the budget that had room
    adm = store.reserve("r", [tokens("big", 10, 1000), tokens("small", 10, 100)], T0, T0 + LEASE_S)
    assert adm.admitted
    assert adm.states == (BucketState(0, 0, 0, 10, 1, 0), BucketState(0, 0, 0, 100, 2, 0))


def test_unenforced_lines_are_admitted_over_the_limit(store: BudgetStore) -> None:
    adm = store.reserve("r", [tokens("warn", 150, 100, enforce=False), tokens("hard", 150, 1000)], T0, T0 + LEASE_S)
    assert adm.admitted
    assert adm.states[0] == BucketState(0, 0, 0, 150, 1, 0)


def test_an_expired_lease_stops_holding_budget(store: BudgetStore) -> None:
    assert store.reserve("crashed", [tokens("b", 100)], T0, T0 + LEASE_S).admitted
    assert not store.reserve("r", [tokens("b", 10)], T0 + LEASE_S - 1, T0 + 2 * LEASE_S).admitted
    assert store.state("b", T0 + LEASE_S).reservations == 0  # lease end is exclusive
    assert store.reserve("r", [tokens("b", 10)], T0 + LEASE_S, T0 + 2 * LEASE_S).admitted


def test_a_late_settle_after_the_lease_still_charges_the_actual(store: BudgetStore) -> None:
    assert store.reserve("slow", [tokens("b", 40)], T0, T0 + LEASE_S).admitted
    assert store.reserve("other", [tokens("b", 30)], T0 + LEASE_S + 1, T0 + 3 * LEASE_S).admitted
    [settled] = store.settle("slow", [tokens("b", 35)], T0 + LEASE_S + 2)
    assert settled.state == BucketState(0, 35, 0, 30, 1, 0)  # the other reservation is untouched


def test_settling_without_a_reservation_charges(store: BudgetStore) -> None:
    [settled] = store.settle(None, [tokens("b", 70)], T0)
    assert settled.state.spent_tokens == 70
    assert store.reserve("r", [tokens("b", 30)], T0, T0 + LEASE_S).admitted
    assert not store.reserve("s", [tokens("b", 1)], T0, T0 + LEASE_S).admitted


def test_warn_levels_fire_once_per_bucket(store: BudgetStore) -> None:
    levels = ((None, 50), (None, 80))
    fired = []
    for n in (40, 20, 30, 5, 100):
        [s] = store.settle(None, [tokens("w1", n, levels=levels)], T0)
        fired.append((s.warned_before, s.warned_after))
    assert fired == [(0, 0), (0, 1), (1, 2), (2, 2), (2, 2)]
    [s] = store.settle(None, [tokens("w2", 95, levels=levels)], T0)  # a new window's bucket starts again
    assert (s.warned_before, s.warned_after) == (0, 2)
    assert store.state("w1", T0).warned == 2


def test_warn_levels_use_either_limit(store: BudgetStore) -> None:
    line = Line("w", 600, 1, 1000, 100, EXPIRES, True, ((500, 50),))
    [s] = store.settle(None, [line], T0)
    assert (s.warned_before, s.warned_after) == (0, 1)


def test_unknown_buckets_are_empty(store: BudgetStore) -> None:
    assert store.state("nothing-here", T0) == BucketState()


_uid = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    limit=st.integers(0, 500),
    ops=st.lists(
        st.tuples(st.integers(0, 120), st.integers(0, 150), st.sampled_from(["settle", "release", "open"])), max_size=25
    ),
)
def test_overspend_is_bounded_by_the_underestimates(store: BudgetStore, limit: int, ops: list) -> None:
    """spent <= limit + sum(max(0, actual - estimate)) over every settled reservation, at every step."""
    key = f"prop{next(_uid)}"
    under = 0
    for i, (estimate, actual, end) in enumerate(ops):
        adm = store.reserve(f"r{i}", [tokens(key, estimate, limit)], T0, T0 + LEASE_S)
        if not adm.admitted:
            continue
        if end == "settle":
            store.settle(f"r{i}", [tokens(key, actual, limit)], T0)
            under += max(0, actual - estimate)
        elif end == "release":
            store.settle(f"r{i}", [tokens(key, 0, limit)], T0)
        state = store.state(key, T0)
        assert state.spent_tokens + state.reserved_tokens <= limit + under
    state = store.state(key, T0)
    assert state.spent_tokens <= limit + under
