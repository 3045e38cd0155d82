"""How long `tokenmeter forecast` and `tokenmeter export focus` take at fleet size (issue 12's targets).

    .venv/bin/python benchmarks/finops_outputs.py [--workflows 40] [--envs 3] [--days 365] [--reps 3]

Input: a year of daily usage rows for 40 workflows x 3 envs (input + output token classes, so 87,600 rows),
held in memory. Timed, best of ``--reps``:

* ``forecast``: ``tokenmeter.finops.forecast.forecast()`` over all rows (120 series: 30-day projections,
  last week's variance) -- target <= 3 s; also the whole CLI (`tokenmeter forecast --json --history 365`,
  parsing, the reader's read, forecast, scenarios, JSON) with the reader's rows already daily;
  ``--method ets`` is timed on a tenth of the series, as it is far slower (statsmodels Holt-Winters per series);
* ``export focus``: ``focus_rows()`` for one month of the same rows and writing the CSV (and Parquet) --
  target <= 5 s; then again with a chargeback definition (``--chargeback``: a rate per workflow, the x_ columns
  added), to show what it adds. ``--focus-only`` skips the forecast timings.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tokenmeter.finops
from tokenmeter.cli import main as cli
from tokenmeter.finops import Chargeback, UsageRow
from tokenmeter.finops.focus import focus_rows, month_bounds
from tokenmeter.finops.forecast import forecast
from tokenmeter.testing.finops import synthetic_usage

WEEKDAY = (3000.0, 2500.0, 2000.0, 1500.0, 1000.0, -4000.0, -6000.0)


class DailyRows:
    """A reader whose rows are already daily (so the timing is tokenmeter's, not a test reader's)."""

    def __init__(self, rows: list[UsageRow]) -> None:
        self.rows = rows

    def describe(self) -> str:
        return "benchmark rows"

    def usage(
        self, start: datetime, end: datetime, *, env: str | None = None, granularity: str = "day"
    ) -> Iterator[UsageRow]:
        return (r for r in self.rows if start <= r.start < end)

    def runs(self, start: datetime, end: datetime, *, env: str | None = None) -> Iterator[Any]:
        return iter(())


def best(reps: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workflows", type=int, default=40)
    p.add_argument("--envs", type=int, default=3)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--focus-only", action="store_true", help="time only the FOCUS export (chargeback off and on)")
    args = p.parse_args()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=args.days)
    workflows = [f"wf{i:02d}" for i in range(args.workflows)]
    envs = ["prod", "staging", "dev"][: args.envs] + [f"env{i}" for i in range(3, args.envs)]
    rows = synthetic_usage(
        start=start,
        days=args.days,
        workflows=workflows,
        envs=envs,
        level=2_000_000,
        slope=2_000,
        weekday=WEEKDAY,
        noise=50_000,
    )
    series = args.workflows * args.envs
    print(
        f"{len(rows):,} daily rows: {args.workflows} workflows x {args.envs} envs x {args.days} days "
        f"x 2 token classes ({series} series); Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )

    if not args.focus_only:
        forecasts(args, rows, today, workflows, series)
    export_focus(args, rows, today, workflows)
    return 0


def forecasts(
    args: argparse.Namespace, rows: list[UsageRow], today: datetime, workflows: list[str], series: int
) -> None:
    """The forecast timings."""
    t = best(args.reps, lambda: forecast(rows, as_of=today.date(), by=("workflow", "env")))
    print(f"forecast() trend, {series} series:             {t:6.2f} s   (target <= 3 s)")

    reader = DailyRows(rows)
    tokenmeter.finops.reader_for = lambda source: reader  # type: ignore[attr-defined]
    devnull = open(os.devnull, "w")
    real_stdout = sys.stdout

    def run_cli() -> None:
        sys.stdout = devnull
        try:
            assert cli(["forecast", "--json", "--history", str(args.days), "--scenario", "price=-90% demand=10x"]) == 0
        finally:
            sys.stdout = real_stdout

    t = best(args.reps, run_cli)
    print(f"tokenmeter forecast --json (CLI), {series} series: {t:6.2f} s   (target <= 3 s)")

    try:
        import statsmodels  # noqa: F401

        few = [r for r in rows if r.workflow in workflows[: max(1, args.workflows // 10)]]
        n = max(1, args.workflows // 10) * args.envs
        t = best(1, lambda: forecast(few, as_of=today.date(), method="ets"))
        print(f"forecast() ets (statsmodels), {n} series:        {t:6.2f} s   ({t / n * series:.0f} s for {series})")
    except ImportError:
        print("forecast() ets: statsmodels not installed (tokenmeter[forecast])")


def export_focus(args: argparse.Namespace, rows: list[UsageRow], today: datetime, workflows: list[str]) -> None:
    """The FOCUS export timings, chargeback off and on."""
    month = (today - timedelta(days=1)).strftime("%Y-%m")
    m_start, _ = month_bounds(month)
    prev = (m_start - timedelta(days=1)).strftime("%Y-%m")
    p_start, p_end = month_bounds(prev)  # a full month

    # a markup per workflow: a quarter at +25 %, a quarter at -10 %, the rest at the +15 % default
    rates = {w: ("+25%" if i % 4 == 0 else "-10%") for i, w in enumerate(workflows) if i % 4 < 2}
    charge = Chargeback(rates, default="+15%", cost_center="workflow")

    def export_csv(chargeback: Chargeback | None = None) -> int:
        export = focus_rows(rows, period_start=p_start, period_end=p_end, chargeback=chargeback)
        buf = io.StringIO()
        export.to_csv(buf)
        return len(export.rows)

    def export_parquet(chargeback: Chargeback | None, path: str) -> None:
        focus_rows(rows, period_start=p_start, period_end=p_end, chargeback=chargeback).to_parquet(path)

    n_rows = export_csv()
    for label, cb in (("", None), (" + chargeback", charge)):
        t = best(args.reps, functools.partial(export_csv, cb))
        print(f"export focus {prev} CSV{label} ({n_rows:,} FOCUS rows):  {t:6.2f} s   (target <= 5 s)")
    try:
        import pyarrow  # noqa: F401

        for label, cb in (("", None), (" + chargeback", charge)):
            with tempfile.TemporaryDirectory() as tmp:
                t = best(args.reps, functools.partial(export_parquet, cb, os.path.join(tmp, "f.parquet")))
            print(f"export focus {prev} Parquet{label}:                    {t:6.2f} s   (target <= 5 s)")
    except ImportError:
        print("export focus Parquet: pyarrow not installed (tokenmeter[focus])")


if __name__ == "__main__":
    raise SystemExit(main())
