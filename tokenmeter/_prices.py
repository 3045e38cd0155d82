"""Prices: usage x price table -> Cost, offline, at the call's time and served tier, with overrides."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _lifecycle
from ._price_table import Rates, TableModel, data_date, find_model, table_version
from ._unit_rates import published_rate
from ._usage import TOKEN_CLASSES, UNITS, Usage, class_counts

if TYPE_CHECKING:
    from ._price_overrides import Override

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
    "openrouter": "openrouter",
    "together": "together",
    "fireworks": "fireworks",
}
# Service tiers that mean "the standard rate" (no price variant), as responses name them. OpenAI's
# "scale" tier is paid per prepaid capacity unit: its tokens are metered at the default rates.
_STANDARD_TIERS = frozenset({"default", "standard", "auto", "on_demand", "scale"})
# Documented tier prices for models the table has no variant for: OpenAI's Flex processing is billed at
# Batch API rates (50%), Gemini's Flex inference at 50% of standard (ai.google.dev/gemini-api/docs/optimization).
# Any other tier without a table variant (Gemini's priority: "75% to 100% more", per model) is unpriced
# unless an override with ``service_tier`` prices it.
_TIER_MULTIPLIERS: dict[tuple[str, str], Decimal] = {
    ("openai", "flex"): Decimal("0.5"),
    ("azure", "flex"): Decimal("0.5"),
    ("google", "flex"): Decimal("0.5"),
}
# The batch APIs' documented discount for models the table has no batch variant for: OpenAI's Batch API,
# Anthropic's Message Batches and Gemini's Batch API are each 50% of the standard rates. Any other
# provider's batch-served usage without a table variant is unpriced.
_PLAIN: tuple[None, None] = (None, None)  # the price context of a standard-tier, non-batch call

_BATCH_MULTIPLIERS: dict[str, Decimal] = {
    "openai": Decimal("0.5"),
    "anthropic": Decimal("0.5"),
    "google": Decimal("0.5"),
}


@dataclass(frozen=True, slots=True)
class Cost:
    """The price of a usage.

    ``usd`` is ``None`` when the model has no known price (never a silent $0). ``source`` says where the
    price came from: ``table:genai-prices@<version>``, ``override``, ``provider`` or ``unpriced``.
    ``by_class`` holds the cost of each token class in the order of ``TOKEN_CLASSES`` (``None`` if unpriced).
    ``table_usd`` is the table's price beside a provider-reported cost (``source == "provider"``), so a
    drift between the two stays visible.

    ``units`` holds the cost of each priced per-request unit (``(unit, usd)``: ``web_search``,
    ``cache_storage``, ``request``...), included in ``usd`` beside the token classes; ``unpriced_units``
    names the units the call used that have no known rate (counted, never priced at $0, not in ``usd``).
    """

    usd: Decimal | None
    source: str
    by_class: tuple[Decimal, ...] | None = None
    table_usd: Decimal | None = None
    units: tuple[tuple[str, Decimal], ...] = ()
    unpriced_units: tuple[str, ...] = ()

    @property
    def priced(self) -> bool:
        """Whether a price was found."""
        return self.usd is not None


UNPRICED = Cost(None, "unpriced", None)


@dataclass(frozen=True, slots=True)
class _Resolved:
    """What prices one provider's model: conditional overrides first, then the table (or nothing)."""

    overrides: tuple[Override, ...]
    table: TableModel | None


def bedrock_model_id(model: str) -> str:
    """The model id inside a Bedrock ARN (``arn:aws:bedrock:<region>:<account>:foundation-model/<id>``,
    ``.../inference-profile/us.anthropic...``); other ids as given. Region prefixes (``us.``, ``eu.``,
    ``global.``) are kept: the table prices cross-region and global profiles differently.
    An application inference profile or a provisioned model ARN names no model: it stays unpriced
    unless an override prices it.
    """
    if model.startswith("arn:"):
        resource = model.split(":", 5)[-1]
        kind, _, ident = resource.partition("/")
        if kind in ("foundation-model", "inference-profile") and ident:
            return ident
    return model


