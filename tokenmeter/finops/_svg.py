"""Hand-written inline SVG charts for the HTML report: no charting library, no network, nothing to install.

Each function returns one ``<svg>`` element as text. Every mark carries a ``<title>`` (the browser's own tooltip)
so the page stays readable without any script.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
W, H = 920, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 40


def money(v: float) -> str:
    """``$1,234.56`` / ``$0.50`` / ``$0.0042``: cents from 10 cents up, four significant digits below."""
    if v == 0:
        return "$0"
    if abs(v) >= 0.1:
        return f"${v:,.2f}"
    return f"${v:.4g}"


def short_money(v: float) -> str:
    """Axis labels: two significant digits (``$0.0027``, ``$1.3``, ``$1,200``)."""
    if v == 0:
        return "$0"
    if abs(v) >= 100:
        return f"${v:,.0f}"
    return f"${float(f'{v:.2g}'):g}"


def count(v: float) -> str:
    """``12.3k`` / ``4.5M`` style short numbers."""
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.4g}"


def nice_ticks(top: float, n: int = 4) -> list[float]:
    """0 and about ``n`` round steps up to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _frame(ticks: list[float], fmt: str, labels: Sequence[str], title: str) -> tuple[list[str], float, float]:
    """The axes: horizontal grid lines with their labels and the x labels (about 12 shown)."""
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    top = ticks[-1] or 1.0
    out = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">']
    for t in ticks:
        y = TOP + plot_h * (1 - t / top)
        text = money(t) if fmt == "money" else count(t)
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="ylab" x="{LEFT - 6}" y="{y + 4:.1f}">{text}</text>'
        )
    slot = plot_w / max(1, len(labels))
    every = max(1, math.ceil(len(labels) / 12))
    for i, label in enumerate(labels):
        if i % every == 0:
            x = LEFT + slot * (i + 0.5)
            out.append(f'<text class="xlab" x="{x:.1f}" y="{H - BOTTOM + 16}">{escape(label)}</text>')
    return out, plot_h / top, slot


def stacked_bars(
    labels: Sequence[str], series: Mapping[str, Sequence[float]], *, title: str, fmt: str = "money"
) -> str:
    """One bar per label, stacked by series (e.g. spend per day by team)."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    ticks = nice_ticks(max(totals, default=0.0))
    out, scale, slot = _frame(ticks, fmt, labels, title)
    bar = max(1.0, min(slot * 0.72, 56.0))
    for i, label in enumerate(labels):
        y = float(H - BOTTOM)
        x = LEFT + slot * i + (slot - bar) / 2
        for j, (name, values) in enumerate(series.items()):
            v = values[i]
            if v <= 0:
                continue
            h = v * scale
            y -= h
            shown = money(v) if fmt == "money" else count(v)
            out.append(
                f'<rect class="s{j % len(PALETTE)}" data-series="{escape(name)}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                f"<title>{escape(label)} · {escape(name)}: {shown}</title></rect>"
            )
    out.append("</svg>")
    return "".join(out)


def legend(names: Sequence[str]) -> str:
    """Coloured keys in the order of the chart's series."""
    items = "".join(
        f'<span class="key" data-series="{escape(n)}"><i style="background:{PALETTE[j % len(PALETTE)]}">'
        f"</i>{escape(n)}</span>"
        for j, n in enumerate(names)
    )
    return f'<div class="legend">{items}</div>'


