"""FinOps FOCUS 1.2 Cost and Usage rows from :class:`~tokenmeter.finops.UsageRow` s, as CSV or Parquet.

One row per charge period (UTC day) x provider x model x token class x team / workflow / env (and agent, tier,
customer, context tier, which are carried in ``Tags`` / ``SkuPriceDetails``). All 57 FOCUS 1.2 Cost and Usage
columns are written (null where the concept does not apply to metered LLM tokens; the ``PricingCurrency*``
ones repeat the USD figures, as prices and bills are both in USD), then tokenmeter's ``x_`` columns.
``ConsumedQuantity`` is tokens; ``PricingQuantity`` is millions of tokens (``PricingUnit`` "1000000 Tokens"),
so ``ListUnitPrice`` / ``ContractedUnitPrice`` are dollars per million tokens:

* ``ListCost`` is the price table's published rate (``UsageRow.list_cost_usd``; the charged cost when the
  row has no list figure, e.g. a provider-reported cost), ``ContractedCost`` = ``EffectiveCost`` =
  ``BilledCost`` is what was charged (overrides and multipliers are contracted prices);
* ``x_Estimated`` is true when any of the row's tokens were counted locally rather than reported by the provider
  (``x_EstimatedTokens`` says how many);
* **chargeback** (``chargeback=``, ``--chargeback FILE``): ``x_CostCenter`` (the entity; its dimension in
  ``x_CostCenterDimension``), ``x_ChargebackRate`` (``0.15`` for +15 %) and ``x_ChargebackCost`` = ``BilledCost`` x
  (1 + rate) are added; the FOCUS cost columns stay the raw cost. Without a chargeback the columns are not written;
* **unit charges** (per-request units beside the tokens: web searches, web fetches, file searches, code
  executions, request fees, context cache storage): one row per unit, ``ChargeCategory`` Usage,
  ``ConsumedQuantity`` the count in ``ConsumedUnit`` (``Searches``, ``Fetches``, ``Executions``, ``Requests``,
  ``Token-Seconds``), ``PricingQuantity`` in the block the rate is quoted for (``PricingUnit`` ``1000 Searches``
  ..., ``Token-Hours`` for cache storage: see :mod:`._units`), its own ``SkuId`` (``provider/model/unit``)
  and ``SkuPriceId``; costs, chargeback and unpriced handling as for tokens. Unit rows a reader keeps no count
  for (a ledger written before schema 2, a TSDB) cannot have a consumed quantity: they are left out and their
  cost is counted in :attr:`FocusExport.uncounted_unit_cost` so the caller says so;
* **unpriced tokens**: FOCUS cost columns must not be null, and a $0 cost would be a claim. By default
  (``unpriced="omit"``) rows without a price are left out and counted in :attr:`FocusExport.unpriced_tokens` so
  the caller says so; ``unpriced="flag"`` writes them with zero costs and ``x_Unpriced`` = true for tools that
  read ``x_`` columns.

The FOCUS 1.3 column mapping is in docs/focus.md.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from .._usage import TOKEN_CLASSES
from ._rows import UsageRow
from ._units import measure
from .chargeback import Chargeback

FOCUS_VERSION = "1.2"
COLUMNS: tuple[str, ...] = (
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingAccountType",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "CapacityReservationId",
    "CapacityReservationStatus",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
)
X_COLUMNS: tuple[str, ...] = (
    "x_Estimated",
    "x_EstimatedTokens",
    "x_Unpriced",
    "x_UnpricedTokens",
    "x_CostSource",
    "x_Calls",
    "x_WastedTokens",
    "x_WastedCost",
)
CHARGEBACK_COLUMNS: tuple[str, ...] = ("x_CostCenter", "x_CostCenterDimension", "x_ChargebackRate", "x_ChargebackCost")
DECIMAL_COLUMNS = frozenset(
    {
        "BilledCost",
        "ConsumedQuantity",
        "ContractedCost",
        "ContractedUnitPrice",
        "EffectiveCost",
        "ListCost",
        "ListUnitPrice",
        "PricingQuantity",
        "CommitmentDiscountQuantity",
        "PricingCurrencyContractedUnitPrice",
        "PricingCurrencyEffectiveCost",
        "PricingCurrencyListUnitPrice",
        "x_WastedCost",
        "x_ChargebackRate",
        "x_ChargebackCost",
    }
)
DATETIME_COLUMNS = frozenset({"BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"})
_MILLION = Decimal(1_000_000)
_PRICE_PLACES = Decimal("1e-12")
_QUANTITY_PLACES = Decimal("1e-12")
_PROVIDERS = {  # provider id on metrics -> FOCUS ProviderName / ServiceName
    "openai": ("OpenAI", "OpenAI API"),
    "anthropic": ("Anthropic", "Anthropic API"),
    "aws.bedrock": ("Amazon Web Services", "Amazon Bedrock"),
    "bedrock": ("Amazon Web Services", "Amazon Bedrock"),
    "gcp.gemini": ("Google", "Gemini API"),
    "gemini": ("Google", "Gemini API"),
    "gcp.vertex_ai": ("Google Cloud", "Vertex AI"),
    "azure.ai.openai": ("Microsoft", "Azure OpenAI"),
}
_METERS = {
    "input": "Input Tokens",
    "output": "Output Tokens",
    "cache_read": "Cached Input Tokens",
    "cache_write": "Cache Write Tokens",
    "reasoning": "Reasoning Tokens",
}

Unpriced = Literal["omit", "flag"]


@dataclass
class FocusExport:
    """The FOCUS rows of one period and what was left out of them."""

    period_start: datetime
    period_end: datetime
    rows: list[dict[str, Any]] = field(default_factory=list)
    unpriced_tokens: int = 0  # tokens without a price (omitted, or flagged with x_Unpriced)
    unpriced_rows: int = 0
    chargeback: Chargeback | None = None
    unpriced_units: dict[str, int] = field(default_factory=dict)  # unit -> count without a rate
    uncounted_unit_cost: Decimal = Decimal(0)  # unit charges with no count in the source: left out

    @property
    def columns(self) -> tuple[str, ...]:
        """Column order of the files written (the chargeback ``x_`` columns only with a chargeback)."""
        return COLUMNS + X_COLUMNS + (CHARGEBACK_COLUMNS if self.chargeback is not None else ())

    def to_csv(self, out: Any) -> None:
        """Write the rows as CSV (nulls are empty fields, decimals in plain notation)."""
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([_csv_cell(row.get(c), c in DECIMAL_COLUMNS) for c in self.columns])

    def to_parquet(self, path: str | Path) -> None:
        """Write the rows as Parquet (needs pyarrow: ``pip install 'tokenmeter[focus]'``)."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError("Parquet output needs pyarrow: pip install 'tokenmeter[focus]'") from None
        arrays, fields = [], []
        for c in self.columns:
            values = [row.get(c) for row in self.rows]
            if c in DECIMAL_COLUMNS:
                typ: Any = pa.float64()
                values = [None if v is None else float(v) for v in values]
            elif c in DATETIME_COLUMNS:
                typ = pa.timestamp("s", tz="UTC")
            elif c in ("x_Estimated", "x_Unpriced"):
                typ = pa.bool_()
            elif c in ("x_EstimatedTokens", "x_UnpricedTokens", "x_Calls", "x_WastedTokens"):
                typ = pa.int64()
            else:
                typ = pa.string()
            arrays.append(pa.array(values, type=typ))
            fields.append(pa.field(c, typ))
        pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), str(path))


