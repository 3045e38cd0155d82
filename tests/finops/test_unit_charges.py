"""Per-request unit charges end to end: real SDKs over loopback -> the SQLite ledger -> report -> FOCUS -> validator.

The calls (one workflow, team ``search``), each figure hand-computed from the published rates:

* Anthropic claude-haiku-4-5 ($1 / $5 per million input / output tokens), web search $10 per 1,000 searches,
  web fetch no charge beyond its tokens: two calls, 3 + 1 searches and 2 fetches -> 4 searches = $0.04;
* OpenAI Responses gpt-4.1 ($2 / $8 per million): web search tool calls $10 per 1,000, file search tool
  calls $2.50 per 1,000: 2 web searches = $0.02, 1 file search = $0.0025;
* Gemini gemini-2.5-pro context cache of 40,000 tokens for 900 s: 36,000,000 token-seconds = 10,000
  token-hours at $4.50 per 1,000,000 token-hours = $0.045 (its creation: 40,000 input tokens at $1.25/M).

Every cost is compared exactly (to the nano-dollar the ledger stores, well inside 1e-9 USD).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

import tokenmeter
from tokenmeter import Usage
from tokenmeter.cli import main
from tokenmeter.finops import SQLiteReader, build_report
from tokenmeter.finops._memory import MemoryReader
from tokenmeter.finops._render import render_text, to_csv, to_json
from tokenmeter.finops._sqlite import SCHEMA_VERSION, LedgerDB
from tokenmeter.finops.chargeback import Chargeback
from tokenmeter.finops.focus import focus_rows
from tokenmeter.testing import capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from .test_focus import assert_valid, needs_validator

M = Decimal(10**6)
SCHEMA1 = Path(__file__).parent / "data" / "ledger-schema1.db"
EXPECTED = {  # (provider, unit) -> (count, USD)
    ("anthropic", "web_search"): (4, Decimal("0.04")),
    ("anthropic", "web_fetch"): (2, Decimal(0)),
    ("openai", "web_search"): (2, Decimal("0.02")),
    ("openai", "file_search"): (1, Decimal("0.0025")),
    ("gcp.gemini", "cache_storage"): (36_000_000, Decimal("0.045")),
}
TOKENS_USD = (
    (6039 + 1000) / M
    + 5 * (931 + 200) / M  # Anthropic
    + (2 * 8000 + 8 * 600) / M  # OpenAI
    + Decimal("1.25") * 40_000 / M  # the Gemini cache's creation
)
UNITS_USD = sum(usd for _, usd in EXPECTED.values())


def _anthropic(input_tokens: int, output_tokens: int, searches: int, fetches: int) -> dict[str, Any]:
    return {
        "id": "msg_units",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Found it."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "server_tool_use": {"web_search_requests": searches, "web_fetch_requests": fetches},
        },
    }


def _responses() -> dict[str, Any]:
    search = {"type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "q"}}
    return {
        "id": "resp_units",
        "object": "response",
        "created_at": 1760000000,
        "status": "completed",
        "model": "gpt-4.1",
        "output": [
            {**search, "id": "ws_1"},
            {**search, "id": "ws_2"},
            {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["q"], "results": None},
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Found it.", "annotations": []}],
            },
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [{"type": "web_search"}],
        "usage": {
            "input_tokens": 8000,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 600,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 8600,
        },
    }


@pytest.fixture
def ledger(fp: FakeProvider, tmp_path: Path) -> Iterator[Path]:
    """The calls above metered into a fresh ledger file through the real SDKs."""
    path = tmp_path / "ledger.db"
    for name in ("anthropic", "openai", "gemini"):
        tokenmeter.instrument(name)
    try:
        with capture(ledger=f"sqlite:///{path}"), tokenmeter.workflow("research", team="search"):
            fp.enqueue(Reply(body=_anthropic(6039, 931, 3, 2)))
            fp.enqueue(Reply(body=_anthropic(1000, 200, 1, 0)))
            claude = anthropic.Anthropic(base_url=fp.url, api_key="sk-ant-test", max_retries=0)
            for _ in range(2):
                claude.messages.create(
                    model="claude-haiku-4-5", max_tokens=99, messages=[{"role": "user", "content": "q"}]
                )
            fp.enqueue(Reply(body=_responses()))
            gpt = openai.OpenAI(base_url=fp.url + "/v1", api_key="sk-test", max_retries=0)
            gpt.responses.create(model="gpt-4.1", input="search", tools=[{"type": "web_search"}])
            fp.enqueue(Reply(input_tokens=40_000))
            gemini = genai.Client(
                api_key="test-key",
                http_options=types.HttpOptions(
                    base_url=fp.url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
                ),
            )
            config = types.CreateCachedContentConfig(contents=["the handbook"], system_instruction="answer", ttl="900s")
            gemini.caches.create(model="gemini-2.5-pro", config=config)
    finally:
        for name in ("anthropic", "openai", "gemini"):
            tokenmeter.uninstrument(name)
    yield path


def _window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(days=2), now + timedelta(days=1)


def _month() -> tuple[datetime, datetime, str]:
    now = datetime.now(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    return start, datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC), f"{now:%Y-%m}"


def test_the_ledger_keeps_each_unit_s_count_and_cost(ledger: Path) -> None:
    rows = list(SQLiteReader(str(ledger)).usage(*_window(), granularity="hour"))
    units = {(r.provider, r.token_class): (r.units, r.cost_usd) for r in rows if r.units}
    assert units == EXPECTED
    assert all(r.tokens == 0 and r.calls == 0 for r in rows if r.units)  # token totals stay the classes'
    assert all(not r.units for r in rows if r.tokens)
    assert sum(r.cost_usd or 0 for r in rows) == TOKENS_USD + UNITS_USD
    assert sum(r.calls for r in rows) == 4


def test_the_report_shows_each_unit_s_count_in_text_json_and_csv(ledger: Path) -> None:
    report = build_report(SQLiteReader(str(ledger)), *_window())
    by_unit = {u.name: (u.count, u.cost) for u in report.units.values()}
    assert by_unit == {
        "cache_storage": (36_000_000, Decimal("0.045")),
        "file_search": (1, Decimal("0.0025")),
        "web_fetch": (2, Decimal(0)),
        "web_search": (6, Decimal("0.06")),
    }
    assert report.total.cost == TOKENS_USD + UNITS_USD
    text = render_text(report)
    block = text.split("Unit charges")[1].split("\n\n")[0].splitlines()
    lines = {line.split()[0]: line.split()[1:] for line in block[2:]}
    assert lines["web_search"] == ["6", "Searches", "0.060000"]
    assert lines["cache_storage"] == ["36,000,000", "Token-Seconds", "0.045000"]
    assert lines["web_fetch"] == ["2", "Fetches", "0.000000"]
    data = to_json(report)
    assert data["units"]["web_search"]["count"] == 6 and data["units"]["web_search"]["cost"] == "0.06"
    csv_rows = {r["name"]: r for r in csv.DictReader(io.StringIO(to_csv(report))) if r["dimension"] == "unit"}
    assert csv_rows["cache_storage"]["units"] == "36000000" and Decimal(
        csv_rows["cache_storage"]["cost_usd"]
    ) == Decimal("0.045")
    assert csv_rows["file_search"]["units"] == "1" and csv_rows["web_fetch"]["units"] == "2"


def test_the_focus_export_has_a_usage_row_per_unit_charge(ledger: Path) -> None:
    start, end, _ = _month()
    chargeback = Chargeback(default="+15%", cost_center="team")
    export = focus_rows(
        SQLiteReader(str(ledger)).usage(start, end, granularity="day"),
        period_start=start,
        period_end=end,
        chargeback=chargeback,
    )
    units = {(r["SkuId"].split("/")[0], json.loads(r["SkuPriceDetails"]).get("x_Unit")): r for r in export.rows}
    expected_shape = {  # unit -> ConsumedUnit, PricingUnit, ListUnitPrice
        "web_search": ("Searches", "1000 Searches", Decimal(10)),
        "web_fetch": ("Fetches", "1000 Fetches", Decimal(0)),
        "file_search": ("Searches", "1000 Searches", Decimal("2.5")),
        "cache_storage": ("Token-Seconds", "Token-Hours", Decimal("0.0000045")),
    }
    token_price_ids = {r["SkuPriceId"] for r in export.rows if r["ConsumedUnit"] == "Tokens"}
    for (provider, unit), (count, usd) in EXPECTED.items():
        row = units[(provider, unit)]
        consumed_unit, pricing_unit, price = expected_shape[unit]
        assert row["ChargeCategory"] == "Usage"
        assert row["ConsumedQuantity"] == count and row["ConsumedUnit"] == consumed_unit
        assert row["PricingUnit"] == pricing_unit
        per = 3600 if unit == "cache_storage" else 1000
        assert row["PricingQuantity"] == Decimal(count) / per
        assert row["ListUnitPrice"] == row["ContractedUnitPrice"] == price
        assert row["ListCost"] == row["BilledCost"] == row["EffectiveCost"] == row["ContractedCost"] == usd
        assert row["ListUnitPrice"] * row["PricingQuantity"] == row["ListCost"]
        assert row["SkuId"].endswith(f"/{unit}") and row["SkuPriceId"] not in token_price_ids
        assert row["x_CostCenter"] == "search" and row["x_ChargebackRate"] == Decimal("0.15")
        assert row["x_ChargebackCost"] == usd * Decimal("1.15")
        assert row["x_Calls"] == 0 and row["x_Unpriced"] is False
    assert sum(r["BilledCost"] for r in export.rows) == TOKENS_USD + UNITS_USD
    assert export.unpriced_units == {} and export.uncounted_unit_cost == 0


@needs_validator
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_validator_passes_an_export_with_unit_rows(
    ledger: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    _, _, period = _month()
    out = tmp_path / f"focus.{fmt}"
    args = ["export", "focus", "--period", period, "--source", f"sqlite:///{ledger}", "--out", str(out)]
    if fmt == "parquet":  # also an unpriced unit, written flagged, and a chargeback's x_ columns
        with capture(ledger=f"sqlite:///{ledger}"):
            tokenmeter.record("gemini", "gemini-2.0-flash-lite", Usage(input=2000, units=(("cache_storage", 7200),)))
        definition = tmp_path / "chargeback.toml"
        definition.write_text('cost_center = "team"\ndefault = "+15%"\n')
        args += ["--unpriced", "flag", "--chargeback", str(definition)]
    assert main(args) == 0, capsys.readouterr().err
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(out).to_pylist()
        (unpriced,) = [r for r in table if r["ConsumedUnit"] == "Token-Seconds" and r["x_Unpriced"]]
        assert unpriced["ConsumedQuantity"] == 7200 and unpriced["BilledCost"] == 0
        (search,) = [r for r in table if r["SkuId"] == "anthropic/claude-haiku-4-5/web_search"]
        assert search["x_ChargebackCost"] == pytest.approx(0.046, abs=1e-12) and search["x_CostCenter"] == "search"
    if fmt == "csv":
        written = list(csv.DictReader(out.open()))
        searches = [r for r in written if r["ConsumedUnit"] == "Searches"]
        assert sorted(r["ConsumedQuantity"] for r in searches) == ["1.0", "2.0", "4.0"]
        assert {r["PricingUnit"] for r in written} == {
            "1000000 Tokens",
            "1000 Searches",
            "1000 Fetches",
            "Token-Hours",
        }
    assert_valid(out, tmp_path)


def test_a_unit_without_a_rate_keeps_its_count_and_is_never_a_zero_in_focus(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    # no published rate for Gemini cache storage of gemini-2.0-flash-lite: counted, unpriced
    with capture(ledger=f"sqlite:///{path}"):
        tokenmeter.record("gemini", "gemini-2.0-flash-lite", Usage(input=2000, units=(("cache_storage", 600_000),)))
    rows = list(SQLiteReader(str(path)).usage(*_window()))
    (unit,) = [r for r in rows if r.token_class == "cache_storage"]
    assert (unit.units, unit.cost_usd, unit.cost_source) == (600_000, None, "unpriced")
    report = build_report(SQLiteReader(str(path)), *_window())
    assert report.units["cache_storage"].unpriced == 600_000 and report.units["cache_storage"].cost == 0
    assert "600,000 unpriced" in render_text(report)
    start, end, _ = _month()
    omitted = focus_rows(rows, period_start=start, period_end=end)
    assert omitted.unpriced_units == {"cache_storage": 600_000}
    assert not [r for r in omitted.rows if r["ConsumedUnit"] != "Tokens"]
    flagged = focus_rows(rows, period_start=start, period_end=end, unpriced="flag")
    (row,) = [r for r in flagged.rows if r["ConsumedUnit"] == "Token-Seconds"]
    assert row["x_Unpriced"] is True and row["BilledCost"] == 0 and row["ConsumedQuantity"] == 600_000


# -- a ledger written by the schema-1 code (tests/finops/data/make_ledger_schema1.py) --------------------------
NOV = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
AT = datetime(2026, 11, 5, 10, 0, tzinfo=UTC)
OLD_USD = Decimal(1000) / M + Decimal(500) / M + Decimal("0.03") + Decimal(2 * 2000 + 8 * 50) / M


def test_a_schema_1_ledger_is_read_as_it_is_without_unit_counts(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy(SCHEMA1, path)
    reader = SQLiteReader(str(path))  # read-only: never migrates
    rows = list(reader.usage(*NOV, granularity="hour"))
    assert sum(r.cost_usd or 0 for r in rows) == OLD_USD
    (search,) = [r for r in rows if r.token_class == "web_search"]
    assert (search.units, search.cost_usd) == (0, Decimal("0.03"))
    report = build_report(reader, *NOV)
    assert report.total.cost == OLD_USD and report.total.calls == 2
    assert report.units["web_search"].uncounted_cost == Decimal("0.03")
    assert "Unit charges of $0.030000 have no count" in render_text(report)
    export = focus_rows(reader.usage(*NOV), period_start=NOV[0], period_end=NOV[1])
    assert export.uncounted_unit_cost == Decimal("0.03")  # said so, not made up
    assert {r["ConsumedUnit"] for r in export.rows} == {"Tokens"}
    reader.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)


def test_a_schema_1_ledger_is_migrated_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy(SCHEMA1, path)
    with capture(ledger=f"sqlite:///{path}"), tokenmeter.workflow("research", team="search"):
        # the same hour as the old rows (its web_search row was written without a count) and a later day
        tokenmeter.record("anthropic", "claude-haiku-4-5", Usage(input=10, units=(("web_search", 2),)), timestamp=AT)
        later = AT + timedelta(days=1)
        tokenmeter.record("anthropic", "claude-haiku-4-5", Usage(input=10, units=(("web_search", 5),)), timestamp=later)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x746D6C67
    reader = SQLiteReader(str(path))
    rows = list(reader.usage(*NOV, granularity="hour"))
    new_usd = Decimal(20) / M + Decimal("0.07")
    assert sum(r.cost_usd or 0 for r in rows) == OLD_USD + new_usd  # the old rows are all there
    searches = {r.start: (r.units, r.cost_usd) for r in rows if r.token_class == "web_search"}
    # the old hour's count stays unknown (2 searches added to 3 uncounted ones); the new day's is exact
    assert searches == {AT: (0, Decimal("0.05")), later: (5, Decimal("0.05"))}
    export = focus_rows(reader.usage(*NOV, granularity="day"), period_start=NOV[0], period_end=NOV[1])
    (row,) = [r for r in export.rows if r["ConsumedUnit"] == "Searches"]
    assert (row["ConsumedQuantity"], row["BilledCost"], row["ListUnitPrice"]) == (5, Decimal("0.05"), 10)
    assert export.uncounted_unit_cost == Decimal("0.05")
    # a second writer opening the migrated file leaves it as it is
    LedgerDB(str(path)).close()
    assert sum(r.cost_usd or 0 for r in SQLiteReader(str(path)).usage(*NOV)) == OLD_USD + new_usd


def test_an_older_process_can_still_write_a_migrated_ledger(tmp_path: Path) -> None:
    """A schema-1 writer names its columns: its rows land with no count (NULL), never a wrong one."""
    path = tmp_path / "old.db"
    shutil.copy(SCHEMA1, path)
    LedgerDB(str(path)).close()  # migrated
    old_columns = (
        "period, env, team, workflow, agent, tier, provider, model, operation, token_class, outcome, customer, "
        "cost_source, tokens, cost_nano, list_cost_nano, unpriced_tokens, estimated_tokens, wasted_tokens, "
        "wasted_cost_nano, calls"
    )
    day = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp())
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"INSERT INTO usage_day ({old_columns}) VALUES "
            "(?, '', 'search', 'research', '', '', 'anthropic', 'claude-haiku-4-5', 'chat', 'web_search', 'ok', '', "
            "'table:x', 0, 10000000, 10000000, 0, 0, 0, 0, 0)",
            (day,),
        )
    rows = [r for r in SQLiteReader(str(path)).usage(*NOV) if r.token_class == "web_search"]
    assert {(r.start.day, r.units, r.cost_usd) for r in rows} == {(5, 0, Decimal("0.03")), (20, 0, Decimal("0.01"))}


def test_rollup_of_a_process_with_unit_charges_adds_their_cost() -> None:
    """``meter.ledger.rollup()`` raised ValueError on a unit row (its class is not a token class) before."""
    with capture() as cap:
        tokenmeter.record("anthropic", "claude-haiku-4-5", Usage(input=1000, units=(("web_search", 3),)))
        totals = cap.meter.ledger.rollup("model")["claude-haiku-4-5"]
        in_process = build_report(MemoryReader(cap.meter))  # what meter.report() prints
    assert totals.tokens == [1000, 0, 0, 0, 0] and totals.calls == 1
    assert totals.cost == Decimal(1000) / M + Decimal("0.03")
    assert (in_process.units["web_search"].count, in_process.units["web_search"].cost) == (3, Decimal("0.03"))
