"""Prices: usage x price table -> Cost, offline, with overrides for negotiated rates and private models."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from . import _lifecycle
from ._errors import ConfigError
from ._usage import TOKEN_CLASSES, Usage, class_counts

_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)

# OTel ``gen_ai.provider.name`` values -> genai-prices provider ids.
_TABLE_PROVIDER: dict[str, str] = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral_ai": "mistral",
    "perplexity": "perplexity",
    "x_ai": "x-ai",
}

_RATE_KEYS = {
    "input": "input",
    "input_mtok": "input",
    "cache_read": "cache_read",
    "cache_read_mtok": "cache_read",
    "cache_write": "cache_write",
    "cache_write_mtok": "cache_write",
    "output": "output",
    "output_mtok": "output",
    "reasoning": "reasoning",
    "reasoning_mtok": "reasoning",
}


@dataclass(frozen=True, slots=True)
class Cost:
    """The price of a usage.

    ``usd`` is ``None`` when the model has no known price (never a silent $0). ``source`` says where the
    price came from: ``table:genai-prices@<version>``, ``override``, ``provider`` or ``unpriced``.
    ``by_class`` holds the cost of each token class in the order of ``TOKEN_CLASSES`` (``None`` if unpriced).
    """

    usd: Decimal | None
    source: str
    by_class: tuple[Decimal, ...] | None = None

    @property
    def priced(self) -> bool:
        """Whether a price was found."""
        return self.usd is not None


UNPRICED = Cost(None, "unpriced", None)


@dataclass(frozen=True, slots=True)
class _Rate:
    """A price per million tokens, flat or with input-size tiers (``(start, price)``, ascending)."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...] = ()

    def at(self, prompt_tokens: int) -> Decimal:
        if not self.tiers:
            return self.base
        price = self.base
        for start, tier_price in self.tiers:
            if prompt_tokens > start:
                price = tier_price
        return price


@dataclass(frozen=True, slots=True)
class _Rates:
    """Rates of one model, one per token class (``None``: the class has no price)."""

    by_class: tuple[_Rate | None, ...]
    source: str

    def cost(self, usage: Usage) -> Cost:
        prompt = usage.input_total
        parts: list[Decimal] = []
        total = _ZERO
        for tokens, rate in zip(class_counts(usage), self.by_class, strict=True):
            if not tokens:
                parts.append(_ZERO)
                continue
            if rate is None:
                return UNPRICED
            part = rate.at(prompt) * tokens / _MILLION
            parts.append(part)
            total += part
        return Cost(total, self.source, tuple(parts))


def _table_version() -> str:
    try:
        from importlib.metadata import version

        return version("genai-prices")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return "unknown"


def _rate_from_table(value: Any) -> _Rate | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return _Rate(value)
    base = getattr(value, "base", None)
    tiers = getattr(value, "tiers", None)
    if isinstance(base, Decimal) and tiers is not None:
        return _Rate(base, tuple((int(t.start), Decimal(t.price)) for t in tiers))
    return None


def _decimal(value: object, where: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ConfigError(f"prices: {where} must be a number (USD per million tokens), got {value!r}") from exc
    if result < 0 or not result.is_finite():
        raise ConfigError(f"prices: {where} must be a finite number >= 0, got {value!r}")
    return result


@dataclass(frozen=True, slots=True)
class _Override:
    provider: str | None
    pattern: str
    rates: dict[str, Decimal]
    multiplier: Decimal | None

    def matches(self, provider: str, model: str) -> bool:
        if self.provider is not None and self.provider != provider:
            return False
        return fnmatch.fnmatchcase(model, self.pattern)


def _parse_overrides(prices: Mapping[str, Any] | str | Path | None) -> list[_Override]:
    if prices is None:
        return []
    if isinstance(prices, (str, Path)):
        path = Path(prices)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"prices: cannot read price file {str(path)!r}: {exc}") from exc
        try:
            if path.suffix.lower() == ".toml":
                import tomllib

                data: Any = tomllib.loads(text)
            else:
                data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"prices: {str(path)!r} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
        if isinstance(data, dict) and isinstance(data.get("models"), dict):
            data = data["models"]
        prices = data
    if not isinstance(prices, Mapping):
        raise ConfigError("prices: expected a mapping {'model-glob': {'input': 2.5, 'output': 10}}")
    result: list[_Override] = []
    for key, spec in prices.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"prices: model keys must be non-empty strings, got {key!r}")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"prices: entry {key!r} must be a mapping of rates, got {spec!r}")
        rates: dict[str, Decimal] = {}
        multiplier: Decimal | None = None
        provider: str | None = None
        for name, value in spec.items():
            if name == "provider":
                if not isinstance(value, str) or not value:
                    raise ConfigError(f"prices: {key}.provider must be a provider name such as 'openai'")
                provider = value
            elif name == "multiplier":
                multiplier = _decimal(value, f"{key}.multiplier")
            elif name in _RATE_KEYS:
                rates[_RATE_KEYS[name]] = _decimal(value, f"{key}.{name}")
            else:
                allowed = ", ".join(sorted({*_RATE_KEYS.values(), "multiplier", "provider"}))
                raise ConfigError(f"prices: unknown key {name!r} in entry {key!r}; use one of: {allowed}")
        if not rates and multiplier is None:
            raise ConfigError(f"prices: entry {key!r} sets no rate; give 'input'/'output' or 'multiplier'")
        if rates and "input" not in rates:
            raise ConfigError(f"prices: entry {key!r} must give an 'input' rate (USD per million tokens)")
        result.append(_Override(provider, key, rates, multiplier))
    return result