def _csv_cell(value: Any, decimal: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if decimal:  # always with a point, so CSV readers type the column as decimal even when a value is whole
        text = f"{Decimal(value).normalize():f}"
        return text if "." in text else f"{text}.0"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def month_bounds(period: str) -> tuple[datetime, datetime]:
    """``(start, end)`` of a ``YYYY-MM`` period in UTC; ``ValueError`` when it is not one."""
    try:
        year, month = (int(p) for p in period.split("-"))
        start = datetime(year, month, 1, tzinfo=UTC)
    except ValueError:
        raise ValueError(f"period {period!r} is not a month like 2026-11") from None
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


_Key = tuple[date, str, str, str, str, str, str, str, str, str, str, bool]


def _key(row: UsageRow) -> _Key:
    day = row.start.astimezone(UTC).date()
    return (
        day,
        row.provider,
        row.model,
        row.token_class,
        row.team,
        row.workflow,
        row.env,
        row.agent,
        row.tier,
        row.customer,
        row.context_tier,
        row.cost_usd is not None,
    )


def _aggregate(rows: Iterable[UsageRow]) -> dict[_Key, list[Any]]:
    cells: dict[_Key, list[Any]] = {}
    for r in rows:
        cell = cells.get(k := _key(r))
        if cell is None:
            cell = cells[k] = [0, Decimal(0), Decimal(0), 0, 0, 0, 0, Decimal(0), set(), 0]
        cell[0] += r.tokens
        if r.cost_usd is not None:
            cell[1] += r.cost_usd
            cell[2] += r.list_cost_usd if r.list_cost_usd is not None else r.cost_usd
        cell[3] += r.estimated_tokens
        cell[4] += r.unpriced_tokens if r.cost_usd is not None else r.tokens
        cell[5] += r.calls
        cell[6] += r.wasted_tokens
        cell[7] += r.wasted_cost_usd
        cell[8].add(r.cost_source)
        cell[9] += r.units
    return cells


def _unit(cost: Decimal, quantity: Decimal) -> Decimal:
    return (cost / quantity).quantize(_PRICE_PLACES).normalize() if quantity else Decimal(0)


def focus_rows(
    rows: Iterable[UsageRow],
    *,
    period_start: datetime,
    period_end: datetime,
    billing_account: str = "tokenmeter",
    unpriced: Unpriced = "omit",
    chargeback: Chargeback | None = None,
) -> FocusExport:
    """FOCUS 1.2 rows for the usage of ``[period_start, period_end)`` (a billing period: one calendar month);
    with ``chargeback``, each row's cost center, rate and charge in ``x_`` columns beside the raw cost."""
    export = FocusExport(period_start, period_end, chargeback=chargeback)
    cells = _aggregate(_charged(rows, export))
    for key in sorted(cells):
        day, provider, model, klass, team, workflow, env, agent, tier, customer, context_tier, priced = key
        tokens, cost, list_cost, estimated, unpriced_n, calls, wasted, wasted_cost, sources, units = cells[key]
        unit = klass not in TOKEN_CLASSES
        if not priced:
            export.unpriced_rows += 1
            if unit:
                export.unpriced_units[klass] = export.unpriced_units.get(klass, 0) + units
            else:
                export.unpriced_tokens += tokens
            if unpriced == "omit":
                continue
        elif unpriced_n:
            export.unpriced_tokens += unpriced_n
        provider_name, service = _PROVIDERS.get(provider, (provider, provider))
        charge_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        sku = f"{provider}/{model}/{klass}"
        tags = {"workflow": workflow, "agent": agent, "tier": tier, "env": env}
        if customer:
            tags["customer"] = customer
        if unit:
            m = measure(klass)
            consumed, consumed_unit, meter, pricing_unit = Decimal(units), m.consumed, m.meter, m.pricing
            quantity = (consumed / m.per).quantize(_QUANTITY_PLACES).normalize()
            details = {"x_Unit": klass, "x_Model": model, "x_ConsumedPerPricingUnit": str(m.per)}
        else:
            consumed, consumed_unit, meter = Decimal(tokens), "Tokens", _METERS.get(klass, klass)
            quantity, pricing_unit = Decimal(tokens) / _MILLION, "1000000 Tokens"
            details = {"x_TokenClass": klass, "x_Model": model, "x_ContextTier": context_tier or "default"}
        contracted_unit = _unit(cost, quantity)
        list_unit = _unit(list_cost, quantity)
        export.rows.append(
            {
                "BilledCost": cost,
                "BillingAccountId": billing_account,
                "BillingAccountName": billing_account,
                "BillingCurrency": "USD",
                "BillingPeriodStart": period_start,
                "BillingPeriodEnd": period_end,
                "ChargeCategory": "Usage",
                "ChargeFrequency": "Usage-Based",
                "ChargeDescription": f"{meter} of {model} ({team}/{workflow}/{env})",
                "ChargePeriodStart": charge_start,
                "ChargePeriodEnd": charge_start + timedelta(days=1),
                "ConsumedQuantity": consumed,
                "ConsumedUnit": consumed_unit,
                "ContractedCost": cost,
                "ContractedUnitPrice": contracted_unit,
                "EffectiveCost": cost,
                "InvoiceId": f"{provider}-{period_start:%Y-%m}",
                "InvoiceIssuerName": provider_name,
                "ListCost": list_cost,
                "ListUnitPrice": list_unit,
                "PricingCategory": "Standard",
                "PricingCurrency": "USD",
                "PricingCurrencyContractedUnitPrice": contracted_unit,
                "PricingCurrencyEffectiveCost": cost,
                "PricingCurrencyListUnitPrice": list_unit,
                "PricingQuantity": quantity,
                "PricingUnit": pricing_unit,
                "ProviderName": provider_name,
                "PublisherName": provider_name,
                "ServiceCategory": "AI and Machine Learning",
                "ServiceName": service,
                "ServiceSubcategory": "Generative AI",
                "SkuId": sku,
                "SkuMeter": meter,
                "SkuPriceId": f"{sku}/{context_tier or 'default'}",
                "SkuPriceDetails": json.dumps(details, separators=(",", ":")),
                "SubAccountId": team,
                "SubAccountName": team,
                "Tags": json.dumps(tags, separators=(",", ":")),
                "x_Estimated": estimated > 0,
                "x_EstimatedTokens": estimated,
                "x_Unpriced": not priced,
                "x_UnpricedTokens": unpriced_n,
                "x_CostSource": ",".join(sorted(sources)),
                "x_Calls": calls,
                "x_WastedTokens": wasted,
                "x_WastedCost": wasted_cost,
            }
        )
        if chargeback is not None:
            center = chargeback.cost_center
            entity = {"customer": customer, "team": team, "workflow": workflow, "agent": agent, "env": env}[center]
            rate = chargeback.rate(entity)
            export.rows[-1].update(
                x_CostCenter=entity,
                x_CostCenterDimension=center,
                x_ChargebackRate=rate,
                x_ChargebackCost=cost * (1 + rate) if priced else None,
            )
    return export


def _charged(rows: Iterable[UsageRow], export: FocusExport) -> Iterable[UsageRow]:
    """The rows of the period with tokens or counted units; the cost of uncounted unit rows goes to ``export``."""
    start, end = export.period_start, export.period_end
    for r in rows:
        if not start <= r.start < end:
            continue
        if r.tokens or r.units:
            yield r
        elif r.cost_usd is not None and r.model and r.token_class not in TOKEN_CLASSES:
            export.uncounted_unit_cost += r.cost_usd  # no consumed quantity to give it: left out, said so
