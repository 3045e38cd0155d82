"""``tokenmeter export focus``: one month of usage as FinOps FOCUS 1.2 Cost and Usage rows (CSV or Parquet).

tokenmeter export focus --period 2026-11 [--out FILE] [--format csv|parquet] [--unpriced omit|flag]
                        [--source S] [--billing-account NAME] [--chargeback FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ._cli_common import CommandError, open_reader, run
from .chargeback import Chargeback, cli_help
from .focus import focus_rows, month_bounds

PROG = "tokenmeter export focus"


def add_parser(subparsers: Any) -> None:
    """Register ``export`` (with its ``focus`` format) on the ``tokenmeter`` command's subparsers."""
    export = subparsers.add_parser("export", help="export usage for FinOps tools (FOCUS)")
    formats = export.add_subparsers(dest="export_format", required=True)
    p = formats.add_parser(
        "focus",
        help="FinOps FOCUS 1.2 Cost and Usage rows for one month",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--period", required=True, help="the billing month, YYYY-MM (UTC)")
    p.add_argument("--out", help="file to write (default: standard output; Parquet needs --out)")
    p.add_argument("--format", choices=("csv", "parquet"), help="default: from --out's suffix, else csv")
    p.add_argument("--source", help="where usage is read from (default: the local ledger)")
    p.add_argument("--env", help="only this environment (default: all)")
    p.add_argument(
        "--billing-account",
        default=os.environ.get("TOKENMETER_FOCUS_ACCOUNT", "tokenmeter"),
        help="BillingAccountId/Name (default: $TOKENMETER_FOCUS_ACCOUNT or tokenmeter)",
    )
    p.add_argument(
        "--unpriced",
        choices=("omit", "flag"),
        default="omit",
        help="tokens (and unit charges) without a price: omit them (default; counted on stderr) or write them "
        "with zero costs and x_Unpriced=true",
    )
    p.add_argument("--chargeback", metavar="FILE", help=cli_help())
    p.set_defaults(func=lambda args: run(PROG, lambda: _command(args)))


def _command(args: argparse.Namespace) -> int:
    try:
        start, end = month_bounds(args.period)
    except ValueError as exc:
        raise CommandError(str(exc), 2) from None
    if start > datetime.now(UTC):
        raise CommandError(f"period {args.period} has not started yet", 2)
    fmt = args.format or ("parquet" if args.out and Path(args.out).suffix.lower() == ".parquet" else "csv")
    if fmt == "parquet":
        if not args.out:
            raise CommandError("Parquet output needs --out FILE", 2)
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise CommandError("Parquet output needs pyarrow: pip install 'tokenmeter[focus]'", 2) from None
    try:
        chargeback = Chargeback.from_option(getattr(args, "chargeback", None))
    except ConfigError as exc:
        raise CommandError(str(exc), 2) from None
    reader = open_reader(args.source)
    if chargeback is not None:
        try:
            chargeback.check_reader(reader)
        except ConfigError as exc:
            raise CommandError(str(exc), 2) from None
    export = focus_rows(
        reader.usage(start, end, env=args.env, granularity="day"),
        period_start=start,
        period_end=end,
        billing_account=args.billing_account,
        unpriced=args.unpriced,
        chargeback=chargeback,
    )
    if not export.rows:
        detail = (
            f" ({export.unpriced_tokens:,} unpriced tokens were left out: --unpriced flag writes them)"
            if export.unpriced_tokens
            else ""
        )
        raise CommandError(f"no usage in {reader.describe()} for {args.period}{detail}")
    try:
        if fmt == "parquet":
            export.to_parquet(args.out)
        elif args.out:
            with open(args.out, "w", encoding="utf-8", newline="") as f:
                export.to_csv(f)
        else:
            export.to_csv(sys.stdout)
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc}") from None
    if export.unpriced_tokens:
        what = "left out" if args.unpriced == "omit" else "written with x_Unpriced=true and zero costs"
        print(
            f"{PROG}: {export.unpriced_tokens:,} tokens have no price and were {what}; FOCUS costs cannot be "
            "unknown, and tokenmeter never reports an unknown price as $0",
            file=sys.stderr,
        )
    if export.unpriced_units:
        what = "left out" if args.unpriced == "omit" else "written with x_Unpriced=true and zero costs"
        units = ", ".join(f"{n:,} {unit}" for unit, n in sorted(export.unpriced_units.items()))
        print(f"{PROG}: unit charges without a published rate ({units}) were {what}", file=sys.stderr)
    if export.uncounted_unit_cost:
        print(
            f"{PROG}: unit charges of ${export.uncounted_unit_cost:f} have no count in {reader.describe()} "
            "(written before the ledger kept unit counts) and were left out: FOCUS needs a consumed quantity",
            file=sys.stderr,
        )
    if args.out:
        print(f"{PROG}: wrote {len(export.rows):,} rows for {args.period} to {args.out}", file=sys.stderr)
    return 0
