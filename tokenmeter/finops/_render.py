"""Rendering a :class:`~tokenmeter.finops.report.Report`: plain text, rich tables, JSON and CSV.

Every renderer reads the same :class:`Report`; ``rich`` (the ``[report]`` extra) only changes the look of
the tables, and without it the plain-text tables are printed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._units import measure
from .chargeback import format_rate

if TYPE_CHECKING:
    from .report import Figures, Report, WorkflowRuns

Table = tuple[str, list[str], list[list[str]]]  # title, header, rows


def usd(value: Decimal | None) -> str:
    """Dollars with six decimals; ``None`` (unknown price) is ``unpriced``, never ``$0``."""
    return "unpriced" if value is None else f"{value:.6f}"


def pct(value: float | None) -> str:
    """A share as a percentage."""
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(n: float) -> str:
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"


def tables(r: Report) -> list[Table]:
    """The report's tables (title, header, rows) in print order."""
    out: list[Table] = []
    cb = r.chargeback
    for dim, groups in r.by.items():
        waste = dim in ("team", "workflow", "agent", "env", "customer")
        center = cb is not None and dim == cb.cost_center
        header = [dim, "calls", "blocked", "tokens", "cost USD"]
        header += (["rate"] if center else []) + (["charge USD"] if cb is not None else [])
        header += ["unpriced tok"] + (["wasted tok"] if waste else [])
        rows = [
            [
                g.name,
                f"{g.calls:,}",
                f"{g.blocked:,}",
                f"{g.tokens:,}",
                "unpriced" if g.all_unpriced else usd(g.cost),
            ]
            + ([format_rate(g.rate) if g.rate is not None else "-"] if center else [])
            + ([charge_text(g)] if cb is not None else [])
            + [f"{g.unpriced_tokens:,}"]
            + ([f"{g.wasted_tokens:,}"] if waste else [])
            for g in groups
        ]
        if rows:
            out.append((f"By {dim}", header, rows))
    classes = [
        [c, f"{f.tokens:,}", "unpriced" if f.all_unpriced else usd(f.cost)]
        for c, f in r.token_classes.items()
        if f.tokens
    ]
    if classes:
        out.append(("By token class", ["token class", "tokens", "cost USD"], classes))
    if r.units:
        out.append(
            (
                "Unit charges (per-request units beside the tokens)",
                ["unit", "count", "counted in", "cost USD"] + (["charge USD"] if cb is not None else []),
                [
                    [
                        u.name,
                        f"{u.count:,}",
                        measure(u.name).consumed,
                        usd(u.cost) + (f" + {u.unpriced:,} unpriced" if u.unpriced else ""),
                    ]
                    + ([usd(u.charge) if u.charge is not None else "unpriced"] if cb is not None else [])
                    for u in r.units.values()
                ],
            )
        )
    if r.tier_mix:
        out.append(
            ("Tier mix", ["tier", "share of calls", "share of spend"], [[t, pct(c), pct(s)] for t, c, s in r.tier_mix])
        )
    if r.workflows:
        estimated = any(w.estimated for w in r.workflows)
        folded = r.reliability.folded
        out.append(
            (
                "Per run (tokens and cost per workflow run"
                + (", estimated from run histograms; max is the top bucket's bound" if estimated else "")
                + (f"; percentiles over the runs kept one by one, {folded:,} folded" if folded else "")
                + ")",
                ["workflow", "runs", "p50", "p95", "p99", "max", "p99/p50", "cost p50", "cost p99", "worst run"]
                + (["kept"] if folded else []),
                [
                    [
                        w.workflow,
                        f"{w.runs:,}",
                        *_spread_cells(w),
                        w.worst[0][0] if w.worst else "-",
                    ]
                    + ([f"{w.kept:,}"] if folded else [])
                    for w in r.workflows
                ],
            )
        )
        out.append(
            (
                "Unit economics per workflow",
                [
                    "workflow",
                    "tokens/task",
                    "x one call",
                    "calls/run",
                    "steps p50",
                    "success",
                    "cost USD",
                    "per run",
                    "per success",
                ],
                [
                    [
                        w.workflow,
                        _num(round(w.tokens_per_task)),
                        f"{w.tokens_per_task / w.tokens_per_call:.1f}x" if w.tokens_per_call else "-",
                        f"{w.calls_per_run:.1f}",
                        f"{w.steps.p50:,}" if w.kept else "-",
                        f"{w.succeeded}/{w.runs} ({pct(w.succeeded / w.runs)})",
                        usd(w.total_cost) + (f" +{w.unpriced_runs:,} unpriced runs" if w.unpriced_runs else ""),
                        usd(w.cost_per_run),
                        usd(w.cost_per_success),
                    ]
                    for w in r.workflows
                ],
            )
        )
    rel = r.reliability
    if rel.by_depth:
        out.append(
            (
                "Step success by depth"
                + (f" (over the runs kept one by one, {rel.folded:,} folded)" if rel.folded else ""),
                ["depth", "ok", "failed", "success"],
                [
                    [str(d), f"{o:,}", f"{f:,}", pct(o / (o + f) if o + f else None)]
                    for d, (o, f) in rel.by_depth.items()
                ],
            )
        )
    return out


