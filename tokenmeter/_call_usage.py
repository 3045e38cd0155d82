"""What a call's usage and cost add to its span: provider-reported cost, served tier, details, sub-inferences."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ._prices import Cost
from ._usage import Usage


def _provider_cost(usd: Decimal, table: Cost, usage: Usage) -> Cost:
    """A provider-reported cost, split over the token classes like the table's (or like the tokens)."""
    if table.by_class is not None and table.usd:
        weights: tuple[Decimal, ...] = table.by_class
        total = table.usd
    else:
        weights = tuple(Decimal(n) for _, n in usage.by_class())
        total = Decimal(usage.total)
    if not total:
        return Cost(usd, "provider", (usd, Decimal(0), Decimal(0), Decimal(0), Decimal(0)), table.usd)
    parts = [usd * w / total for w in weights]
    parts[0] += usd - sum(parts)  # rounding remainder, so the parts add up to the reported cost exactly
    return Cost(usd, "provider", tuple(parts), table.usd)


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
    if usage.cost_usd is not None:
        attrs["tokenmeter.cost.provider_usd"] = float(usage.cost_usd)