class PriceBook:
    """Prices usage in USD from genai-prices' bundled table (offline), with overrides.

    A call is priced at its own time (``when``, epoch seconds; now by default) and at what served it
    (``usage.service_tier``: OpenAI ``flex`` / ``priority``, Gemini ``flex`` / ``priority``;
    ``usage.processing``: ``batch``), through genai-prices' price variants and dated prices. Detail
    counts (``usage.details``: 1-hour cache writes, audio, image tokens) pay their own rates where the
    table has them; sub-inferences of other models (``usage.parts``) pay their own model's rates.
    OpenAI's ``scale`` tier has no table rate (its capacity is prepaid per unit): its tokens are
    priced at the default rates unless an override with ``service_tier = "scale"`` says otherwise.

    Overrides are a mapping (or a TOML/JSON file holding one, optionally under ``[models]``) from a
    model glob to rates in USD per million tokens (``input``, ``cache_read``, ``cache_write``, ``output``,
    ``reasoning`` and the detail rates), or to a ``multiplier`` of the table price; ``provider``,
    ``service_tier``, ``processing`` and ``start_date`` narrow an entry. The first entry that applies
    wins. See ``tokenmeter._price_overrides`` for the format.

    Rates are cached per (model, price context, price period), so pricing a call costs a couple of
    dictionary hits and a few Decimal products, and a price that changes on a date applies from then on.
    """

    def __init__(self, overrides: Mapping[str, Any] | str | Path | None = None, *, use_table: bool = True) -> None:
        self._overrides: list[Override] = []
        if overrides is not None:  # the override parser loads only when there are overrides (set-up cost)
            from ._price_overrides import parse_overrides

            self._overrides = parse_overrides(overrides)
        self._use_table = use_table
        self._table_version = table_version()  # package metadata; the table loads at first use or in the warm-up
        self._table_source = f"table:genai-prices@{self._table_version}"
        self._cache: dict[tuple[str, str], _Resolved] = {}
        self._lock = _lifecycle.lock()

    @property
    def table_source(self) -> str:
        """The ``tokenmeter.cost.source`` value of table prices."""
        return self._table_source

    @property
    def table_version(self) -> str:
        """The genai-prices version whose bundled table prices calls."""
        return self._table_version

    @property
    def data_date(self) -> str:
        """The newest price date the bundled table knows (ISO), a hint of how current it is (loads the table)."""
        return data_date()

    def cost(self, provider: str, model: str, usage: Usage, when: float | None = None) -> Cost:
        """The cost of ``usage`` of ``model`` served by ``provider`` at ``when`` (``UNPRICED`` if unknown)."""
        if when is None:
            when = time.time()
        if usage.parts:
            return self._cost_with_parts(provider, model, usage, when)
        rates = self._rates(provider, model, usage, when)
        if rates is None:
            return UNPRICED
        priced = rates.cost(usage)
        if priced is None:
            return UNPRICED
        if not usage.units and rates.request_fee is None:
            return Cost(priced[0], rates.source, tuple(priced[1]))
        units, unpriced = self._unit_costs(provider, model, usage, rates)
        return Cost(
            priced[0] + sum((c for _, c in units), _ZERO), rates.source, tuple(priced[1]), None, units, unpriced
        )

    def _unit_costs(
        self, provider: str, model: str, usage: Usage, rates: Rates
    ) -> tuple[tuple[tuple[str, Decimal], ...], tuple[str, ...]]:
        """``(unit, usd)`` of each priced unit of ``usage`` (and the call's request fee), and the unpriced ones.

        A unit's price: the rates' own (the table's, scaled by a multiplier override), else the rate the
        provider publishes (``tokenmeter._unit_rates``), else none.
        """
        costs: list[tuple[str, Decimal]] = []
        unpriced: list[str] = []
        if rates.request_fee is not None:
            costs.append(("request", rates.request_fee))
        provider_id = _TABLE_PROVIDER.get(provider, provider)
        for name, n in usage.units:
            price, per = rates.unit_price(name), UNITS[name]
            if price is None:
                published = published_rate(provider_id, name, model)
                if published is not None:
                    price = published.usd
            if price is None:
                unpriced.append(name)
            else:
                costs.append((name, price * n / per))
        return tuple(costs), tuple(unpriced)

    def input_price_mtok(self, provider: str, model: str) -> Decimal | None:
        """The base input price per million tokens now, or ``None`` when unpriced (used for default tiers)."""
        rates = self._rates(provider, model, Usage(), time.time())
        if rates is None or rates.by_class[0] is None:
            return None
        return rates.by_class[0].base

    def _rates(self, provider: str, model: str, usage: Usage, when: float) -> Rates | None:
        key = (provider, model)
        try:
            resolved = self._cache[key]
        except KeyError:
            resolved = self._resolve(provider, model)
            with self._lock:
                if len(self._cache) > 4096:
                    self._cache.clear()
                self._cache[key] = resolved
        for override in resolved.overrides:
            if override.applies(usage, when):
                if override.rates is not None:
                    rates: Rates | None = override.rates
                else:
                    base = self._table_rates(resolved.table, usage, when)
                    rates = None if base is None else base.scaled(override.multiplier or Decimal(1), "override")
                return rates.with_units(override.units) if rates is not None and override.units else rates
        table = resolved.table
        tier = usage.service_tier
        if table is not None and usage.processing is None and (tier is None or tier in _STANDARD_TIERS):
            return table.rates(_PLAIN, when)  # what _table_rates does for a standard, non-batch call
        return self._table_rates(table, usage, when)

    @staticmethod
    def _table_rates(table: TableModel | None, usage: Usage, when: float) -> Rates | None:
        if table is None:
            return None
        tier = usage.service_tier
        if tier is not None and tier in _STANDARD_TIERS:
            tier = None
        processing = usage.processing
        multiplier = Decimal(1)
        if processing is not None and not table.has_variant("processing", processing, when):
            found = _BATCH_MULTIPLIERS.get(table.provider_id) if processing == "batch" else None
            if found is None:
                return None
            processing, multiplier = None, found
        if tier is not None and not table.has_variant("service_tier", tier, when):
            found = _TIER_MULTIPLIERS.get((table.provider_id, tier))
            if found is None:
                return None
            tier, multiplier = None, multiplier * found
        rates = table.rates((tier, processing), when)
        if rates is None or multiplier == 1:
            return rates
        return rates.scaled(multiplier, f"{rates.source}:{usage.processing or usage.service_tier}")

    def _resolve(self, provider: str, model: str) -> _Resolved:
        overrides = tuple(o for o in self._overrides if o.matches_model(provider, model))
        table = None
        if self._use_table:
            table_model = bedrock_model_id(model) if provider == "aws.bedrock" else model
            table = find_model(_TABLE_PROVIDER.get(provider, provider), table_model, self._table_source)
        return _Resolved(overrides, table)

    def _cost_with_parts(self, provider: str, model: str, usage: Usage, when: float) -> Cost:
        """Sub-inferences at their own model's rates, the rest of the usage at the call's model."""
        own = list(class_counts(usage))
        own_details = dict(usage.details)
        parts: list[Decimal] = [_ZERO] * len(TOKEN_CLASSES)
        sources: set[str] = set()
        for part_model, part in usage.parts:
            for i, n in enumerate(class_counts(part)):
                own[i] -= n
            for name, n in part.details:
                own_details[name] = own_details.get(name, 0) - n
            cost = self.cost(provider, part_model or model, part, when)
            if cost.by_class is None:
                return UNPRICED
            sources.add(cost.source)
            parts = [a + b for a, b in zip(parts, cost.by_class, strict=True)]
        if any(n < 0 for n in own) or any(n < 0 for n in own_details.values()):
            return UNPRICED  # parts larger than the whole: inconsistent report, never a guess
        details = tuple(sorted((k, n) for k, n in own_details.items() if n))
        rest = Usage(
            own[0],
            own[1],
            own[2],
            own[3],
            own[4],
            details=details,
            service_tier=usage.service_tier,
            processing=usage.processing,
            units=usage.units,
        )
        cost = self.cost(provider, model, rest, when)
        if cost.by_class is None:
            return UNPRICED
        sources.add(cost.source)
        parts = [a + b for a, b in zip(parts, cost.by_class, strict=True)]
        source = cost.source if len(sources) == 1 else "mixed:" + "+".join(sorted(sources))
        units_usd = sum((c for _, c in cost.units), _ZERO)
        return Cost(sum(parts, _ZERO) + units_usd, source, tuple(parts), None, cost.units, cost.unpriced_units)


__all__ = ["Cost", "PriceBook", "TOKEN_CLASSES", "UNPRICED"]
