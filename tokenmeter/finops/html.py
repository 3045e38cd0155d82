"""``tokenmeter report --html FILE``: the report as one self-contained page.

Everything is inline -- styles, the inline SVG charts (:mod:`tokenmeter.finops._svg`, hand-written: no charting
library and nothing fetched when the page is opened), and one small script. The page shows spend over time stacked
by team and by tier, the per-run distribution with its p50 / p99 markers and the edge-case multiplier, the forecast
band and the budgets' burn. Unpriced tokens are called out, never shown as $0.

The script only adds legend highlighting and records any script error in ``#tm-errors`` (``data-errors``), so a
headless browser's DOM dump proves the page ran cleanly (tests/e2e/test_report_html_e2e.py).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

from . import _svg
from ._rows import Reader, RunRow, UsageRow
from ._runfigs import folded_note, read_folds
from .chargeback import Chargeback, format_rate
from .prometheus import RunStats

__all__ = ["BudgetBurn", "percentile", "render", "write"]

ForecastPoint = tuple[date | datetime | str, Any, Any, Any]  # (day, low, mid, high) in USD


@dataclass(frozen=True)
class BudgetBurn:
    """One budget's window so far: ``spent`` of ``limit`` (USD, or tokens with ``unit="tokens"``) after
    ``elapsed`` (0..1) of its window."""

    name: str
    limit: Decimal | float
    spent: Decimal | float
    elapsed: float = 1.0
    unit: str = "USD"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` (0..1) quantile, linear between the closest ranks (numpy's default); 0.0 for no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def render(
    usage_rows: Iterable[UsageRow],
    run_rows: Iterable[RunRow],
    *,
    title: str,
    forecast: Sequence[ForecastPoint] | None = None,
    budgets: Sequence[BudgetBurn | Mapping[str, Any]] | None = None,
    run_stats: Sequence[RunStats] | None = None,
    chargeback: Chargeback | None = None,
    folded_runs: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The HTML page (a complete document) for ``usage_rows`` and ``run_rows``.

    ``forecast``: optional ``(day, low, mid, high)`` USD per day, drawn as a band after the actual daily spend.
    ``budgets``: optional :class:`BudgetBurn` (or mappings with its fields), drawn as burn bars.
    ``run_stats``: the run histograms of a source without per-run rows (``PrometheusReader.run_stats``), drawn
    as buckets with the p50 / p99 they imply when ``run_rows`` is empty.
    ``chargeback``: a :class:`~tokenmeter.finops.chargeback.Chargeback`, shown as a table of cost, rate and
    charge per cost center with the totals of both.
    ``folded_runs``: runs the ledger folded into per-hour sums (``SQLiteReader.folded_runs``): counted in the
    runs card; the per-run spread says it covers the runs kept one by one.
    """
    usage = list(usage_rows)
    runs = list(run_rows)
    days = sorted({r.start.date() for r in usage})
    forecast_days = [_day(f[0]) for f in forecast or ()]
    folded = sum(int(f["runs"]) for f in folded_runs)
    folded_ok = sum(int(f["runs"]) for f in folded_runs if f["outcome"] == "ok")
    parts = [_summary(usage, runs, folded, folded_ok)]
    parts.append(_section("Spend per day by team", _stacked(usage, days, "team")))
    parts.append(_section("Spend per day by model tier", _stacked(usage, days, "tier")))
    if chargeback is not None:
        parts.append(_section(f"Chargeback by {chargeback.cost_center}", _chargeback(usage, chargeback)))
    note = folded_note(folded, len(runs) + folded)
    per_run = _runs(runs, folded) if runs or not run_stats else _run_buckets(run_stats)
    parts.append(_section("Cost per run", (f'<p class="warn">{escape(note)}</p>' if note else "") + per_run))
    if forecast:
        parts.append(_section("Forecast", _forecast(usage, days, forecast, forecast_days)))
    if budgets:
        parts.append(_section("Budgets burn", _budgets([_budget(b) for b in budgets])))
    period = f"{days[0]}&ndash;{days[-1]} (UTC)" if days else "no usage in this period"
    return _PAGE.format(title=escape(title), period=period, body="\n".join(parts), style=_STYLE, script=_SCRIPT)


