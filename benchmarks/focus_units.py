"""What a FOCUS row costs with unit charges in the export: CPU time per row, interleaved A/B in one process.

    .venv/bin/python benchmarks/focus_units.py [--workflows 40] [--envs 3] [--rounds 7] [--base /path/to/old/tree]

Input: one month (30 days) of daily rows for ``--workflows`` x ``--envs`` (``finops_outputs.py``'s shape: input and
output token rows), and the same month with two unit rows per workflow x env x day added (web searches and Gemini
cache storage token-seconds, each with a count and a cost), so the export has twice the rows. Each round runs
``focus_rows()`` + CSV once per variant, in turn (the order rotating each round), and takes ``time.process_time``
(CPU of this process: other processes on a shared machine disturb it far less than wall time); the figure is the
median over rounds of CPU per FOCUS row written.

* ``tokens``: token rows only, this tree's ``focus_rows``;
* ``tokens + units``: token and unit rows, this tree's ``focus_rows``;
* ``tokens, base``: with ``--base``, token rows through the ``focus.py`` of another checkout (e.g. main before
  unit rows: ``git worktree add --detach /tmp/base main``), loaded beside this one, to show what the unit
  branch costs token rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tokenmeter.finops import UsageRow
from tokenmeter.finops.focus import focus_rows, month_bounds
from tokenmeter.testing.finops import synthetic_usage


def unit_rows(rows: list[UsageRow]) -> list[UsageRow]:
    """Two unit rows beside each input row: web searches ($10 / 1,000) and cache storage ($1 / 1M token-hours)."""
    out = []
    for r in rows:
        if r.token_class != "input":
            continue
        searches = 1 + r.tokens % 997
        token_seconds = 3600 * (1 + r.tokens % 5000)
        for unit, n, usd in (
            ("web_search", searches, Decimal(searches) / 100),
            ("cache_storage", token_seconds, Decimal(token_seconds) / Decimal(3_600_000_000)),
        ):
            out.append(replace(r, token_class=unit, tokens=0, calls=0, units=n, cost_usd=usd, list_cost_usd=usd))
    return out


def load_base(tree: str) -> Callable[..., Any]:
    """``focus_rows`` of another checkout's ``tokenmeter/finops/focus.py``, its relative imports bound to this tree."""
    source = Path(tree, "tokenmeter", "finops", "focus.py").read_text()
    source = source.replace("from ._rows import", "from tokenmeter.finops._rows import")
    source = source.replace("from .chargeback import", "from tokenmeter.finops.chargeback import")
    source = source.replace("from ._units import", "from tokenmeter.finops._units import")
    source = source.replace("from .._usage import", "from tokenmeter._usage import")
    spec = importlib.util.spec_from_loader("focus_base", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["focus_base"] = module
    exec(compile(source, f"{tree}/tokenmeter/finops/focus.py", "exec"), module.__dict__)
    fn: Callable[..., Any] = module.focus_rows
    return fn


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workflows", type=int, default=40)
    p.add_argument("--envs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--base", help="another checkout whose focus.py is timed on the token rows too")
    args = p.parse_args()
    start, end = month_bounds("2026-11")
    workflows = [f"wf{i:02d}" for i in range(args.workflows)]
    envs = ["prod", "staging", "dev"][: args.envs] + [f"env{i}" for i in range(3, args.envs)]
    tokens = synthetic_usage(start=start, days=30, workflows=workflows, envs=envs, level=2_000_000, noise=50_000)
    both = tokens + unit_rows(tokens)

    def run(fn: Callable[..., Any], rows: list[UsageRow]) -> tuple[float, int]:
        t0 = time.process_time()
        export = fn(rows, period_start=start, period_end=end)
        export.to_csv(io.StringIO())
        return time.process_time() - t0, len(export.rows)

    variants: list[tuple[str, Callable[..., Any], list[UsageRow]]] = [
        ("tokens", focus_rows, tokens),
        ("tokens + units", focus_rows, both),
    ]
    if args.base:
        variants.append(("tokens, base", load_base(args.base), tokens))
    per_row: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    counts: dict[str, int] = {}
    run(focus_rows, both)  # warm-up
    load = os.getloadavg()[0]
    for i in range(args.rounds):
        for name, fn, rows in variants[i % len(variants) :] + variants[: i % len(variants)]:  # rotated order
            cpu, n = run(fn, rows)
            per_row[name].append(cpu / n * 1e6)
            counts[name] = n
    print(
        f"focus_rows() + CSV, one month, {args.workflows} workflows x {len(envs)} envs; median of {args.rounds} "
        f"interleaved rounds, CPU; load average {load:.1f} -> {os.getloadavg()[0]:.1f}; "
        f"Python {sys.version.split()[0]}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    for name, values in per_row.items():
        med = statistics.median(values)
        print(f"  {name:16s} {counts[name]:7,} rows  {med:6.1f} us/row  ({med * counts[name] / 1e6:5.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
