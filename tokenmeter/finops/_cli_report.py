"""``tokenmeter report``: the FinOps report from the ledger (or another source) in the terminal, JSON or CSV.

    tokenmeter report                                  # everything in the default ledger
    tokenmeter report --since 7d --by team,workflow --env prod
    tokenmeter report --period 2026-11 --source sqlite:////var/lib/app/ledger.db --json
    tokenmeter report --by customer --chargeback chargeback.toml   # charge = cost x (1 + rate) beside the cost

Bad input (no ledger, an empty window, an unknown period, an unreadable / locked / corrupt file) prints one
line naming what to fix and exits non-zero. A read-only command: it never creates or changes a ledger.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from .._config import ledger_path
from .._errors import ConfigError
from ._sqlite import LedgerFileError, SQLiteReader
from .chargeback import Chargeback, cli_help
from .report import DEFAULT_BY, DIMENSIONS, build_report

_SINCE = re.compile(r"^(\d+)([hdwm])$")
_TSDB_KINDS = ("prometheus", "victoriametrics", "mimir", "thanos")


class ReportError(Exception):
    """Bad input: the message says what to fix."""


def add_parser(subparsers: Any) -> None:
    """Register ``report`` on the ``tokenmeter`` command's subparsers."""
    p = subparsers.add_parser(
        "report",
        help="FinOps report: spend, tier mix, waste, per-run spread, reliability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument("--since", help="the last N hours/days/weeks/months: 24h, 7d, 4w, 3m (default: everything)")
    when.add_argument("--period", help="a calendar period (UTC): 2026-11, 2026-11-05, 2026 or 2026-W45")
    p.add_argument(
        "--by",
        default=",".join(DEFAULT_BY),
        help=f"tables to show, comma-separated from {','.join(DIMENSIONS)} (default: %(default)s)",
    )
    p.add_argument("--env", help="only this deployment environment")
    p.add_argument(
        "--source",
        help="sqlite:///path/ledger.db (default: $TOKENMETER_LEDGER or the user data "
        "directory's ledger), or prometheus=http://host:9090 (also victoriametrics=, "
        "mimir=, thanos=) when tokenmeter.finops.prometheus is installed",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the report model as JSON")
    fmt.add_argument("--csv", action="store_true", help="print the By-tables as CSV")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML page (tokenmeter.finops.html)")
    p.add_argument("--plain", action="store_true", help="plain-text tables even on a terminal with rich installed")
    p.add_argument("--chargeback", metavar="FILE", help=cli_help())
    p.set_defaults(func=run)


def window(
    since: str | None, period: str | None, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """``[start, end)`` of ``--since`` / ``--period`` (``None``: unbounded)."""
    now = now or datetime.now(UTC)
    if since:
        m = _SINCE.match(since.strip())
        if not m:
            raise ReportError(f"--since {since!r}: use a number and h, d, w or m, such as 24h, 7d, 4w, 3m")
        n, unit = int(m.group(1)), m.group(2)
        if unit == "h":
            end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            return end - timedelta(hours=n), end
        end = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        return end - timedelta(days=n * {"d": 1, "w": 7, "m": 30}[unit]), end
    if period:
        return _period(period.strip())
    return None, None


def _period(text: str) -> tuple[datetime, datetime]:
    try:
        if re.fullmatch(r"\d{4}", text):
            y = int(text)
            return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC)
        if re.fullmatch(r"\d{4}-\d{2}", text):
            y, mo = map(int, text.split("-"))
            start = datetime(y, mo, 1, tzinfo=UTC)
            return start, datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=UTC)
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            start = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return start, start + timedelta(days=1)
        m = re.fullmatch(r"(\d{4})-W(\d{2})", text)
        if m:
            start = datetime.fromisocalendar(int(m.group(1)), int(m.group(2)), 1).replace(tzinfo=UTC)
            return start, start + timedelta(days=7)
    except ValueError:
        pass
    raise ReportError(
        f"--period {text!r} is not a period: use 2026-11 (a month), 2026-11-05 (a day), 2026-W45 "
        "(an ISO week) or 2026 (a year)"
    )


def open_source(source: str | None) -> Any:
    """The reader of ``--source`` (default: ``TOKENMETER_LEDGER`` or the user data directory's ledger)."""
    value = source or os.environ.get("TOKENMETER_LEDGER") or "default"
    if value in ("none", "off"):
        raise ReportError("the ledger is off (TOKENMETER_LEDGER=none): give --source sqlite:///path/ledger.db")
    if value == "memory":
        raise ReportError(
            "--source memory is a running process's own meter: call meter.report() in it, or read "
            "its ledger with --source sqlite:///path"
        )
    if value.split("=", 1)[0] in _TSDB_KINDS and "=" in value:
        try:
            module = importlib.import_module("tokenmeter.finops.prometheus")
        except ImportError:
            raise ReportError(f"--source {value}: needs tokenmeter.finops.prometheus, not in this version") from None
        try:
            return module.open_source(value)
        except Exception as exc:
            raise ReportError(str(exc)) from None
    if value != "default" and not value.startswith("sqlite:///"):
        raise ReportError(f"--source {value!r}: use sqlite:///path/ledger.db")
    path = ledger_path(value)
    assert path is not None
    try:
        return SQLiteReader(path)
    except LedgerFileError as exc:
        raise ReportError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Run ``tokenmeter report``; returns the exit status."""
    try:
        return _run(args)
    except (ReportError, ConfigError) as exc:
        print(f"tokenmeter report: {exc}", file=sys.stderr)
        return 2
    except LedgerFileError as exc:
        print(f"tokenmeter report: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if type(exc).__name__.endswith("SourceError"):  # a source that is down or holds no tokenmeter series
            print(f"tokenmeter report: {exc}", file=sys.stderr)
            return 1
        raise


def _run(args: argparse.Namespace) -> int:
    by = [b.strip() for b in args.by.split(",") if b.strip()]
    unknown = [b for b in by if b not in DIMENSIONS]
    if unknown:
        raise ReportError(f"--by {','.join(unknown)}: unknown; use any of {','.join(DIMENSIONS)}")
    start, end = window(args.since, args.period)
    chargeback = Chargeback.from_option(getattr(args, "chargeback", None))
    reader = open_source(args.source)
    from .._prices import PriceBook

    console = None if args.plain or args.json or args.csv else _rich_console()
    if console is not None and not console.is_terminal:
        console = None  # piped or redirected: stable plain text, not tables sized for an 80-column guess
    if console is not None:  # a spinner while a long window is read
        with console.status(f"reading {reader.describe()} ..."):
            report = build_report(reader, start, end, env=args.env, by=by, prices=PriceBook(), chargeback=chargeback)
    else:
        report = build_report(reader, start, end, env=args.env, by=by, prices=PriceBook(), chargeback=chargeback)
    if report.empty:
        what = f" for env {args.env!r}" if args.env else ""
        raise ReportError(
            f"nothing metered in {reader.describe()}{what} in this window; widen --since / --period, "
            "or check --source and --env"
        )
    if args.html:
        try:
            html = importlib.import_module("tokenmeter.finops.html")
        except ImportError:
            raise ReportError("--html needs tokenmeter.finops.html, not in this version") from None
        html.write(args.html, reader, start, end, env=args.env, chargeback=chargeback)
    from ._render import render_rich, render_text, to_csv, to_json

    if args.json:
        print(json.dumps(to_json(report), indent=2))
    elif args.csv:
        sys.stdout.write(to_csv(report))
    else:
        if console is None:
            sys.stdout.write(render_text(report))
        else:
            render_rich(report, console)
    return 0


def _rich_console() -> Any:
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(soft_wrap=True)
