"""The opt-in customer dimension: top-N spenders per window plus _other / _none, totals exact, bounded."""

from __future__ import annotations

from decimal import Decimal

import pytest

import tokenmeter
from tokenmeter import ConfigError, MeteredCall, Request, Usage
from tokenmeter._call import begin
from tokenmeter._customers import TopCustomers
from tokenmeter.testing import capture

DAY = 86400.0


def _call(customer: str | None, output: int) -> None:
    with tokenmeter.attributes(customer=customer):
        call = begin(Request("openai", "gpt-4o-mini", max_tokens=10))
        assert isinstance(call, MeteredCall)
        call.stop(Usage(input=10, output=output))


def test_top_n_customers_plus_other_and_none_add_up_to_the_totals() -> None:
    with capture(customer_metrics=2) as cap:
        for customer, output in (("a", 500), ("b", 50), ("c", 300), ("d", 10), ("e", 5), (None, 70), ("b", 1)):
            _call(customer, output)
        cost = {p.attributes["tokenmeter.customer.id"]: p.value for p in cap.points("tokenmeter.customer.cost")}
        tokens = {p.attributes["tokenmeter.customer.id"]: p.value for p in cap.points("tokenmeter.customer.tokens")}
        assert set(cost) == set(tokens) == {"a", "c", "_other", "_none"}
        assert tokens == {"a": 510, "c": 310, "_other": 60 + 20 + 15 + 11, "_none": 80}
        assert sum(tokens.values()) == cap.counter("tokenmeter.tokens")
        assert sum(cost.values()) == pytest.approx(cap.counter("tokenmeter.cost"), rel=1e-12)
        assert all(
            p.attributes["tokenmeter.window.start"].endswith("T00:00Z") for p in cap.points("tokenmeter.customer.cost")
        )


def test_off_by_default() -> None:
    with capture() as cap:
        _call("a", 5)
        assert cap.points("tokenmeter.customer.cost") == []


@pytest.mark.parametrize("value", [-1, "x"])
def test_a_bad_setting_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="customer_metrics"):
        tokenmeter.configure(customer_metrics=value)


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000 - 1_900_000_000 % DAY + DAY - 1

    def __call__(self) -> float:
        return self.now


def test_the_window_resets_at_utc_midnight() -> None:
    clock = Clock()
    top = TopCustomers(3, clock)
    top.add("a", 10, Decimal("0.5"))
    start, rows = top.snapshot()
    assert rows == [("a", Decimal("0.5"), 10)]
    clock.now += 1
    start2, rows = top.snapshot()
    assert (start2 - start, rows) == (DAY, [])
    top.add("b", 1, None)  # unpriced: tokens only
    assert top.snapshot()[1] == [("b", Decimal(0), 1)]


def test_memory_is_bounded_and_folding_keeps_totals_exact() -> None:
    top = TopCustomers(5, Clock(), max_tracked=100)
    for i in range(10_000):
        top.add(f"c{i}", i, Decimal(i) / 1000)
    assert len(top._spend) == 101  # 100 tracked + _other
    _, rows = top.snapshot()
    assert len(rows) == 6
    assert sum(r[2] for r in rows) == sum(range(10_000))
    assert sum(r[1] for r in rows) == sum(Decimal(i) / 1000 for i in range(10_000))
