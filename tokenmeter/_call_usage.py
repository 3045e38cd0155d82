"""What a call's usage and cost add to its span: provider-reported cost, served tier, details, sub-inferences."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ._prices import Cost
from ._usage import Usage


def _provider_cost(usd: Decimal, table: Cost, usage: Usage) -> Cost:
    """A provider-reported cost, split over the token classes and units like the table's (or like the tokens)."""
    names = tuple(name for name, _ in table.units)
    if table.by_class is not None and table.usd:
        weights: tuple[Decimal, ...] = (*table.by_class, *(c for _, c in table.units))
        total = table.usd
    else:
        weights = tuple(Decimal(n) for _, n in usage.by_class())
        names, total = (), Decimal(usage.total)
    if not total:
        return Cost(usd, "provider", (usd, Decimal(0), Decimal(0), Decimal(0), Decimal(0)), table.usd)
    parts = [usd * w / total for w in weights]
    parts[0] += usd - sum(parts)  # rounding remainder, so the parts add up to the reported cost exactly
    units = tuple(zip(names, parts[5:], strict=True))
    return Cost(usd, "provider", tuple(parts[:5]), table.usd, units, table.unpriced_units)


_OPENAI_FAMILY = frozenset({"openai", "azure.ai.openai"})


def extra_usage_attributes(attrs: dict[str, Any], usage: Usage, provider: str) -> None:
    """Span attributes of what a response said beyond the five classes (tier, details, sub-inferences)."""
    if usage.service_tier is not None:
        key = "openai.response.service_tier" if provider in _OPENAI_FAMILY else "tokenmeter.response.service_tier"
        attrs[key] = usage.service_tier
    if usage.processing is not None:
        attrs["tokenmeter.request.processing"] = usage.processing
    for name, n in usage.details:
        attrs[f"tokenmeter.usage.{name}_tokens"] = n
    if usage.parts:
        attrs["tokenmeter.usage.sub_inference.count"] = len(usage.parts)
        models = sorted({model for model, _ in usage.parts if model})
        if models:
            attrs["tokenmeter.usage.sub_inference.models"] = models
        attrs["tokenmeter.usage.sub_inference.input_tokens"] = sum(p.input_total for _, p in usage.parts)
        attrs["tokenmeter.usage.sub_inference.output_tokens"] = sum(p.output_total for _, p in usage.parts)
    for name, n in usage.model_reported:
        attrs[f"tokenmeter.usage.model_reported.{name}_tokens"] = n
    for name, n in usage.units:
        attrs[f"tokenmeter.usage.{name}"] = n
    if usage.cost_usd is not None:
        attrs["tokenmeter.cost.provider_usd"] = float(usage.cost_usd)


CACHE_WRITE = "gen_ai.usage.cache_write.input_tokens"
"""The conventions' name of cache-write tokens (it replaced ``gen_ai.usage.cache_creation.input_tokens``)."""
CACHE_CREATION = "gen_ai.usage.cache_creation.input_tokens"
"""The previous name, still emitted for one release with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai/dup``."""


def cache_write_keys(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The span attributes that carry cache-write tokens, per ``OTEL_SEMCONV_STABILITY_OPT_IN``.

    The conventions' own switch: ``gen_ai/dup`` emits the new and the old name (the migration window
    of one release); anything else emits the new name only.
    """
    opted = {v.strip() for v in environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")}
    return (CACHE_WRITE, CACHE_CREATION) if "gen_ai/dup" in opted else (CACHE_WRITE,)


def unit_cost_attributes(attrs: dict[str, Any], cost: Cost) -> None:
    """``tokenmeter.cost.unit.<unit>_usd`` of each priced unit; ``tokenmeter.cost.unpriced_units`` of the rest."""
    for name, usd in cost.units:
        attrs[f"tokenmeter.cost.unit.{name}_usd"] = float(usd)
    if cost.unpriced_units:
        attrs["tokenmeter.cost.unpriced_units"] = list(cost.unpriced_units)


def semconv_cost_attributes(attrs: dict[str, Any], cost: Cost) -> None:
    """The proposed ``gen_ai.usage.cost.*`` attributes (semantic-conventions-genai PR 443), opt-in."""
    if cost.usd is None:
        return
    attrs["gen_ai.usage.cost.amount"] = float(cost.usd)
    attrs["gen_ai.usage.cost.currency"] = "USD"
    attrs["gen_ai.usage.cost.source"] = "provider" if cost.source == "provider" else "local"


def scope_usage_attributes(attrs: dict[str, Any], tokens: list[int], cache_write_keys: tuple[str, ...]) -> None:
    """The conventions' ``gen_ai.usage.*`` totals of an agent / workflow / step span's subtree."""
    inp, cache_read, cache_write, output, reasoning = tokens
    attrs["gen_ai.usage.input_tokens"] = inp + cache_read + cache_write
    attrs["gen_ai.usage.output_tokens"] = output + reasoning
    attrs["gen_ai.usage.cache_read.input_tokens"] = cache_read
    for key in cache_write_keys:
        attrs[key] = cache_write
    attrs["gen_ai.usage.reasoning.output_tokens"] = reasoning
