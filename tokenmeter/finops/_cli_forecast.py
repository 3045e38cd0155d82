"""``tokenmeter forecast``: 7- and 30-day projections, last week's variance, budget runway and scenarios.

tokenmeter forecast [--source S] [--by workflow,env] [--history 91] [--method trend|ets]
                    [--budgets FILE] [--scenario "price=-90% demand=10x"]... [--baseline 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .._errors import ConfigError
from ..governance import Budget, load_budgets
from ._cli_common import CommandError, open_reader, run, table, tokens, usd
from ._model import METHODS, MethodUnavailable, Projection
from ._runway import Runway, day_start, earliest_window_start, runways
from ._scenarios import ScenarioError, ScenarioRow, apply_scenarios, baselines, parse_scenario
from .forecast import DIMENSIONS, ForecastReport, SeriesForecast, Variance, forecast

PROG = "tokenmeter forecast"


def add_parser(subparsers: Any) -> None:
    """Register ``forecast`` on the ``tokenmeter`` command's subparsers."""
    p = subparsers.add_parser(
        "forecast",
        help="token and cost forecast, weekly variance, budget runway, scenarios",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", help="where usage is read from (default: the local ledger; see `tokenmeter report`)")
    p.add_argument("--env", help="only this environment (default: all)")
    p.add_argument(
        "--by",
        default="workflow,env",
        help=f"series dimensions, comma-separated, from {', '.join(DIMENSIONS)} (default: %(default)s)",
    )
    p.add_argument("--history", type=int, default=91, metavar="DAYS", help="days of history read (default: 91)")
    p.add_argument("--as-of", help="first day not in the history, YYYY-MM-DD (default: today, UTC)")
    p.add_argument(
        "--method",
        choices=METHODS,
        default=os.environ.get("TOKENMETER_FORECAST_METHOD", "trend"),
        help="trend: linear trend + weekday factors (built in); ets: Holt-Winters, needs "
        "tokenmeter[forecast] (default: $TOKENMETER_FORECAST_METHOD or trend)",
    )
    p.add_argument("--budgets", help="budgets file (.toml/.json) for the runway (default: $TOKENMETER_BUDGETS)")
    p.add_argument(
        "--scenario",
        action="append",
        nargs="+",
        default=[],
        metavar="TERM",
        help="price=-90%% demand=10x tier-shift=frontier->small:30%% (repeatable)",
    )
    p.add_argument(
        "--baseline",
        type=int,
        default=30,
        metavar="DAYS",
        help="days of measured usage the scenarios start from, today's included (default: 30)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=lambda args: run(PROG, lambda: _command(args)))


def _as_of(text: str | None) -> date:
    today = datetime.now(UTC).date()
    if text is None:
        return today
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--as-of {text!r} is not a date like 2026-11-30", 2) from None
    if day > today:
        raise CommandError(f"--as-of {text} is in the future; the forecast starts from measured days", 2)
    return day


def _command(args: argparse.Namespace) -> int:
    if args.method not in METHODS:
        raise CommandError(f"TOKENMETER_FORECAST_METHOD={args.method!r}: choose from {', '.join(METHODS)}", 2)
    by = [d.strip() for d in args.by.split(",") if d.strip()]
    bad = [d for d in by if d not in DIMENSIONS]
    if bad or not by:
        raise CommandError(f"--by {args.by!r}: choose dimensions from {', '.join(DIMENSIONS)}", 2)
    if args.history < 1 or args.baseline < 1:
        raise CommandError("--history and --baseline must be at least 1 day", 2)
    try:
        scenarios = [parse_scenario(terms) for terms in args.scenario]
    except ScenarioError as exc:
        raise CommandError(str(exc), 2) from None
    budgets: list[Budget] = []
    path = args.budgets or os.environ.get("TOKENMETER_BUDGETS")
    if path:
        try:
            budgets = load_budgets(path)
        except ConfigError as exc:
            raise CommandError(str(exc), 2) from None
    as_of = _as_of(args.as_of)
    reader = open_reader(args.source)
    end = day_start(as_of)  # the forecast's history ends here: complete days only
    # the scenarios' baseline includes the day in progress when forecasting from today
    read_end = end + timedelta(days=1) if args.as_of is None else end
    start = end - timedelta(days=max(args.history, args.baseline))
    rows = list(reader.usage(start, read_end, env=args.env, granularity="day"))
    if not rows:
        where = f" for env {args.env!r}" if args.env else ""
        raise CommandError(
            f"no usage in {reader.describe()}{where} from {start:%Y-%m-%d} to {end:%Y-%m-%d}: meter "
            "some calls first, or read more days with --history"
        )
    history_start = end - timedelta(days=args.history)
    history = [r for r in rows if history_start <= r.start < end]
    if not history and not scenarios and not budgets:
        raise CommandError(
            f"only today's usage so far in {reader.describe()}: the forecast projects complete days "
            "(a trend needs 14, weekday seasonality 21); --scenario works from today's baseline"
        )
    try:
        report = forecast(history, as_of=as_of, by=by, method=args.method)
    except MethodUnavailable as exc:
        raise CommandError(str(exc), 2) from None
    base_start = read_end - timedelta(days=args.baseline)
    try:
        scen = apply_scenarios(scenarios, baselines(r for r in rows if r.start >= base_start)) if scenarios else []
    except ScenarioError as exc:
        raise CommandError(str(exc), 2) from None
    runway: list[Runway] = []
    if budgets:
        now = datetime.now(UTC) if args.as_of is None else end
        hour_end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        window_rows = list(
            reader.usage(earliest_window_start(budgets, now), hour_end, env=args.env, granularity="hour")
        )
        runway = runways(budgets, history, window_rows, now=now, method=args.method)
    if args.json:
        print(json.dumps(_json(report, runway, scen, args.baseline), indent=2))
    else:
        print(_text(report, runway, scen, reader.describe(), args.baseline))
    return 0


def _band(p: Projection, days: int) -> dict[str, float]:
    point, lower, upper = p.total(days)
    return {"point": round(point, 6), "lower": round(lower, 6), "upper": round(upper, 6)}


def _var_json(v: Variance | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {
        "week_start": v.week_start.isoformat(),
        "actual": round(v.actual, 6),
        "forecast": round(v.forecast, 6),
        "lower": round(v.lower, 6),
        "upper": round(v.upper, 6),
        "flagged": v.flagged,
        "method": v.method,
    }


def _series_json(s: SeriesForecast) -> dict[str, Any]:
    return {
        **s.key,
        "first_day": s.first_day.isoformat(),
        "history_days": s.history_days,
        "method": s.tokens.method,
        "note": s.note,
        "unpriced_tokens": s.unpriced_tokens,
        "tokens": {
            "next_7d": _band(s.tokens, 7),
            "next_30d": _band(s.tokens, 30),
            "daily": [round(v, 3) for v in s.tokens.point],
        },
        "cost_usd": {
            "next_7d": _band(s.cost, 7),
            "next_30d": _band(s.cost, 30),
            "daily": [round(v, 6) for v in s.cost.point],
        },
        "variance": {"tokens": _var_json(s.tokens_variance), "cost_usd": _var_json(s.cost_variance)},
    }


def _json(report: ForecastReport, runway: list[Runway], scen: list[ScenarioRow], baseline: int) -> dict[str, Any]:
    return {
        "as_of": report.as_of.isoformat(),
        "by": list(report.by),
        "method": report.method,
        "interval": 0.8,
        "series": [_series_json(s) for s in report.series],
        "total": _series_json(report.total) if report.total else None,
        "runway": [
            {
                "budget": r.budget,
                "scope": r.scope,
                "window": r.window,
                "window_start": r.window_start.isoformat(),
                "window_end": r.window_end.isoformat(),
                "unit": r.unit,
                "limit": r.limit,
                "spent": round(r.spent, 6),
                "projected_at_window_end": round(r.projected_at_end, 6),
                "runs_out_at": r.runs_out_at.isoformat() if r.runs_out_at else None,
                "earliest_out_at": r.earliest_out_at.isoformat() if r.earliest_out_at else None,
                "method": r.method,
                "note": r.note,
            }
            for r in runway
        ],
        "scenarios": [
            {
                "scenario": r.scenario,
                "workflow": r.workflow,
                "baseline_days": baseline,
                "baseline_tokens": r.baseline_tokens,
                "baseline_cost_usd": str(r.baseline_cost),
                "tokens": str(r.tokens),
                "cost_usd": str(r.cost),
                "ratio": None if r.ratio is None else str(r.ratio),
                "effect": r.effect,
                "unpriced_tokens": r.unpriced_tokens,
            }
            for r in scen
        ],
    }


def _band_text(p: Projection, days: int, fmt: Any) -> str:
    point, lower, upper = p.total(days)
    return f"{fmt(point)} ({fmt(lower)}..{fmt(upper)})"


def _var_text(v: Variance | None, fmt: Any) -> str:
    if v is None:
        return "-"
    change = "" if v.change is None else f" {v.change:+.0%}"
    return f"{fmt(v.actual)} vs {fmt(v.forecast)}{change}" + (" !" if v.flagged else "")


def _text(report: ForecastReport, runway: list[Runway], scen: list[ScenarioRow], where: str, baseline: int) -> str:
    out = [f"Forecast as of {report.as_of} from {where} (method {report.method}; 80 % intervals)", ""]
    if not report.series:
        out.append(f"No complete day of usage before {report.as_of} yet: nothing to project.")
    else:
        rows = []
        for s in [*report.series, *([report.total] if report.total else [])]:
            name = "/".join(s.key.values()) if s.key else "TOTAL"
            rows.append(
                (
                    name,
                    s.history_days,
                    s.tokens.method,
                    _band_text(s.tokens, 7, tokens),
                    _band_text(s.tokens, 30, tokens),
                    _band_text(s.cost, 30, usd),
                    _var_text(s.tokens_variance, tokens),
                    _var_text(s.cost_variance, usd),
                )
            )
        out.append(
            table(
                (
                    "/".join(report.by).upper(),
                    "DAYS",
                    "METHOD",
                    "TOKENS NEXT 7D",
                    "TOKENS NEXT 30D",
                    "COST NEXT 30D",
                    "LAST WEEK TOKENS: ACTUAL VS FORECAST",
                    "LAST WEEK COST",
                ),
                rows,
                right=(1,),
            )
        )
        out.append("'!' marks a week outside the 80 % interval of the forecast made a week earlier.")
    for s in report.short:
        out.append(f"note: {'/'.join(s.key.values())}: {s.note}")
    if runway:
        out += ["", "Budget runway (current window, at the projected burn; earliest at the interval's upper bound)"]
        fmt = {"usd": usd, "tokens": tokens}
        out.append(
            table(
                ("BUDGET", "WINDOW", "LIMIT", "SPENT", "PROJECTED AT END", "RUNS OUT", "EARLIEST"),
                [
                    (
                        r.budget,
                        f"{r.window} {r.window_start:%Y-%m-%d %H:%M}..{r.window_end:%Y-%m-%d %H:%M}",
                        fmt[r.unit](r.limit),
                        fmt[r.unit](r.spent),
                        fmt[r.unit](r.projected_at_end),
                        f"{r.runs_out_at:%Y-%m-%d %H:%M}Z" if r.runs_out_at else "lasts the window",
                        f"{r.earliest_out_at:%Y-%m-%d %H:%M}Z" if r.earliest_out_at else "-",
                    )
                    for r in runway
                ],
            )
        )
    if scen:
        out += ["", f"Scenarios from the measured baseline of the last {baseline} day(s)"]
        out.append(
            table(
                (
                    "SCENARIO",
                    "WORKFLOW",
                    "BASELINE TOKENS",
                    "BASELINE COST",
                    "TOKENS",
                    "COST",
                    "CHANGE",
                    "SPEND EFFECT",
                ),
                [
                    (
                        r.scenario,
                        "TOTAL" if r.workflow == "*" else r.workflow,
                        tokens(r.baseline_tokens),
                        usd(r.baseline_cost),
                        tokens(float(r.tokens)),
                        usd(r.cost),
                        "-" if r.ratio is None else f"{float(r.ratio) - 1:+.0%}",
                        r.effect,
                    )
                    for r in scen
                ],
                right=(2, 3, 4, 5, 6),
            )
        )
        unpriced = sum(r.unpriced_tokens for r in scen if r.workflow == "*") // max(1, len({r.scenario for r in scen}))
        if unpriced:
            out.append(f"note: {tokens(unpriced)} baseline tokens have no price; they are not in the cost columns.")
    return "\n".join(out)