def _spread_cells(w: WorkflowRuns) -> list[str]:
    """Percentiles of a workflow's runs: ``-`` when every run was folded (no run kept one by one)."""
    if not w.kept and not w.estimated:
        return ["-"] * 7
    return [
        f"{w.tokens.p50:,}",
        f"{w.tokens.p95:,}",
        f"{w.tokens.p99:,}",
        f"{w.tokens.max:,}",
        "-" if w.multiplier is None else f"{w.multiplier:.1f}x",
        f"{w.cost.p50:.6f}",
        f"{w.cost.p99:.6f}",
    ]


def charge_text(g: Figures) -> str:
    """A group's chargeback charge: ``unpriced`` when every token is (no cost, so no charge)."""
    return "unpriced" if g.all_unpriced or g.charge is None else usd(g.charge)


def summary_lines(r: Report) -> list[str]:
    """The headline lines above the tables."""
    t = r.total
    env = f", env {r.env}" if r.env else ""
    lines = [f"tokenmeter report: {r.source}, {_span(r.start, r.end)}{env}"]
    lines.append(
        f"Total: {t.calls:,} calls sent ({t.blocked:,} blocked before sending), {t.tokens:,} tokens, "
        f"${usd(t.cost)}" + (f" + {t.unpriced_tokens:,} unpriced tokens" if t.unpriced_tokens else "")
    )
    if r.chargeback is not None:
        cb, charge = r.chargeback, t.charge or Decimal(0)
        overall = f" ({float(charge / t.cost - 1) * 100:+.2f}% overall)" if t.cost else ""
        lines.append(
            f"Chargeback {cb.describe()} ({cb.source}): charge ${usd(charge)} for a cost of ${usd(t.cost)}"
            + overall
            + ("; unpriced tokens carry no charge" if t.unpriced_tokens else "")
        )
    if t.estimated_tokens:
        lines.append(f"Estimated (counted locally, not reported by the provider): {t.estimated_tokens:,} tokens")
    if t.tokens:
        lines.append(
            f"Wasted on retries and failed steps: {t.wasted_tokens:,} tokens ({pct(r.wasted_share)}), "
            f"${usd(t.wasted_cost)}"
        )
    if r.cache_read_share:
        saved = "" if r.cache_saved_usd is None else f", saving ${usd(r.cache_saved_usd)} against uncached prices"
        lines.append(f"Cache: {pct(r.cache_read_share)} of input tokens were cache reads{saved}")
    rel = r.reliability
    if rel.runs:
        implied = rel.implied
        lines.append(
            f"Reliability: {rel.succeeded:,} of {rel.runs:,} runs succeeded ({pct(rel.observed)}); "
            f"steps succeed {pct(rel.per_step)}, which over {rel.mean_steps:.1f} steps per run implies "
            f"{pct(implied)} end to end (observed {pct(rel.observed)})"
        )
        lines.append(
            f"Cost per successful run: ${usd(r.cost_per_success)} (${usd(r.runs_total_cost)} over "
            f"{rel.succeeded:,} successful runs; failed and stopped runs are charged to them)"
        )
        note = r.runs_note
        if note:
            lines.append(f"Note: {note}")
    uncounted = sum((u.uncounted_cost for u in r.units.values()), Decimal(0))
    if uncounted:
        lines.append(
            f"Unit charges of ${usd(uncounted)} have no count in this source (a ledger written before "
            "tokenmeter kept unit counts, or a TSDB): their cost is in the totals"
        )
    if r.unpriced_by_model:
        models = ", ".join(f"{m} {n:,}" for m, n in r.unpriced_by_model.items())
        lines.append(
            f"Unpriced: {sum(r.unpriced_by_model.values()):,} tokens have no price ({models}); counted, "
            "never billed as $0: add configure(prices=...) with your rate"
        )
    return lines


