"""FOCUS 1.2 export: row content, and zero failed rules from the FinOps Foundation's validator on real exports."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tokenmeter.finops import UsageRow
from tokenmeter.finops.focus import COLUMNS, focus_rows, month_bounds
from tokenmeter.testing.finops import synthetic_usage

from . import focus_validator

START, END = month_bounds("2026-11")
MANDATORY = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
)


def _rows() -> list[UsageRow]:
    rows = synthetic_usage(
        start=START - timedelta(days=3), days=33, workflows=("triage", "refund"), envs=("prod", "staging")
    )
    day = START + timedelta(days=4)
    base = rows[0]
    return [
        *rows,
        # a contracted price below list (an override), tokens partly estimated, a customer
        replace(
            base,
            start=day,
            end=day + timedelta(days=1),
            workflow="quotes",
            customer="acme",
            tokens=2_000_000,
            cost_usd=Decimal("4.00"),
            list_cost_usd=Decimal("5.00"),
            estimated_tokens=1_500,
            cost_source="override",
        ),
        # unpriced tokens (a self-hosted model)
        replace(
            base,
            start=day,
            end=day + timedelta(days=1),
            model="llama-3-8b",
            tier="small",
            tokens=9_000,
            cost_usd=None,
            list_cost_usd=None,
            unpriced_tokens=9_000,
            cost_source="unpriced",
        ),
    ]


def test_rows_carry_the_issue_s_columns() -> None:
    export = focus_rows(_rows(), period_start=START, period_end=END, billing_account="acme-agents")
    assert all(set(COLUMNS) <= set(r) | set(COLUMNS) for r in export.rows)
    for col in MANDATORY:
        assert col in COLUMNS
    quotes = next(r for r in export.rows if json.loads(r["Tags"]).get("workflow") == "quotes")
    assert quotes["ServiceCategory"] == "AI and Machine Learning" and quotes["ServiceSubcategory"] == "Generative AI"
    assert quotes["ChargeCategory"] == "Usage" and quotes["ChargeFrequency"] == "Usage-Based"
    assert quotes["ConsumedQuantity"] == 2_000_000 and quotes["ConsumedUnit"] == "Tokens"
    assert quotes["PricingUnit"] == "1000000 Tokens" and quotes["PricingQuantity"] == 2
    assert quotes["ListCost"] == Decimal("5.00") and quotes["ListUnitPrice"] == Decimal("2.5")
    assert quotes["ContractedCost"] == quotes["EffectiveCost"] == quotes["BilledCost"] == Decimal("4.00")
    assert quotes["ContractedUnitPrice"] == Decimal(2)
    assert quotes["SubAccountId"] == quotes["SubAccountName"] == "team-0"
    assert json.loads(quotes["Tags"]) == {
        "workflow": "quotes",
        "agent": "agent",
        "tier": "standard",
        "env": "prod",
        "customer": "acme",
    }
    assert json.loads(quotes["SkuPriceDetails"]) == {
        "x_TokenClass": "input",
        "x_Model": "gpt-4o",
        "x_ContextTier": "default",
    }
    assert quotes["x_Estimated"] is True and quotes["x_EstimatedTokens"] == 1_500
    assert quotes["ChargePeriodStart"] == START + timedelta(days=4)
    assert quotes["ChargePeriodEnd"] == START + timedelta(days=5)
    assert quotes["BillingPeriodStart"] == START and quotes["BillingPeriodEnd"] == END
    assert quotes["BillingAccountId"] == "acme-agents"
    # only November's days, one row per day x model x class x team/workflow/env
    assert {r["ChargePeriodStart"].month for r in export.rows} == {11}
    assert len(export.rows) == 30 * 2 * 2 * 2 + 1


def test_unpriced_tokens_are_never_a_silent_zero() -> None:
    omitted = focus_rows(_rows(), period_start=START, period_end=END)
    assert omitted.unpriced_tokens == 9_000 and not any(r["x_Unpriced"] for r in omitted.rows)
    flagged = focus_rows(_rows(), period_start=START, period_end=END, unpriced="flag")
    (row,) = [r for r in flagged.rows if r["x_Unpriced"]]
    assert row["ConsumedQuantity"] == 9_000 and row["x_UnpricedTokens"] == 9_000 and row["BilledCost"] == 0


def test_totals_equal_the_usage() -> None:
    rows = _rows()
    export = focus_rows(rows, period_start=START, period_end=END)
    in_month = [r for r in rows if START <= r.start < END and r.cost_usd is not None]
    assert sum(r["BilledCost"] for r in export.rows) == sum(r.cost_usd for r in in_month if r.cost_usd)
    assert sum(r["ConsumedQuantity"] for r in export.rows) == sum(r.tokens for r in in_month)
    buf = io.StringIO()
    export.to_csv(buf)
    parsed = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert sum(Decimal(r["BilledCost"]) for r in parsed) == sum(r["BilledCost"] for r in export.rows)


needs_validator = pytest.mark.skipif(
    not focus_validator.available() and os.environ.get("CI") != "true",
    reason="focus-validator venv missing: run `bash scripts/focus-venv.sh` (make test does)",
)


def assert_valid(path: Path, workdir: Path) -> None:
    """The validator ran its rules on ``path`` and none failed."""
    report = focus_validator.validate(path, workdir)
    assert not report.failed, f"{len(report.failed)} FOCUS rules failed: {report.failed}\n{report.output[-3000:]}"
    assert report.passed > 150, report  # the rules ran (not all skipped)


@needs_validator
def test_validator_passes_a_month_as_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    export = focus_rows(_rows(), period_start=START, period_end=END, unpriced="flag")
    path = tmp_path / "month-focus.parquet"
    export.to_parquet(path)
    assert_valid(path, tmp_path)


def test_period_bounds() -> None:
    assert month_bounds("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    for bad in ("2026-13", "Nov", "2026"):
        with pytest.raises(ValueError, match="is not a month"):
            month_bounds(bad)