def histogram(values: Sequence[float], markers: Mapping[str, float], *, title: str, fmt: str = "money") -> str:
    """Counts of ``values`` in log-spaced bins, with labelled vertical markers (p50, p99 ...)."""
    positive = sorted(v for v in values if v > 0)
    if not positive:
        return '<p class="empty">No runs with a positive value in this period.</p>'
    lo, hi = math.log10(positive[0]), math.log10(positive[-1])
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    bins = 24
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in positive:
        counts[min(bins - 1, int((math.log10(v) - lo) / width))] += 1
    ticks = nice_ticks(max(counts))
    edges = [10 ** (lo + width * i) for i in range(bins + 1)]
    fmt_v = money if fmt == "money" else count
    labels = [(short_money if fmt == "money" else count)(edges[i]) for i in range(bins)]
    out, scale, slot = _frame(ticks, "count", labels, title)
    for i, c in enumerate(counts):
        if c:
            h = c * scale
            x = LEFT + slot * i + 1
            out.append(
                f'<rect class="bin" x="{x:.1f}" y="{H - BOTTOM - h:.1f}" width="{slot - 2:.1f}" '
                f'height="{h:.1f}"><title>{fmt_v(edges[i])}&ndash;{fmt_v(edges[i + 1])}: {c} runs'
                "</title></rect>"
            )
    for k, (name, v) in enumerate(markers.items()):
        if v <= 0:
            continue
        x = LEFT + (math.log10(v) - lo) / width * slot
        out.append(
            f'<line class="marker m{k}" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{H - BOTTOM}"/>'
            f'<text class="mlab m{k}" x="{x + 4:.1f}" y="{TOP + 12 + 14 * k}">{escape(name)} {fmt_v(v)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def band(
    labels: Sequence[str],
    actual: Sequence[float | None],
    forecast: Sequence[tuple[float, float, float] | None],
    *,
    title: str,
) -> str:
    """Actual daily spend as a line, then the forecast's low-high band with its middle line."""
    top = max([v for v in actual if v is not None] + [f[2] for f in forecast if f is not None] + [0.0])
    ticks = nice_ticks(top)
    out, scale, slot = _frame(ticks, "money", labels, title)

    def xy(i: int, v: float) -> str:
        return f"{LEFT + slot * (i + 0.5):.1f},{H - BOTTOM - v * scale:.1f}"

    bands = [(i, f) for i, f in enumerate(forecast) if f is not None]
    if bands:
        upper = " ".join(xy(i, f[2]) for i, f in bands)
        lower = " ".join(xy(i, f[0]) for i, f in reversed(bands))
        out.append(f'<polygon class="band" points="{upper} {lower}"><title>forecast range</title></polygon>')
        out.append(f'<polyline class="mid" points="{" ".join(xy(i, f[1]) for i, f in bands)}"/>')
        for i, (lo, md, hi) in bands:
            x, y = xy(i, md).split(",")
            out.append(
                f'<circle class="fdot" cx="{x}" cy="{y}" r="2.5"><title>{escape(labels[i])} forecast '
                f"{money(md)} ({money(lo)}&ndash;{money(hi)})</title></circle>"
            )
    seen = [i for i, v in enumerate(actual) if v is not None]
    if seen:
        out.append(f'<polyline class="actual" points="{" ".join(xy(i, actual[i] or 0.0) for i in seen)}"/>')
        for i in seen:
            x, y = xy(i, actual[i] or 0.0).split(",")
            out.append(
                f'<circle class="adot" cx="{x}" cy="{y}" r="2.5">'
                f"<title>{escape(labels[i])} spent {money(actual[i] or 0.0)}</title></circle>"
            )
    out.append("</svg>")
    return "".join(out)


def buckets(
    bounds: Sequence[float], counts: Sequence[float], markers: Mapping[str, float], *, title: str, fmt: str = "money"
) -> str:
    """A histogram kept as buckets (upper ``bounds``, per-bucket ``counts``): one bar per bucket, markers placed
    by linear interpolation inside their bucket."""
    fmt_v = short_money if fmt == "money" else count
    labels = [f"≤{fmt_v(b)}" if b != math.inf else "more" for b in bounds]
    out, scale, slot = _frame(nice_ticks(max(counts, default=0.0)), "count", labels, title)
    for i, c in enumerate(counts):
        if c:
            h = c * scale
            out.append(
                f'<rect class="bin" x="{LEFT + slot * i + 1:.1f}" y="{H - BOTTOM - h:.1f}" '
                f'width="{slot - 2:.1f}" height="{h:.1f}"><title>{labels[i]}: {c:g} runs</title></rect>'
            )
    for k, (name, v) in enumerate(markers.items()):
        i = next((j for j, b in enumerate(bounds) if v <= b), len(bounds) - 1)
        lower = bounds[i - 1] if i else 0.0
        upper = bounds[i] if bounds[i] != math.inf else lower * 2 or 1.0
        x = LEFT + slot * (i + min(1.0, max(0.0, (v - lower) / ((upper - lower) or 1.0))))
        out.append(
            f'<line class="marker m{k}" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{H - BOTTOM}"/>'
            f'<text class="mlab m{k}" x="{x + 4:.1f}" y="{TOP + 12 + 14 * k}">{escape(name)} '
            f"{(money if fmt == 'money' else count)(v)}</text>"
        )
    out.append("</svg>")
    return "".join(out)
