"""Per-request unit charges in the FinOps outputs: how each unit is named and measured, and its report figures.

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

from ._rows import UsageRow

_ZERO = Decimal(0)


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


@dataclass
class UnitFigures:
    """Per-request unit charges of one unit (web searches, cache storage token-seconds, request fees).

    ``count`` units were charged ``cost`` (``list_cost`` at the published rate); ``unpriced`` of them have
    no known rate (counted, never priced at $0); ``uncounted_cost`` is charged on rows whose reader keeps
    no count (a ledger written before schema 2, a TSDB), so ``cost / count`` is a rate only without it.
    """

    name: str
    count: int = 0
    cost: Decimal = _ZERO
    list_cost: Decimal = _ZERO
    unpriced: int = 0
    uncounted_cost: Decimal = _ZERO
    charge: Decimal | None = None  # with a chargeback: cost x (1 + rate); else None

    def add(self, row: UsageRow, charge: Decimal | None = None) -> None:
        """Add one unit row."""
        self.count += row.units
        if row.cost_usd is None:
            self.unpriced += row.units
        else:
            self.cost += row.cost_usd
            if not row.units:
                self.uncounted_cost += row.cost_usd
        if row.list_cost_usd is not None:
            self.list_cost += row.list_cost_usd
        if charge is not None:
            self.charge = charge if self.charge is None else self.charge + charge
