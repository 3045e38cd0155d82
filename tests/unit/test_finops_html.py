"""finops.html.render over small hand-computed rows (the browser test: tests/e2e/test_report_html_e2e.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from math import inf
from pathlib import Path

from tokenmeter.finops import RunRow, RunStats, UsageRow
from tokenmeter.finops.html import BudgetBurn, percentile, render, write

D1 = datetime(2026, 11, 2, tzinfo=UTC)
D2 = D1 + timedelta(days=1)


def _row(day: datetime, team: str, tier: str, cost: str | None, tokens: int = 1000, **more: object) -> UsageRow:
    return UsageRow(
        day,
        day + timedelta(hours=1),
        "prod",
        team,
        "wf",
        "agent",
        tier,
        "openai",
        "gpt-4o",
        "chat",
        "input",
        tokens=tokens,
        cost_usd=None if cost is None else Decimal(cost),
        **more,
    )  # type: ignore[arg-type]


USAGE = [
    _row(D1, "support", "small", "1.50", calls=3),
    _row(D1, "data", "standard", "0.50", calls=1),
    _row(D2, "support", "standard", "2.00", calls=2),
    _row(D2, "data", "small", None, tokens=700, unpriced_tokens=700, calls=1),
    _row(D2, "support", "", None, tokens=0, wasted_tokens=10, wasted_cost_usd=Decimal("0.25")),
]
RUNS = [
    RunRow(
        f"r{i}",
        "wf",
        "support",
        "prod",
        D1,
        1.0,
        1,
        1,
        1,
        {"input": 100 * (i + 1)},
        Decimal(str(0.01 * (i + 1))),
        "ok" if i < 9 else "stopped",
    )
    for i in range(10)
]


def test_percentile_is_linear_between_ranks() -> None:
    assert percentile([], 0.5) == 0.0
    assert percentile([5.0], 0.99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    values = [float(i) for i in range(1, 11)]
    assert percentile(values, 0.99) == 10 - 0.09 and percentile(values, 0.5) == 5.5


def test_cards_total_and_call_out_unpriced_tokens() -> None:
    page = render(USAGE, RUNS, title="T")
    assert "<b>" not in page.split("<main>")[0]  # nothing from the rows leaks into the header but the dates
    assert "$4.00" in page  # 1.50 + 0.50 + 2.00; the unpriced row adds nothing
    assert "2,700" not in page and "3.7k" in page  # tokens 1000+1000+1000+700
    assert "700 tokens have no known price" in page and "never $0" in page
    assert "$0.25" in page  # wasted
    assert "9 / 10 (90%)" in page
    assert "2026-11-02&ndash;2026-11-03 (UTC)" in page


def test_stacked_bars_per_day_and_team() -> None:
    page = render(USAGE, [], title="T")
    titles = re.findall(r"<title>([^<]*)</title>", page)
    assert "11-02 · support: $1.50" in titles and "11-02 · data: $0.50" in titles
    assert "11-03 · support: $2.00" in titles
    assert "11-02 · small: $1.50" in titles and "11-03 · standard: $2.00" in titles
    assert not any(t.startswith("11-03 · data") for t in titles)  # unpriced: no bar, never a $0 one
    assert "keeps no per-run rows" in page


def test_run_distribution_marks_p50_and_p99() -> None:
    page = render(USAGE, RUNS, title="T")
    assert "p50 <b>$0.055</b>" in page and "p99 <b>$0.0991</b>" in page
    assert "edge-case multiplier (p99/p50) <b>1.8&times;</b>" in page
    assert 'class="marker m0"' in page and 'class="marker m1"' in page
    assert page.index("<code>r9</code>") < page.index("<code>r8</code>")  # worst run first


def test_forecast_band_and_budgets() -> None:
    forecast = [("2026-11-04", 1, 2, 3), (datetime(2026, 11, 5, tzinfo=UTC), Decimal("1.5"), Decimal("2.5"), 4)]
    budgets = [
        BudgetBurn("daily", Decimal("10"), Decimal("12"), elapsed=0.5),
        {"name": "tokens", "limit": 1000, "spent": 100, "elapsed": 0.9, "unit": "tokens"},
    ]
    page = render(USAGE, RUNS, title="T", forecast=forecast, budgets=budgets)
    assert "Forecast over 2 days: <b>$4.50</b> (range $2.50&ndash;$7.00)" in page
    assert 'class="band"' in page and "11-05 forecast $2.50 ($1.50&ndash;$4.00)" in page
    assert '<div class="budget over">' in page and "$12.00 of $10.00 (120%)" in page
    assert '<div class="budget ok">' in page and "100 of 1e+03 (10%)" not in page and "100 of 1k (10%)" in page
    assert 'style="width:100.0%"' in page and 'style="left:50.0%"' in page


def test_names_are_escaped_and_nothing_is_fetched() -> None:
    evil = _row(D1, "<script>alert(1)</script>", "x\"'", "1")
    run = RunRow("<img src=x>", "wf", "t", "prod", D1, 1.0, 1, 1, 1, {}, Decimal(1))
    page = render([evil], [run], title="<b>acme</b>")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "<b>acme</b>" not in page
    assert not re.search(r"https?://|<[^>]*\s(src|href)=", page)
    assert page.count("<script>") == 1


def test_empty_inputs_render() -> None:
    page = render([], [], title="nothing")
    assert "no usage in this period" in page and "No usage in this period." in page


class _Rows:
    """A Reader over fixed rows (the SQLite and Prometheus readers are tested on their own)."""

    def __init__(self) -> None:
        self.asked: list[tuple[object, ...]] = []

    def describe(self) -> str:
        return "fixed rows"

    def usage(
        self, start: datetime, end: datetime, *, env: str | None = None, granularity: str = "day"
    ) -> list[UsageRow]:
        self.asked.append(("usage", start, end, env, granularity))
        return [r for r in USAGE if start <= r.start < end]

    def runs(self, start: datetime, end: datetime, *, env: str | None = None) -> list[RunRow]:
        self.asked.append(("runs", start, end, env))
        return RUNS


def test_write_reads_the_window_by_day_and_writes_the_page(tmp_path: Path) -> None:
    reader = _Rows()
    out = write(tmp_path / "r.html", reader, D1, D2 + timedelta(days=1), env="prod")
    page = out.read_text()
    assert reader.asked == [
        ("usage", D1, D2 + timedelta(days=1), "prod", "day"),
        ("runs", D1, D2 + timedelta(days=1), "prod"),
    ]
    assert page == render(USAGE, RUNS, title="tokenmeter report · fixed rows")


def test_run_histograms_stand_in_for_run_rows() -> None:
    stats = [
        RunStats(
            "wf",
            "t",
            "prod",
            "ok",
            runs=5,
            buckets={"tokens": {256.0: Decimal(2), 1024.0: Decimal(4), 4096.0: Decimal(5), inf: Decimal(5)}},
        ),
        RunStats(
            "wf",
            "t",
            "prod",
            "error",
            runs=3,
            buckets={"tokens": {256.0: Decimal(0), 1024.0: Decimal(2), 4096.0: Decimal(3), inf: Decimal(3)}},
        ),
    ]
    page = render(USAGE, [], title="T", run_stats=stats)
    # merged cumulative: 256 -> 2, 1024 -> 6, 4096 -> 8 of 8 runs; p50 = 256 + 768 * 2/4, p99 = 1024 + 3072 * 1.92/2
    assert "8 runs (from the run histograms" in page
    assert "p50 <b>640</b>" in page and "p99 <b>3.97k</b>" in page
    assert "≤256: 2 runs" in page and "≤1.02k: 4 runs" in page and "≤4.1k: 2 runs" in page
    assert 'class="marker m0"' in page and 'class="marker m1"' in page
    assert render(USAGE, RUNS, title="T", run_stats=stats).count("from the run histograms") == 0  # rows win
