"""Cost equals a hand-computed figure from the providers' published rates, to 1e-9 USD, for each shape:
standard, flex, priority, batch, cached 5m / 1h, audio, long context over the threshold, a dated change,
off-peak; and overrides that express the same. Rates are USD per million tokens."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

import tokenmeter
from tokenmeter import ConfigError, PriceBook, Usage
from tokenmeter._usage import with_details

M = Decimal(10**6)
BOOK = PriceBook()
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC).timestamp()


def _usd(provider: str, model: str, usage: Usage, when: float = NOW) -> Decimal:
    cost = BOOK.cost(provider, model, usage, when)
    assert cost.usd is not None, (provider, model)
    assert cost.by_class is not None and sum(cost.by_class) == cost.usd
    return cost.usd


U = Usage(input=10_000, cache_read=2_000, output=3_000)


@pytest.mark.parametrize(
    ("provider", "model", "usage", "expected"),
    [
        # OpenAI gpt-5: standard 1.25 / 0.125 / 10; flex 0.625 / 0.0625 / 5; priority 2.5 / 0.25 / 20; batch = 50%.
        ("openai", "gpt-5", U, (Decimal("1.25") * 10_000 + Decimal("0.125") * 2_000 + 10 * 3_000) / M),
        (
            "openai",
            "gpt-5",
            Usage(10_000, 2_000, 0, 3_000, service_tier="flex"),
            (Decimal("0.625") * 10_000 + Decimal("0.0625") * 2_000 + 5 * 3_000) / M,
        ),
        (
            "openai",
            "gpt-5",
            Usage(10_000, 2_000, 0, 3_000, service_tier="priority"),
            (Decimal("2.5") * 10_000 + Decimal("0.25") * 2_000 + 20 * 3_000) / M,
        ),
        (
            "openai",
            "gpt-5",
            Usage(10_000, 2_000, 0, 3_000, processing="batch"),
            (Decimal("0.625") * 10_000 + Decimal("0.0625") * 2_000 + 5 * 3_000) / M,
        ),
        # Anthropic claude-haiku-4-5: 1 input, 1.25 5m write, 2 1h write, 0.10 read, 5 output.
        (
            "anthropic",
            "claude-haiku-4-5",
            with_details(Usage(100, 1_000, 3_000, 500), cache_write_1h=2_000),
            (Decimal(1) * 100 + Decimal("0.1") * 1_000 + Decimal("1.25") * 1_000 + 2 * 2_000 + 5 * 500) / M,
        ),
        # claude-sonnet-4-5 over 200k prompt tokens: 6 input, 22.5 output (the whole call at the long rate).
        (
            "anthropic",
            "claude-sonnet-4-5",
            Usage(input=250_000, output=1_000),
            (Decimal(6) * 250_000 + Decimal("22.5") * 1_000) / M,
        ),
        (
            "anthropic",
            "claude-sonnet-4-5",
            Usage(input=150_000, output=1_000),
            (Decimal(3) * 150_000 + Decimal(15) * 1_000) / M,
        ),
        # OpenAI gpt-audio: text 2.5 in / 10 out, audio 32 in / 64 out.
        (
            "openai",
            "gpt-audio",
            with_details(Usage(input=1_300, output=900), input_audio=1_000, output_audio=700),
            (Decimal("2.5") * 300 + 32 * 1_000 + 10 * 200 + 64 * 700) / M,
        ),
        # Gemini 2.5 Flash: 0.30 text, 1.00 audio input, 2.50 output; flex 50% (Google's documented discount).
        (
            "gcp.gemini",
            "gemini-2.5-flash",
            with_details(Usage(input=3_000, output=200), input_audio=2_000),
            (Decimal("0.3") * 1_000 + 1 * 2_000 + Decimal("2.5") * 200) / M,
        ),
        (
            "gcp.gemini",
            "gemini-2.5-flash",
            Usage(input=3_000, output=200, service_tier="flex"),
            (Decimal("0.3") * 3_000 + Decimal("2.5") * 200) / M / 2,
        ),
    ],
)
def test_published_rates(provider: str, model: str, usage: Usage, expected: Decimal) -> None:
    assert abs(_usd(provider, model, usage) - expected) <= Decimal("1e-9")


def test_deepseek_off_peak_is_priced_at_the_calls_own_time() -> None:
    # deepseek-chat: 0.27 / 1.10 standard (00:30-16:30 UTC), 0.135 / 0.55 off-peak (16:30-00:30 UTC).
    usage = Usage(input=1_000_000, output=1_000_000)
    peak = datetime(2026, 11, 2, 12, 0, tzinfo=UTC).timestamp()
    off_peak = datetime(2026, 11, 2, 20, 0, tzinfo=UTC).timestamp()
    assert _usd("deepseek", "deepseek-chat", usage, peak) == Decimal("1.37")
    assert _usd("deepseek", "deepseek-chat", usage, off_peak) == Decimal("0.685")
    # The same book, back and forth: no rate frozen at first use.
    assert _usd("deepseek", "deepseek-chat", usage, peak) == Decimal("1.37")


def test_a_dated_change_applies_from_its_date_in_a_running_process() -> None:
    # gpt-5's flex and priority variants start 2026-10-12: before it, flex is priced at OpenAI's
    # documented 50% (Flex = Batch API rates) and priority, with no published rate in the table, is unpriced.
    usage = Usage(input=1_000_000, output=1_000_000, service_tier="flex")
    before = datetime(2026, 10, 1, tzinfo=UTC).timestamp()
    after = datetime(2026, 10, 13, tzinfo=UTC).timestamp()
    assert _usd("openai", "gpt-5", usage, after) == Decimal("5.625")
    assert _usd("openai", "gpt-5", Usage(input=1_000_000, output=1_000_000, service_tier="priority"), after) == Decimal(
        "22.5"
    )
    assert _usd("openai", "gpt-5", usage, before) == Decimal("5.625")
    priority_before = BOOK.cost("openai", "gpt-5", Usage(input=1, output=1, service_tier="priority"), before)
    assert priority_before.usd is None  # no published priority variant in force then: unpriced, never guessed


def test_overrides_express_tiers_ttls_service_tiers_and_start_dates() -> None:
    book = PriceBook(
        {
            "gpt-5": {"service_tier": "scale", "input": 1, "output": 8},
            "claude-*": {
                "provider": "anthropic",
                "start_date": "2026-11-01",
                "input": {"base": 3, "above": {"200000": 6}},
                "cache_write": 3.75,
                "cache_write_1h": 6,
                "output": 15,
            },
        }
    )
    scale = book.cost("openai", "gpt-5", Usage(input=1_000, output=100, service_tier="scale"), NOW)
    assert scale.source == "override" and scale.usd == (Decimal(1) * 1_000 + 8 * 100) / M
    default = book.cost("openai", "gpt-5", Usage(input=1_000, output=100), NOW)
    assert default.source.startswith("table:")
    usage = with_details(Usage(input=250_000, cache_write=2_000, output=10), cache_write_1h=500)
    cost = book.cost("anthropic", "claude-x", usage, NOW)
    expected = (Decimal(6) * 250_000 + Decimal("3.75") * 1_500 + 6 * 500 + 15 * 10) / M
    assert cost.source == "override" and cost.usd == expected
    before = datetime(2026, 10, 31, tzinfo=UTC).timestamp()
    assert book.cost("anthropic", "claude-x", usage, before).usd is None  # before its start: the table (no model)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"m": {"input": 1, "start_date": "yesterday"}}, "start_date"),
        ({"m": {"input": {"base": 1, "above": {"lots": 2}}}}, "threshold"),
        ({"m": {"input": {"rate": 1}}}, "base"),
        ({"m": {"input": 1, "service_tier": ""}}, "service_tier"),
        ({"m": {"input": 1, "cache_write_2h": 1}}, "unknown key"),
    ],
)
def test_bad_overrides_fail_at_configure(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tokenmeter.configure(prices=spec)


def test_record_prices_a_past_call_at_its_own_time() -> None:
    from tokenmeter.testing import capture

    usage = Usage(input=1_000_000, output=1_000_000)
    with capture() as cap:
        tokenmeter.record("deepseek", "deepseek-chat", usage, timestamp=datetime(2026, 11, 2, 20, 0, tzinfo=UTC))
        tokenmeter.record(
            "deepseek", "deepseek-chat", usage, timestamp=datetime(2026, 11, 2, 12, 0, tzinfo=UTC).timestamp()
        )
        assert cap.counter("tokenmeter.cost") == pytest.approx(0.685 + 1.37, abs=1e-9)


def test_prices_info_gauge_names_the_table_and_its_data_date() -> None:
    import genai_prices

    from tokenmeter.testing import capture

    with capture() as cap:
        points = cap.points("tokenmeter.prices.info")
    assert len(points) == 1
    attrs = dict(points[0].attributes)
    assert attrs["tokenmeter.prices.version"] == genai_prices.__version__
    assert attrs["tokenmeter.prices.data_date"] == BOOK.data_date
    assert BOOK.data_date[:4].isdigit()


def test_pricing_is_cached_per_model_and_period_not_frozen() -> None:
    book = PriceBook()
    usage = Usage(input=1_000, output=100)
    t = time.time()
    first = book.cost("openai", "gpt-4o", usage, t)
    assert book.cost("openai", "gpt-4o", usage, t + 1) == first