def write(
    path: str | os.PathLike[str],
    reader: Reader,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    env: str | None = None,
    title: str | None = None,
    forecast: Sequence[ForecastPoint] | None = None,
    budgets: Sequence[BudgetBurn | Mapping[str, Any]] | None = None,
    chargeback: Chargeback | None = None,
) -> Path:
    """Read ``[start, end)`` (default: the 30 days to now) from ``reader`` by day and write :func:`render`'s page
    to ``path`` -- what ``tokenmeter report --html FILE`` does. Returns the path written."""
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=30)
    usage = list(reader.usage(start, end, env=env, granularity="day"))
    runs = list(reader.runs(start, end, env=env))
    folded = read_folds(reader, start, end, env)
    stats = getattr(reader, "run_stats", None)  # a source without run rows may keep run histograms
    page = render(
        usage,
        runs,
        title=title or f"tokenmeter report · {reader.describe()}",
        forecast=forecast,
        budgets=budgets,
        run_stats=stats(start, end, env=env) if stats and not runs else None,
        chargeback=chargeback,
        folded_runs=folded,
    )
    out = Path(path)
    out.write_text(page, encoding="utf-8")
    return out


# -- sections ----------------------------------------------------------------------------------------------------------
def _summary(usage: list[UsageRow], runs: list[RunRow], folded: int = 0, folded_ok: int = 0) -> str:
    tokens = sum(r.tokens for r in usage)
    cost = sum((r.cost_usd for r in usage if r.cost_usd is not None), Decimal(0))
    unpriced = sum(r.unpriced_tokens for r in usage)
    calls = sum(r.calls for r in usage)
    wasted = sum((r.wasted_cost_usd for r in usage), Decimal(0))
    ok = sum(1 for r in runs if r.outcome == "ok") + folded_ok
    n = len(runs) + folded
    cards = [
        ("Spend", _svg.money(float(cost))),
        ("Tokens", _svg.count(tokens)),
        ("LLM calls", _svg.count(calls)),
        ("Wasted (retried / failed)", _svg.money(float(wasted))),
    ]
    if n:
        cards.append(("Runs succeeded", f"{ok} / {n} ({ok / n:.0%})"))
    html = "".join(
        f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div></div>' for k, v in cards
    )
    note = (
        f'<p class="warn">{unpriced:,} tokens have no known price: they are not in the spend figures '
        "(unpriced, never $0).</p>"
        if unpriced
        else ""
    )
    return f'<div class="cards">{html}</div>{note}'


def _chargeback(usage: list[UsageRow], cb: Chargeback) -> str:
    per: dict[str, list[Any]] = {}  # entity -> [cost, charge, unpriced tokens]
    for r in usage:
        entity = getattr(r, cb.cost_center)
        acc = per.get(entity)
        if acc is None:
            acc = per[entity] = [Decimal(0), Decimal(0), 0]
        if r.cost_usd is not None:
            acc[0] += r.cost_usd
            acc[1] += cb.charge(r.cost_usd, entity)
        acc[2] += r.unpriced_tokens if r.cost_usd is not None else r.tokens
    if not per:
        return '<p class="empty">No usage in this period.</p>'
    body = "".join(
        f"<tr><td>{escape(e or '(none)')}</td><td class='n'>{escape(format_rate(cb.rate(e)))}</td>"
        f"<td class='n'>{c:.6f}</td><td class='n'>{g:.6f}</td><td class='n'>{u:,}</td></tr>"
        for e, (c, g, u) in sorted(per.items(), key=lambda kv: (-kv[1][1], kv[0]))
    )
    cost = sum((v[0] for v in per.values()), Decimal(0))
    charge = sum((v[1] for v in per.values()), Decimal(0))
    unpriced = sum(v[2] for v in per.values())
    return (
        f'<p class="stats">{escape(cb.describe())} · charge = cost &times; (1 + rate); the raw cost is unchanged'
        "; unpriced tokens carry no charge</p>"
        f'<table id="tm-chargeback"><thead><tr><th>{escape(cb.cost_center)}</th><th class="n">rate</th>'
        '<th class="n">cost USD</th><th class="n">charge USD</th><th class="n">unpriced tok</th></tr></thead>'
        f"<tbody>{body}</tbody><tfoot><tr><th>total</th><th></th><th class='n'>{cost:.6f}</th>"
        f"<th class='n'>{charge:.6f}</th><th class='n'>{unpriced:,}</th></tr></tfoot></table>"
    )


def _stacked(usage: list[UsageRow], days: list[date], by: str) -> str:
    if not days:
        return '<p class="empty">No usage in this period.</p>'
    index = {d: i for i, d in enumerate(days)}
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(days))
    for r in usage:
        if r.cost_usd:
            series[getattr(r, by) or "(none)"][index[r.start.date()]] += float(r.cost_usd)
    ordered = dict(sorted(series.items(), key=lambda kv: -sum(kv[1])))
    if not ordered:
        return '<p class="empty">No priced usage in this period.</p>'
    labels = [d.strftime("%m-%d") for d in days]
    return _svg.legend(list(ordered)) + _svg.stacked_bars(labels, ordered, title=f"spend per day by {by}")