class PriceBook:
    """Prices usage in USD from genai-prices' bundled table (offline), with overrides.

    Overrides are a mapping (or a TOML/JSON file holding one, optionally under ``[models]``) from a
    model glob to rates in USD per million tokens: ``input``, ``cache_read``, ``cache_write``, ``output``,
    ``reasoning``; or to a ``multiplier`` applied to the table price (a 20% negotiated discount is
    ``multiplier = 0.8``); ``provider`` limits the entry to one provider. The first matching entry wins.
    Classes without their own rate fall back: cache read/write to ``input``, reasoning to ``output``.

    Lookups are cached, so pricing a call costs a dictionary hit and a few Decimal products.
    """

    def __init__(self, overrides: Mapping[str, Any] | str | Path | None = None, *, use_table: bool = True) -> None:
        self._overrides = _parse_overrides(overrides)
        self._use_table = use_table
        self._table_source = f"table:genai-prices@{_table_version()}"
        self._cache: dict[tuple[str, str], _Rates | None] = {}
        self._lock = _lifecycle.lock()

    @property
    def table_source(self) -> str:
        """The ``tokenmeter.cost.source`` value of table prices."""
        return self._table_source

    def cost(self, provider: str, model: str, usage: Usage) -> Cost:
        """The cost of ``usage`` tokens of ``model`` served by ``provider`` (``UNPRICED`` if unknown)."""
        key = (provider, model)
        try:
            rates = self._cache[key]
        except KeyError:
            rates = self._resolve(provider, model)
            with self._lock:
                if len(self._cache) > 4096:
                    self._cache.clear()
                self._cache[key] = rates
        if rates is None:
            return UNPRICED
        return rates.cost(usage)

    def input_price_mtok(self, provider: str, model: str) -> Decimal | None:
        """The base input price per million tokens, or ``None`` when unpriced (used for default tiers)."""
        self.cost(provider, model, Usage())
        rates = self._cache.get((provider, model))
        if rates is None or rates.by_class[0] is None:
            return None
        return rates.by_class[0].base

    def _resolve(self, provider: str, model: str) -> _Rates | None:
        for override in self._overrides:
            if override.matches(provider, model):
                return self._from_override(override, provider, model)
        return self._from_table(provider, model) if self._use_table else None

    def _from_override(self, override: _Override, provider: str, model: str) -> _Rates | None:
        if override.multiplier is not None and not override.rates:
            table = self._from_table(provider, model)
            if table is None:
                return None
            m = override.multiplier
            scaled = tuple(
                None if r is None else _Rate(r.base * m, tuple((s, p * m) for s, p in r.tiers)) for r in table.by_class
            )
            return _Rates(scaled, "override")
        r = override.rates
        m = override.multiplier if override.multiplier is not None else Decimal(1)
        inp = r["input"] * m
        out = r.get("output")
        out_rate = None if out is None else _Rate(out * m)
        reasoning = r.get("reasoning")
        return _Rates(
            (
                _Rate(inp),
                _Rate(r.get("cache_read", r["input"]) * m),
                _Rate(r.get("cache_write", r["input"]) * m),
                out_rate,
                out_rate if reasoning is None else _Rate(reasoning * m),
            ),
            "override",
        )

    def _from_table(self, provider: str, model: str) -> _Rates | None:
        from genai_prices import data_snapshot

        snapshot = data_snapshot.get_snapshot()
        table_provider = _TABLE_PROVIDER.get(provider, provider)
        try:
            _, info = snapshot.find_provider_model(model, None, table_provider, None)
        except LookupError:
            try:
                _, info = snapshot.find_provider_model(model, None, None, None)
            except LookupError:
                return None
        prices = info.get_prices(datetime.now(UTC))
        inp = _rate_from_table(getattr(prices, "input_mtok", None))
        if inp is None:
            return None
        out = _rate_from_table(getattr(prices, "output_mtok", None))
        cache_read = _rate_from_table(getattr(prices, "cache_read_mtok", None)) or inp
        cache_write = _rate_from_table(getattr(prices, "cache_write_mtok", None)) or inp
        return _Rates((inp, cache_read, cache_write, out, out), self._table_source)


__all__ = ["Cost", "PriceBook", "TOKEN_CLASSES", "UNPRICED"]
