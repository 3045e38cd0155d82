"""Rates from genai-prices' bundled table, resolved per model, price context and price period.

genai-prices 0.2 (``ModelInfo.get_prices(timestamp, price_context)``) selects a model's prices by the
request's time (``ConditionalPrice`` with a start date or a time of day: DeepSeek's off-peak) and by
the served context (``PriceVariant``: ``service_tier`` flex / priority, ``processing`` batch). Parsing
its prices into rates per token class costs microseconds, so rates are cached per
``(model, context, period)``: a period is the index of the call's time among the table's start dates
plus which time-of-day windows are open. A price that changes on a date is then used from that date
on, in a long-running process too, and the common case (no constraint) is one dictionary hit.
"""

from __future__ import annotations

import bisect
import functools
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ._unit_rates import REQUEST_KEY, TABLE_KEYS
from ._usage import DETAILS, Usage, class_counts

_MILLION = Decimal(1_000_000)
_THOUSAND = Decimal(1000)
_ZERO = Decimal(0)

# Detail name -> genai-prices price key (a detail without a table price is priced as its class).
DETAIL_PRICE_KEYS: dict[str, str] = {
    "cache_write_1h": "cache_write_1h_mtok",
    "input_audio": "input_audio_mtok",
    "input_image": "input_image_mtok",
    "input_video": "input_video_mtok",
    "cache_read_audio": "cache_audio_read_mtok",
    "cache_read_image": "cache_image_read_mtok",
    "output_audio": "output_audio_mtok",
    "output_image": "output_image_mtok",
}