def _runs(runs: list[RunRow], folded: int = 0) -> str:
    if not runs and folded:
        return '<p class="empty">No run was kept one by one in this period (all folded): no per-run spread.</p>'
    if not runs:
        return '<p class="empty">This source keeps no per-run rows (a Prometheus source has run histograms only).</p>'
    priced = [float(r.cost_usd) for r in runs if r.cost_usd is not None]
    values, fmt, what = (
        (priced, "money", "cost") if priced else ([float(sum(r.tokens.values())) for r in runs], "count", "tokens")
    )
    p50, p95, p99 = (percentile(values, q) for q in (0.5, 0.95, 0.99))
    multiplier = f"{p99 / p50:.1f}&times;" if p50 else "n/a"
    fmt_v = _svg.money if fmt == "money" else _svg.count
    worst = sorted(
        (r for r in runs if r.cost_usd is not None or not priced),
        key=lambda r: float(r.cost_usd) if priced and r.cost_usd is not None else sum(r.tokens.values()),
        reverse=True,
    )[:5]
    rows = "".join(
        f"<tr><td><code>{escape(r.run_id)}</code></td><td>{escape(r.workflow)}</td><td>{escape(r.team)}"
        f"</td><td>{escape(r.outcome)}</td><td class='n'>{sum(r.tokens.values()):,}</td><td class='n'>"
        f"{escape(_svg.money(float(r.cost_usd)) if r.cost_usd is not None else 'unpriced')}</td></tr>"
        for r in worst
    )
    stats = (
        f'<p class="stats">{len(values)} runs · p50 <b>{fmt_v(p50)}</b> · p95 <b>{fmt_v(p95)}</b> · p99 '
        f"<b>{fmt_v(p99)}</b> · max <b>{fmt_v(max(values))}</b> · edge-case multiplier (p99/p50) "
        f"<b>{multiplier}</b></p>"
    )
    chart = _svg.histogram(values, {"p50": p50, "p99": p99}, title=f"{what} per run", fmt=fmt)
    table = (
        "<table><thead><tr><th>worst runs</th><th>workflow</th><th>team</th><th>outcome</th>"
        f'<th class="n">tokens</th><th class="n">cost</th></tr></thead><tbody>{rows}</tbody></table>'
    )
    return stats + chart + table


def _run_buckets(stats: Sequence[RunStats]) -> str:
    merged = RunStats("", "", "", "")
    for s in stats:
        merged.runs += s.runs
        for of, per_le in s.buckets.items():
            into = merged.buckets.setdefault(of, {})
            for le, n in per_le.items():
                into[le] = into.get(le, Decimal(0)) + n
    of, fmt = ("cost", "money") if merged.buckets.get("cost") else ("tokens", "count")
    cumulative = sorted(merged.buckets.get(of, {}).items())
    if not merged.runs or not cumulative:
        return '<p class="empty">No finished runs in this period.</p>'
    bounds = [le for le, _ in cumulative]
    counts = [float(n - (cumulative[i - 1][1] if i else 0)) for i, (_, n) in enumerate(cumulative)]
    p50, p95, p99 = (merged.quantile(q, of) or 0.0 for q in (0.5, 0.95, 0.99))
    fmt_v = _svg.money if fmt == "money" else _svg.count
    multiplier = f"{p99 / p50:.1f}&times;" if p50 else "n/a"
    stats_line = (
        f'<p class="stats">{merged.runs} runs (from the run histograms: no run ids in metrics) · p50 '
        f"<b>{fmt_v(p50)}</b> · p95 <b>{fmt_v(p95)}</b> · p99 <b>{fmt_v(p99)}</b> · edge-case "
        f"multiplier (p99/p50) <b>{multiplier}</b></p>"
    )
    return stats_line + _svg.buckets(bounds, counts, {"p50": p50, "p99": p99}, title=f"{of} per run", fmt=fmt)


def _forecast(
    usage: list[UsageRow], days: list[date], forecast: Sequence[ForecastPoint], forecast_days: list[date]
) -> str:
    spent: dict[date, float] = defaultdict(float)
    for r in usage:
        if r.cost_usd:
            spent[r.start.date()] += float(r.cost_usd)
    axis = sorted(set(days) | set(forecast_days))
    bands = {d: (float(f[1]), float(f[2]), float(f[3])) for d, f in zip(forecast_days, forecast, strict=True)}
    total = sum(b[1] for b in bands.values())
    chart = _svg.band(
        [d.strftime("%m-%d") for d in axis],
        [spent[d] if d in spent else None for d in axis],
        [bands.get(d) for d in axis],
        title="actual and forecast spend per day",
    )
    return (
        f'<p class="stats">Forecast over {len(bands)} days: <b>{_svg.money(total)}</b> '
        f"(range {_svg.money(sum(b[0] for b in bands.values()))}&ndash;"
        f"{_svg.money(sum(b[2] for b in bands.values()))})</p>{chart}"
    )


