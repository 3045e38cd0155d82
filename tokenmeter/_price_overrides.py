"""Price overrides: negotiated rates and private models, parsed once at ``configure()``.

An entry maps a model glob to rates in USD per million tokens, or to a ``multiplier`` of the table's
price. Conditions narrow it: ``provider``, ``service_tier`` / ``processing`` (what served the call:
``flex``, ``scale``, ``batch``...) and ``start_date`` (ISO date, UTC: the entry applies to calls from that
day on). A rate is a number or ``{"base": 3, "above": {"200000": 6}}`` (the whole prompt above a
threshold pays the higher rate, as the providers' long-context prices do). Detail rates
(``cache_write_1h``, ``input_audio``, ``output_audio``, ``input_image``, ``output_image``,
``cache_read_audio``) price those parts of a class; without one the part pays its class's rate.
Unit rates price per-request units: ``web_search``, ``web_fetch``, ``file_search``, ``code_execution``
in USD per 1,000, ``cache_storage`` in USD per 1,000,000 tokens per hour; they are absolute (a
``multiplier`` does not scale them), and an entry of unit rates only keeps the table's token rates.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._price_table import Rate, Rates
from ._usage import DETAILS, UNITS, Usage
from ._validate import amount, read_data_file

_CLASS_KEYS = {
    "input": "input",
    "cache_read": "cache_read",
    "cache_write": "cache_write",
    "output": "output",
    "reasoning": "reasoning",
}
RATE_KEYS: dict[str, str] = {}
for _name in (*_CLASS_KEYS, *DETAILS):
    RATE_KEYS[_name] = _name
    RATE_KEYS[f"{_name}_mtok"] = _name
_CONDITIONS = ("provider", "service_tier", "processing", "start_date")


def _decimal(value: object, where: str) -> Decimal:
    return amount(value, f"prices: {where}", "USD per million tokens")


def _rate(value: object, where: str) -> Rate:
    if not isinstance(value, Mapping):
        return Rate(_decimal(value, where))
    unknown = set(value) - {"base", "above"}
    if unknown or "base" not in value:
        raise ConfigError(f"prices: {where} must be a number or {{'base': 3, 'above': {{'200000': 6}}}}")
    above = value.get("above") or {}
    if not isinstance(above, Mapping):
        raise ConfigError(f"prices: {where}.above must map a prompt-token threshold to a rate")
    tiers: list[tuple[int, Decimal]] = []
    for threshold, price in above.items():
        try:
            start = int(str(threshold))
        except ValueError:
            raise ConfigError(f"prices: {where}.above: threshold {threshold!r} is not a whole number") from None
        tiers.append((start, _decimal(price, f"{where}.above.{threshold}")))
    return Rate(_decimal(value["base"], f"{where}.base"), tuple(sorted(tiers)))


@dataclass(frozen=True, slots=True)
class Override:
    """One price entry: where it applies, and its rates or multiplier."""

    pattern: str
    provider: str | None
    service_tier: str | None
    processing: str | None
    start: float | None  # epoch seconds of start_date (UTC midnight)
    rates: Rates | None
    multiplier: Decimal | None
    units: tuple[tuple[str, Decimal], ...] = ()  # (unit, USD per its priced quantity), absolute

    def matches_model(self, provider: str, model: str) -> bool:
        """Whether the entry is about this provider's model (the per-call conditions aside)."""
        if self.provider is not None and self.provider != provider:
            return False
        return fnmatch.fnmatchcase(model, self.pattern)

    def applies(self, usage: Usage, when: float) -> bool:
        """Whether the entry applies to a call served so, at ``when`` (epoch seconds)."""
        if self.service_tier is not None and usage.service_tier != self.service_tier:
            return False
        if self.processing is not None and usage.processing != self.processing:
            return False
        return self.start is None or when >= self.start


def _load(prices: str | Path) -> Any:
    data = read_data_file(prices, "price file", "prices")
    if isinstance(data, dict) and isinstance(data.get("models"), dict):
        data = data["models"]
    return data


def parse_overrides(prices: Mapping[str, Any] | str | Path | None) -> list[Override]:
    """Parse and check the ``prices`` option; raises :class:`ConfigError` naming the bad entry."""
    if prices is None:
        return []
    if isinstance(prices, (str, Path)):
        prices = _load(prices)
    if not isinstance(prices, Mapping):
        raise ConfigError("prices: expected a mapping {'model-glob': {'input': 2.5, 'output': 10}}")
    return [_entry(key, spec) for key, spec in prices.items()]


def _entry(key: object, spec: object) -> Override:
    if not isinstance(key, str) or not key:
        raise ConfigError(f"prices: model keys must be non-empty strings, got {key!r}")
    if not isinstance(spec, Mapping):
        raise ConfigError(f"prices: entry {key!r} must be a mapping of rates, got {spec!r}")
    rates: dict[str, Rate] = {}
    units: dict[str, Decimal] = {}
    multiplier: Decimal | None = None
    conditions: dict[str, str] = {}
    start: float | None = None
    for name, value in spec.items():
        if name in _CONDITIONS and name != "start_date":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"prices: {key}.{name} must be a non-empty string such as 'openai' or 'flex'")
            conditions[name] = value
        elif name == "start_date":
            try:
                day = value if isinstance(value, date) else date.fromisoformat(str(value))
            except ValueError:
                raise ConfigError(f"prices: {key}.start_date must be an ISO date such as 2026-10-01") from None
            start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        elif name == "multiplier":
            multiplier = _decimal(value, f"{key}.multiplier")
        elif name in RATE_KEYS:
            rates[RATE_KEYS[name]] = _rate(value, f"{key}.{name}")
        elif name in UNITS:
            per = "USD per 1,000,000 tokens per hour" if name == "cache_storage" else "USD per 1,000"
            units[name] = amount(value, f"prices: {key}.{name}", per)
        else:
            allowed = ", ".join(sorted({*_CLASS_KEYS, *DETAILS, *UNITS, "multiplier", *_CONDITIONS}))
            raise ConfigError(f"prices: unknown key {name!r} in entry {key!r}; use one of: {allowed}")
    if not rates and multiplier is None and not units:
        raise ConfigError(f"prices: entry {key!r} sets no rate; give 'input'/'output', 'multiplier' or a unit rate")
    if rates and "input" not in rates:
        raise ConfigError(f"prices: entry {key!r} must give an 'input' rate (USD per million tokens)")
    return Override(
        key,
        conditions.get("provider"),
        conditions.get("service_tier"),
        conditions.get("processing"),
        start,
        _rates(rates, multiplier) if rates else None,
        multiplier,
        tuple(sorted(units.items())),
    )


def _rates(r: dict[str, Rate], multiplier: Decimal | None) -> Rates:
    """Rates of an entry: cache read/write fall back to ``input``, reasoning to ``output``."""
    inp = r["input"]
    out = r.get("output")
    by_class = (inp, r.get("cache_read", inp), r.get("cache_write", inp), out, r.get("reasoning", out))
    details = tuple((name, DETAILS[name][0], rate) for name, rate in r.items() if name in DETAILS)
    rates = Rates(by_class, "override", details)
    return rates if multiplier is None else rates.scaled(multiplier, "override")
