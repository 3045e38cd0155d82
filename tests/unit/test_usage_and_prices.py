"""Usage arithmetic and pricing against genai-prices' own calculation, to the last Decimal digit."""

from __future__ import annotations

from decimal import Decimal

import genai_prices
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tokenmeter
from tokenmeter import ConfigError, PriceBook, Usage

counts = st.integers(min_value=0, max_value=10**9)
usages = st.builds(Usage, counts, counts, counts, counts, counts, st.booleans())


@given(usages, usages, usages)
def test_usage_addition_is_associative_commutative_and_sums_classes(a: Usage, b: Usage, c: Usage) -> None:
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a
    assert (a + b).total == a.total + b.total
    assert (a + b).estimated == (a.estimated or b.estimated)
    assert a + Usage() == Usage(a.input, a.cache_read, a.cache_write, a.output, a.reasoning, a.estimated)


@given(usages)
def test_semconv_totals_partition_the_classes(u: Usage) -> None:
    assert u.input_total + u.output_total == u.total
    assert u.input_total == u.input + u.cache_read + u.cache_write
    assert u.output_total == u.output + u.reasoning
    assert sum(n for _, n in u.by_class()) == u.total


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_usage_rejects_non_counts(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        Usage(input=bad)  # type: ignore[arg-type]


def test_usage_is_frozen() -> None:
    u = Usage(input=1)
    with pytest.raises(AttributeError):
        u.input = 2  # type: ignore[misc]


TABLE_CASES = [
    ("openai", "gpt-4o", "openai"),
    ("openai", "gpt-4o-mini", "openai"),
    ("anthropic", "claude-sonnet-4-5", "anthropic"),
    ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "aws"),
    ("gcp.gemini", "gemini-2.5-pro", "google"),
]


@given(
    st.sampled_from(TABLE_CASES),
    st.integers(0, 400_000),
    st.integers(0, 50_000),
    st.integers(0, 50_000),
    st.integers(0, 20_000),
)
def test_cost_equals_genai_prices_to_the_last_digit(
    case: tuple[str, str, str], inp: int, cr: int, cw: int, out: int
) -> None:
    provider, model, table_provider = case
    book = PriceBook()
    cost = book.cost(provider, model, Usage(input=inp, cache_read=cr, cache_write=cw, output=out))
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=inp + cr + cw, cache_read_tokens=cr, cache_write_tokens=cw, output_tokens=out),
        model,
        provider_id=table_provider,
    ).total_price
    assert cost.usd == expected
    assert cost.source == f"table:genai-prices@{genai_prices.__version__}"
    assert cost.by_class is not None and sum(cost.by_class) == cost.usd


def test_reasoning_is_priced_at_the_output_rate_when_the_table_has_no_reasoning_rate() -> None:
    book = PriceBook()
    a = book.cost("openai", "o3", Usage(output=1000))
    b = book.cost("openai", "o3", Usage(reasoning=1000))
    assert a.usd == b.usd == Decimal("0.008")


def test_unknown_model_is_unpriced_never_zero() -> None:
    cost = PriceBook().cost("openai", "my-private-model-7b", Usage(input=10, output=10))
    assert cost.usd is None
    assert cost.source == "unpriced"
    assert not cost.priced


def test_overrides_negotiated_rate_discount_and_private_model(tmp_path: object) -> None:
    book = PriceBook(
        {
            "my-private-*": {"input": "0.10", "output": "0.40"},
            "gpt-4o": {"multiplier": "0.8", "provider": "openai"},
        }
    )
    private = book.cost("openai", "my-private-7b", Usage(input=1_000_000, cache_read=1_000_000, output=1_000_000))
    assert private.usd == Decimal("0.60")  # cache read falls back to the input rate
    assert private.source == "override"
    discounted = book.cost("openai", "gpt-4o", Usage(input=1_000_000, output=1_000_000))
    assert discounted.usd == Decimal("10.0")  # (2.5 + 10) * 0.8
    assert book.cost("azure.ai.openai", "gpt-4o", Usage(input=1_000_000)).source.startswith("table:")


def test_overrides_from_toml_file(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "prices.toml"  # type: ignore[operator]
    path.write_text('[models."local-llama"]\ninput = 0.05\noutput = 0.05\nreasoning = 1\n')
    book = PriceBook(str(path))
    assert book.cost("openai", "local-llama", Usage(input=2_000_000, reasoning=1_000_000)).usd == Decimal("1.10")


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({"x": {"input": -1}}, "finite number >= 0"),
        ({"x": {"inptu": 1}}, "unknown key 'inptu'"),
        ({"x": {"output": 1}}, "must give an 'input' rate"),
        ({"x": 3}, "must be a mapping"),
        ("/nonexistent/prices.toml", "cannot read price file"),
    ],
)
def test_bad_price_overrides_fail_at_configure(prices: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tokenmeter.configure(prices=prices, exporter="none")
    assert tokenmeter.active() is None