def _budgets(budgets: list[BudgetBurn]) -> str:
    out = []
    for b in budgets:
        limit, spent = float(b.limit), float(b.spent)
        ratio = spent / limit if limit else 0.0
        state = "over" if ratio >= 1 else "hot" if ratio > b.elapsed and ratio >= 0.8 else "ok"
        fmt = _svg.money if b.unit == "USD" else _svg.count
        out.append(
            f'<div class="budget {state}"><div class="bname">{escape(b.name)}</div><div class="track">'
            f'<div class="fill" style="width:{min(ratio, 1.0) * 100:.1f}%"></div>'
            f'<div class="pace" style="left:{min(max(b.elapsed, 0.0), 1.0) * 100:.1f}%" '
            f'title="{b.elapsed:.0%} of the window elapsed"></div></div>'
            f'<div class="bval">{escape(fmt(spent))} of {escape(fmt(limit))} ({ratio:.0%}) · '
            f"{b.elapsed:.0%} of window</div></div>"
        )
    return "".join(out)


# -- helpers -----------------------------------------------------------------------------------------------------------
def _section(heading: str, body: str) -> str:
    return f"<section><h2>{escape(heading)}</h2>{body}</section>"


def _day(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _budget(value: BudgetBurn | Mapping[str, Any]) -> BudgetBurn:
    return value if isinstance(value, BudgetBurn) else BudgetBurn(**dict(value))


_STYLE = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#e3e6eb;--bg:#f6f7f9}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif}
header{padding:18px 28px;background:#1d2330;color:#fff}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c5cad3}main{padding:8px 28px 28px;max-width:1000px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin:14px 0}
h2{font-size:15px;margin:0 0 8px}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:14px 0}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:150px}
.card .k{color:var(--muted);font-size:12px}.card .v{font-size:20px;font-weight:600}
.warn{background:#fff4e5;border:1px solid #f5c27a;border-radius:6px;padding:8px 12px}
.chart{width:100%;height:auto;display:block}.grid{stroke:var(--line)}
.ylab{font-size:11px;fill:var(--muted);text-anchor:end}.xlab{font-size:11px;fill:var(--muted);text-anchor:middle}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;margin:2px 0 6px}
.key{cursor:default}.key i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
.dim{opacity:.15}.bin{fill:#4e79a7}.marker{stroke-width:2;stroke-dasharray:5 3}
.m0{stroke:#59a14f;fill:#2f6f2a}.m1{stroke:#e15759;fill:#b1282b}.mlab{font-size:12px;font-weight:600;stroke:none}
.band{fill:#4e79a7;opacity:.18}.mid{fill:none;stroke:#4e79a7;stroke-width:2;stroke-dasharray:6 4}
.actual{fill:none;stroke:#1d2330;stroke-width:2}.adot{fill:#1d2330}.fdot{fill:#4e79a7}
.stats{margin:4px 0 8px}.empty{color:var(--muted)}
table{border-collapse:collapse;width:100%;font-size:12px;margin-top:8px}
th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left}.n{text-align:right}
.budget{display:grid;grid-template-columns:170px 1fr 320px;gap:10px;align-items:center;margin:6px 0}
.track{position:relative;height:14px;background:#eef0f3;border-radius:7px;overflow:hidden}
.fill{height:100%;background:#59a14f}.hot .fill{background:#f28e2b}.over .fill{background:#e15759}
.pace{position:absolute;top:-2px;width:2px;height:18px;background:#1d2330}.bval{font-size:12px;color:var(--muted)}
#tm-errors:empty{display:none}#tm-errors{color:#b1282b}
"""

_SCRIPT = """
(function(){
  var box=document.getElementById('tm-errors');
  function fail(msg){box.textContent+=msg+'\\n';box.dataset.errors=String(+box.dataset.errors+1);}
  window.addEventListener('error',function(e){fail('error: '+e.message);});
  var origError=console.error;console.error=function(){fail('console.error: '+[].join.call(arguments,' '));
    origError.apply(console,arguments);};
  document.querySelectorAll('section').forEach(function(sec){
    sec.querySelectorAll('.key').forEach(function(key){
      var name=key.dataset.series;
      key.addEventListener('mouseenter',function(){sec.querySelectorAll('rect[data-series]').forEach(function(r){
        if(r.dataset.series!==name){r.classList.add('dim');}});});
      key.addEventListener('mouseleave',function(){sec.querySelectorAll('rect.dim').forEach(function(r){
        r.classList.remove('dim');});});
    });
  });
  document.body.dataset.ready='1';
})();
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><style>{style}</style></head>
<body data-ready="0"><header><h1>{title}</h1><p>{period} · tokenmeter report</p></header>
<main><pre id="tm-errors" data-errors="0"></pre>
{body}
</main><script>{script}</script></body></html>
"""
