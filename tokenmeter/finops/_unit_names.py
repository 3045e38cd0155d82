"""How each per-request unit is named and measured in reports and FOCUS rows.

A unit row's ``token_class`` is the unit's own name (``web_search``...; see ``tokenmeter._usage.UNITS``).
Its FOCUS ``ConsumedUnit`` is what was counted, its ``PricingUnit`` the block the provider quotes its rate
for, both in the FOCUS 1.2 UnitFormat (``<plural units>``, ``<quantity> <plural units>``,
``<singular unit>-<plural time units>``), the forms the FinOps Foundation's focus-validator accepts.
Cache storage is counted in token-seconds and quoted per 1,000,000 token-hours; UnitFormat has no
``<quantity> <unit>-<time>`` form, so its ``PricingUnit`` is ``Token-Hours`` (the same unit, one at a time)
and its unit price is per token-hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class UnitMeasure:
    """One unit's names: what is counted, the meter, the priced block, and how many counted units fill it."""

    consumed: str  # FOCUS ConsumedUnit: what ``UsageRow.units`` counts
    meter: str  # FOCUS SkuMeter and the report's label
    pricing: str  # FOCUS PricingUnit
    per: Decimal  # counted units per PricingUnit (PricingQuantity = count / per)


_THOUSAND = Decimal(1000)
MEASURES: dict[str, UnitMeasure] = {
    "web_search": UnitMeasure("Searches", "Web Searches", "1000 Searches", _THOUSAND),
    "web_fetch": UnitMeasure("Fetches", "Web Fetches", "1000 Fetches", _THOUSAND),
    "file_search": UnitMeasure("Searches", "File Searches", "1000 Searches", _THOUSAND),
    "code_execution": UnitMeasure("Executions", "Code Executions", "1000 Executions", _THOUSAND),
    "request": UnitMeasure("Requests", "Request Fees", "1000 Requests", _THOUSAND),
    "cache_storage": UnitMeasure("Token-Seconds", "Context Cache Storage", "Token-Hours", Decimal(3600)),
}


def measure(unit: str) -> UnitMeasure:
    """The names of ``unit`` (a unit this table does not know is counted and priced one ``Units`` at a time)."""
    found = MEASURES.get(unit)
    return found if found is not None else UnitMeasure("Units", unit, "Units", Decimal(1))