def _span(start: datetime, end: datetime) -> str:
    if start.year <= 1970 and end.year >= 2200:
        return "all time"
    return f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC"


def _plain_table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    widths[0] = max(widths[0], 24)
    lines = [f"{title}:"]
    for line in [header, *rows]:
        lines.append(
            "  "
            + "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
    return "\n".join(lines)


def render_text(r: Report) -> str:
    """The report as plain text."""
    if r.empty:
        return f"tokenmeter report: {r.source}, {_span(r.start, r.end)}: nothing metered in this window.\n"
    parts = ["\n".join(summary_lines(r))]
    parts += [_plain_table(*t) for t in tables(r)]
    if r.workflows:
        parts.append("\n".join(worst_lines(r)))
    return "\n\n".join(parts) + "\n"


def worst_lines(r: Report) -> list[str]:
    """The worst runs' ids per workflow, to open in a trace UI."""
    return [
        "Worst runs (tokenmeter.run.id, to open in a trace UI):",
        *(
            f"  {w.workflow}: " + ", ".join(f"{rid} ({n:,} tok)" for rid, n in w.worst[:2])
            for w in r.workflows
            if w.worst
        ),
    ]


def render_rich(r: Report, console: Any) -> None:
    """Print the report with ``rich`` tables on ``console`` (a ``rich.console.Console``)."""
    from rich.table import Table as RichTable

    if r.empty:
        console.print(render_text(r), end="")
        return
    for line in summary_lines(r):
        console.print(line, highlight=False)
    for title, header, rows in tables(r):
        table = RichTable(title=title, title_justify="left", show_edge=False)
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for row in rows:
            table.add_row(*row)
        console.print()
        console.print(table)
    if r.workflows:
        console.print()
        for line in worst_lines(r):
            console.print(line, highlight=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def to_json(r: Report) -> dict[str, Any]:
    """The report as JSON-ready data (decimals as strings: exact)."""
    data = {k: _plain(v) for k, v in (asdict(r) if is_dataclass(r) else {}).items()}
    rel = r.reliability
    data["reliability"].update(observed=rel.observed, per_step=rel.per_step, implied=rel.implied)
    data["wasted_share"] = r.wasted_share
    data["runs_note"] = r.runs_note
    data["chargeback"] = None if r.chargeback is None else r.chargeback.to_dict()
    return data


def to_csv(r: Report, dims: Sequence[str] | None = None) -> str:
    """One CSV row per (dimension, group): the ``By ...`` tables, for spreadsheets and FinOps tools."""
    buf = io.StringIO()
    w = csv.writer(buf)
    cb = r.chargeback
    extra = [] if cb is None else ["charge_usd", "chargeback_rate"]
    w.writerow(
        [
            "dimension",
            "name",
            "calls",
            "errors",
            "blocked",
            "tokens",
            "cost_usd",
            "list_cost_usd",
            "unpriced_tokens",
            "estimated_tokens",
            "wasted_tokens",
            "wasted_cost_usd",
            *extra,
            "units",
            "unpriced_units",
        ]
    )
    # with a chargeback, a last "total" row carries both totals (the statement a customer is sent)
    rows = [(dim, g) for dim, groups in r.by.items() if dims is None or dim in dims for g in groups]
    if cb is not None:
        rows.append(("total", r.total))
    for dim, g in rows:
        w.writerow(
            [
                dim,
                g.name,
                g.calls,
                g.errors,
                g.blocked,
                g.tokens,
                "" if g.all_unpriced else str(g.cost),
                str(g.list_cost),
                g.unpriced_tokens,
                g.estimated_tokens,
                g.wasted_tokens,
                str(g.wasted_cost),
                *(
                    []
                    if cb is None
                    else ["" if g.charge is None else str(g.charge), "" if g.rate is None else str(g.rate)]
                ),
                "",
                "",
            ]
        )
    if dims is None or "unit" in dims:  # one row per unit charged: its count beside its cost
        for u in r.units.values():
            w.writerow(
                [
                    "unit",
                    u.name,
                    "",
                    "",
                    "",
                    0,
                    str(u.cost),
                    str(u.list_cost),
                    0,
                    0,
                    0,
                    "0",
                    *([] if cb is None else ["" if u.charge is None else str(u.charge), ""]),
                    u.count,
                    u.unpriced,
                ]
            )
    return buf.getvalue()