@dataclass(frozen=True, slots=True)
class Rate:
    """A price per million tokens, flat or with prompt-size tiers (``(start, price)``, ascending)."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...] = ()

    def at(self, prompt_tokens: int) -> Decimal:
        """The price for a call whose whole prompt has ``prompt_tokens`` tokens (cliff tiers)."""
        if not self.tiers:
            return self.base
        price = self.base
        for start, tier_price in self.tiers:
            if prompt_tokens > start:
                price = tier_price
        return price

    def scaled(self, m: Decimal) -> Rate:
        """This rate times ``m``."""
        return Rate(self.base * m, tuple((s, p * m) for s, p in self.tiers))


@dataclass(frozen=True, slots=True)
class Rates:
    """Rates of one model in one context and period: one per token class, plus detail rates."""

    by_class: tuple[Rate | None, ...]
    source: str
    details: tuple[tuple[str, int, Rate], ...] = ()  # (detail, class index, rate)
    units: tuple[tuple[str, Decimal], ...] = ()  # (unit, USD per its priced quantity: _usage.UNITS)
    request_fee: Decimal | None = None  # USD per call (genai-prices ``requests_kcount`` / 1000)

    def unit_price(self, unit: str) -> Decimal | None:
        """USD per priced quantity of ``unit`` (``_usage.UNITS``; the table's ``*_kcount`` per 1,000)."""
        for name, price in self.units:
            if name == unit:
                return price
        return None

    def cost(self, usage: Usage) -> tuple[Decimal, list[Decimal]] | None:
        """``(total, parts by class)`` of ``usage``, or ``None`` when a used class has no price."""
        prompt = usage.input + usage.cache_read + usage.cache_write
        parts: list[Decimal] = []
        total = _ZERO
        by_class = self.by_class
        for tokens, rate in zip(class_counts(usage), by_class, strict=True):
            if not tokens:
                parts.append(_ZERO)
                continue
            if rate is None:
                return None
            part = rate.at(prompt) * tokens / _MILLION
            parts.append(part)
            total += part
        if usage.details and self.details:
            reported = dict(usage.details)
            for name, index, rate in self.details:
                n = reported.get(name)
                parent = by_class[index]
                if n and parent is not None:
                    delta = (rate.at(prompt) - parent.at(prompt)) * n / _MILLION
                    parts[index] += delta
                    total += delta
        return total, parts

    def with_units(self, units: tuple[tuple[str, Decimal], ...]) -> Rates:
        """These rates with ``units`` replacing (or adding) unit prices."""
        merged = dict(self.units)
        merged.update(units)
        return Rates(self.by_class, self.source, self.details, tuple(sorted(merged.items())), self.request_fee)

    def scaled(self, m: Decimal, source: str) -> Rates:
        """These rates times ``m`` (a negotiated discount), with another source."""
        return Rates(
            tuple(None if r is None else r.scaled(m) for r in self.by_class),
            source,
            tuple((n, i, r.scaled(m)) for n, i, r in self.details),
            tuple((n, p * m) for n, p in self.units),
            None if self.request_fee is None else self.request_fee * m,
        )


def rate_from_table(value: Any) -> Rate | None:
    """A genai-prices price (Decimal or TieredPrices) as a :class:`Rate`."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return Rate(value)
    base = getattr(value, "base", None)
    tiers = getattr(value, "tiers", None)
    if isinstance(base, Decimal) and tiers is not None:
        return Rate(base, tuple((int(t.start), Decimal(t.price)) for t in tiers))
    return None


def rates_from_model_price(prices: Any, source: str) -> Rates | None:
    """:class:`Rates` of a genai-prices ``ModelPrice`` (``None`` without an input price)."""
    inp = rate_from_table(getattr(prices, "input_mtok", None))
    if inp is None:
        return None
    out = rate_from_table(getattr(prices, "output_mtok", None))
    cache_read = rate_from_table(getattr(prices, "cache_read_mtok", None)) or inp
    cache_write = rate_from_table(getattr(prices, "cache_write_mtok", None)) or inp
    reasoning = rate_from_table(getattr(prices, "output_reasoning_mtok", None)) or out
    details: list[tuple[str, int, Rate]] = []
    for name, key in DETAIL_PRICE_KEYS.items():
        rate = rate_from_table(getattr(prices, key, None))
        if rate is not None:
            details.append((name, DETAILS[name][0], rate))
    units: list[tuple[str, Decimal]] = []
    for name, key in TABLE_KEYS.items():
        per_k = getattr(prices, key, None)
        if isinstance(per_k, Decimal):
            units.append((name, per_k))
    fee = getattr(prices, REQUEST_KEY, None)
    request_fee = fee / _THOUSAND if isinstance(fee, Decimal) and fee else None
    return Rates((inp, cache_read, cache_write, out, reasoning), source, tuple(details), tuple(units), request_fee)


class TableModel:
    """One table model as found for a provider: its rates per (context, period), built on first use."""

    __slots__ = ("_cache", "_lock", "batch", "boundaries", "info", "own", "provider_id", "source", "tiers", "windows")

    def __init__(self, info: Any, own: bool, source: str, provider_id: str = "") -> None:
        self.info = info
        self.own = own  # variants apply only to the provider's own models (as genai-prices' calc_price)
        self.source = source
        self.provider_id = provider_id
        self.tiers = frozenset(
            v.when["service_tier"] for v in info.price_variants or () if "service_tier" in v.when and own
        )
        self.batch = own and any(v.when.get("processing") == "batch" for v in info.price_variants or ())
        starts: set[float] = set()
        windows: list[Any] = []
        for constraint in _constraints(info):
            start_date = getattr(constraint, "start_date", None)
            if start_date is not None:
                starts.add(datetime(start_date.year, start_date.month, start_date.day, tzinfo=UTC).timestamp())
            elif hasattr(constraint, "start_time") and constraint not in windows:
                windows.append(constraint)
        self.boundaries = tuple(sorted(starts))
        self.windows = tuple(windows)
        self._cache: dict[tuple[Any, ...], Rates | None] = {}
        self._lock = threading.Lock()

    def rates(self, context: tuple[str | None, str | None], when: float) -> Rates | None:
        """The rates for a call served in ``context`` (service tier, processing) at ``when`` (epoch s)."""
        period: Any = bisect.bisect_right(self.boundaries, when) if self.boundaries else 0
        if self.windows:
            at = datetime.fromtimestamp(when, UTC)
            period = (period, tuple(w.active(at) for w in self.windows))
        key = (context[0], context[1], period)
        try:
            return self._cache[key]
        except KeyError:
            pass
        rates = self._build(context, when)
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = rates
        return rates

    def has_variant(self, key: str, value: str, when: float) -> bool:
        """Whether the table has a price variant for ``key == value`` (a tier, batch) in force at ``when``."""
        if not (value in self.tiers if key == "service_tier" else self.batch):
            return False
        at = datetime.fromtimestamp(when, UTC)
        return any(
            v.when.get(key) == value and (v.constraint is None or v.constraint.active(at))
            for v in self.info.price_variants or ()
        )

    def _build(self, context: tuple[str | None, str | None], when: float) -> Rates | None:
        tier, processing = context
        price_context: dict[str, str] = {}
        if self.own:
            if tier is not None:
                price_context["service_tier"] = tier
            if processing is not None:
                price_context["processing"] = processing
        prices = self.info.get_prices(datetime.fromtimestamp(when, UTC), price_context or None)
        return rates_from_model_price(prices, self.source)


def _constraints(info: Any) -> list[Any]:
    found: list[Any] = []
    prices = info.prices
    if isinstance(prices, list):
        found.extend(p.constraint for p in prices if p.constraint is not None)
    for variant in info.price_variants or ():
        if variant.constraint is not None:
            found.append(variant.constraint)
    return found


def find_model(table_provider: str | None, model: str, source: str) -> TableModel | None:
    """The table model priced for ``model`` at ``table_provider`` (any provider as a fallback)."""
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    for provider_id in (table_provider, None) if table_provider is not None else (None,):
        try:
            provider, info = snapshot.find_provider_model(model, None, provider_id, None)
        except LookupError:
            continue
        own = any(info is m for m in provider.models)
        return TableModel(info, own, source, provider.id)
    return None


@functools.cache
def table_version() -> str:
    """The genai-prices version (package metadata only: the table itself is not loaded)."""
    try:
        from importlib.metadata import version

        return version("genai-prices")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return "unknown"


def load_table() -> None:
    """Load genai-prices' bundled table (``configure()``'s warm-up thread calls it off the caller's path)."""
    from genai_prices import data_snapshot

    data_snapshot.get_snapshot()


@functools.cache
def data_date() -> str:
    """The newest price date the bundled table knows (ISO; loads the table)."""
    newest = ""
    try:
        from genai_prices import data_snapshot

        for provider in data_snapshot.get_snapshot().providers:
            for info in provider.models:
                for constraint in _constraints(info):
                    start_date = getattr(constraint, "start_date", None)
                    if start_date is not None and start_date.isoformat() > newest:
                        newest = start_date.isoformat()
    except Exception:  # pragma: no cover - an odd table still prices
        newest = ""
    return newest or "unknown"


def table_info() -> tuple[str, str]:
    """``(genai-prices version, data date)``: the newest price date the bundled table knows."""
    return table_version(), data_date()
