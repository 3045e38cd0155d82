"""The ``tokenmeter`` command.

``tokenmeter budgets`` prints each budget's current window, settled spend, live reservations and
utilization, read from a shared budget store::

    tokenmeter budgets --store sqlite:////var/lib/app/budgets.db --budgets budgets.toml
    TOKENMETER_STORE=redis://127.0.0.1:6379/0 TOKENMETER_BUDGETS=budgets.json tokenmeter budgets --json

The budgets file is TOML (``[[budget]]`` tables) or JSON (a list of objects), with the keyword names of
:class:`tokenmeter.Budget`. The in-memory store lives inside the metered process, so it cannot be read here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ._errors import ConfigError
from .finops import _cli_export, _cli_forecast
from .governance import Budget, StoreUnavailable, load_budgets, open_store
from .governance._signals import utilization
from .governance._stores import BucketState, from_nano
from .governance._windows import bounds, label


def _usd(value: Decimal) -> str:
    return f"${value.quantize(Decimal('0.000001')).normalize():f}"


def _row(budget: Budget, state: BucketState, now: float, entity: str = "") -> dict[str, Any]:
    start, end = bounds(budget.window, now)
    limit_usd, limit_tokens, _ = budget.limits(entity)
    return {
        "budget": f"{budget.name}[{entity}]" if budget.template else budget.name,
        "owner": budget.owner,
        "scope": dict(budget.scope),
        "window": budget.window,
        "window_start": label(start),
        "window_end": label(end),
        "action": budget.action,
        "spent_usd": str(from_nano(state.spent_usd).normalize()),
        "spent_tokens": state.spent_tokens,
        "reserved_usd": str(from_nano(state.reserved_usd).normalize()),
        "reserved_tokens": state.reserved_tokens,
        "reservations": state.reservations,
        "limit_usd": None if limit_usd is None else str(limit_usd),
        "limit_tokens": limit_tokens,
        "utilization": round(
            utilization(budget, state, budget.lines(now, 0, 0, 0.0, entity)[0])
            if limit_usd is not None or limit_tokens is not None
            else 0.0,
            6,
        ),
    }


def _amounts(usd: str | None, tokens: int | None) -> str:
    parts = []
    if usd is not None:
        parts.append(_usd(Decimal(usd)))
    if tokens is not None:
        parts.append(f"{tokens:,} tok")
    return " / ".join(parts)


def _table(rows: Sequence[dict[str, Any]]) -> str:
    header = ("BUDGET", "SCOPE", "WINDOW (UTC)", "SPENT", "RESERVED", "LIMIT", "USED")
    lines = [header]
    for r in rows:
        has_usd, has_tokens = r["limit_usd"] is not None, r["limit_tokens"] is not None
        lines.append(
            (
                r["budget"],
                ",".join(f"{k}={v}" for k, v in r["scope"].items()) or "*",
                f"{r['window']} {r['window_start']}..{r['window_end']}",
                _amounts(r["spent_usd"] if has_usd else None, r["spent_tokens"] if has_tokens else None),
                _amounts(r["reserved_usd"] if has_usd else None, r["reserved_tokens"] if has_tokens else None)
                + f" ({r['reservations']})",
                _amounts(r["limit_usd"], r["limit_tokens"]),
                f"{r['utilization'] * 100:.1f}%",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def _budgets_command(args: argparse.Namespace) -> int:
    store_url = args.store or os.environ.get("TOKENMETER_STORE") or "memory"
    path = args.budgets or os.environ.get("TOKENMETER_BUDGETS")
    if not path:
        print("tokenmeter budgets: give --budgets FILE (.toml or .json) or set TOKENMETER_BUDGETS", file=sys.stderr)
        return 2
    if store_url.startswith("sqlite:"):
        from .governance._stores import sqlite_path

        db = sqlite_path(store_url)
        if db is not None and not os.path.isfile(db):
            # A read-only command never creates a store: a mistyped path would print an empty budget.
            print(
                f"tokenmeter budgets: no SQLite budget store at {db} (check the path; it is created by the "
                "metered process's configure(store=...))",
                file=sys.stderr,
            )
            return 2
    if store_url == "memory":
        print(
            "tokenmeter budgets: the memory store lives inside the metered process; give --store "
            "sqlite:///path or redis://host:port/db (or set TOKENMETER_STORE)",
            file=sys.stderr,
        )
        return 2
    try:
        budgets = load_budgets(path)
        store = open_store(store_url)
    except ConfigError as exc:
        print(f"tokenmeter budgets: {exc}", file=sys.stderr)
        return 2
    now = time.time()
    try:
        entity = args.entity or ""
        rows = [_row(b, store.state(b.key(now, entity), now), now, entity) for b in budgets if entity or not b.template]
    except StoreUnavailable as exc:
        print(f"tokenmeter budgets: the budget store is unavailable: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(json.dumps(rows, indent=2) if args.json else _table(rows))
    return 0


def _version() -> str:
    from ._meter import _version as version

    return version()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tokenmeter`` console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="tokenmeter", description="tokenmeter command line")
    parser.add_argument("--version", action="version", version=f"tokenmeter {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    budgets = commands.add_parser("budgets", help="print each budget's window, spend, reservations and utilization")
    budgets.add_argument("--store", help="budget store URL (default: $TOKENMETER_STORE)")
    budgets.add_argument("--budgets", help="budgets file, .toml or .json (default: $TOKENMETER_BUDGETS)")
    budgets.add_argument("--json", action="store_true", help="print JSON instead of a table")
    budgets.add_argument(
        "--entity",
        help="show per-entity (template) budgets for this customer/user id (templates are left out without it)",
    )
    budgets.set_defaults(func=_budgets_command)
    from .finops import _cli_report

    _cli_report.add_parser(commands)
    _cli_forecast.add_parser(commands)
    _cli_export.add_parser(commands)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
