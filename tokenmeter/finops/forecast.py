"""Token demand forecast: daily series per workflow x env (or team), 7- and 30-day projections, weekly variance
and budget runway, from any :class:`~tokenmeter.finops.Reader`'s daily :class:`~tokenmeter.finops.UsageRow` s.

A series starts at its first day with usage and ends the day before ``as_of`` (days without rows count as zero).
How a series is projected, and the minimum history, is documented in :mod:`tokenmeter.finops._model`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from ._model import METHODS, TREND_DAYS, Method, MethodUnavailable, Projection, project
from ._rows import UsageRow

__all__ = [
    "DIMENSIONS",
    "METHODS",
    "TREND_DAYS",
    "ForecastReport",
    "MethodUnavailable",
    "Projection",
    "SeriesForecast",
    "Variance",
    "daily_series",
    "forecast",
]

DIMENSIONS: tuple[str, ...] = ("workflow", "env", "team", "agent", "tier", "provider", "model")
HORIZON = 30


@dataclass(frozen=True, slots=True)
class Daily:
    """One series' daily tokens and priced cost, ``first`` being the date of index 0."""

    first: date
    tokens: list[float]
    cost: list[float]
    unpriced_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Variance:
    """Last week's actual against what the forecast made a week earlier projected for it."""

    week_start: date
    actual: float
    forecast: float
    lower: float
    upper: float
    method: str

    @property
    def flagged(self) -> bool:
        """True when the actual lies outside the 80 % interval of the week's total."""
        return not self.lower <= self.actual <= self.upper

    @property
    def change(self) -> float | None:
        """Actual over forecast, minus one (``None`` when nothing was forecast)."""
        return self.actual / self.forecast - 1 if self.forecast else None


@dataclass(frozen=True, slots=True)
class SeriesForecast:
    """The projections and last week's variance of one series (one combination of ``by`` values)."""

    key: dict[str, str]
    first_day: date
    history_days: int
    tokens: Projection
    cost: Projection
    unpriced_tokens: int
    tokens_variance: Variance | None
    cost_variance: Variance | None

    @property
    def note(self) -> str:
        """Why the projection is flat, if it is."""
        return self.tokens.note


@dataclass
class ForecastReport:
    """Everything ``tokenmeter forecast`` prints: one :class:`SeriesForecast` per series, plus their total."""

    as_of: date
    by: tuple[str, ...]
    method: str
    series: list[SeriesForecast] = field(default_factory=list)
    total: SeriesForecast | None = None

    @property
    def short(self) -> list[SeriesForecast]:
        """Series whose history was too short for a trend."""
        return [s for s in self.series if s.tokens.flat]


def _day(moment: datetime) -> date:
    if moment.tzinfo is UTC or moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(UTC).date()


def daily_series(rows: Iterable[UsageRow], *, by: Sequence[str], end: date) -> dict[tuple[str, ...], Daily]:
    """Daily tokens and cost per combination of ``by`` values, over the days before ``end``."""
    for dim in by:
        if dim not in DIMENSIONS:
            raise ValueError(f"cannot group by {dim!r}; choose from {', '.join(DIMENSIONS)}")
    dims = tuple(by)
    cells: dict[tuple[str, ...], dict[date, list[float]]] = {}
    unpriced: dict[tuple[str, ...], int] = defaultdict(int)
    for row in rows:
        day = _day(row.start)
        if day >= end:
            continue
        key = tuple([getattr(row, dim) for dim in dims])
        days = cells.get(key)
        if days is None:
            days = cells[key] = {}
        cell = days.get(day)
        if cell is None:
            cell = days[day] = [0.0, 0.0]
        cell[0] += row.tokens
        if row.cost_usd is not None:
            cell[1] += float(row.cost_usd)
        if row.unpriced_tokens:
            unpriced[key] += row.unpriced_tokens
    out: dict[tuple[str, ...], Daily] = {}
    for key, by_day in cells.items():
        first = min(by_day)
        n = (end - first).days
        tokens, cost = [0.0] * n, [0.0] * n
        for day, (t, c) in by_day.items():
            i = (day - first).days
            tokens[i], cost[i] = t, c
        out[key] = Daily(first, tokens, cost, unpriced[key])
    return out


def _sum_series(parts: Iterable[Daily], end: date) -> Daily | None:
    parts = list(parts)
    if not parts:
        return None
    first = min(p.first for p in parts)
    n = (end - first).days
    tokens, cost = [0.0] * n, [0.0] * n
    for p in parts:
        offset = (p.first - first).days
        for i, (t, c) in enumerate(zip(p.tokens, p.cost, strict=True)):
            tokens[offset + i] += t
            cost[offset + i] += c
    return Daily(first, tokens, cost, sum(p.unpriced_tokens for p in parts))


def _variance(values: list[float], first: date, method: Method) -> Variance | None:
    n = len(values)
    if n < 8:  # a week to compare and at least one day before it
        return None
    before = values[: n - 7]
    made = project(before, 7, method=method)
    point, lower, upper = made.total(7)
    return Variance(first + timedelta(days=n - 7), sum(values[n - 7 :]), point, lower, upper, made.method)


def _series_forecast(key: dict[str, str], daily: Daily, method: Method, horizon: int) -> SeriesForecast:
    return SeriesForecast(
        key=key,
        first_day=daily.first,
        history_days=len(daily.tokens),
        tokens=project(daily.tokens, horizon, method=method),
        cost=project(daily.cost, horizon, method=method),
        unpriced_tokens=daily.unpriced_tokens,
        tokens_variance=_variance(daily.tokens, daily.first, method),
        cost_variance=_variance(daily.cost, daily.first, method),
    )


def forecast(
    rows: Iterable[UsageRow],
    *,
    as_of: date,
    by: Sequence[str] = ("workflow", "env"),
    method: Method = "trend",
    horizon: int = HORIZON,
) -> ForecastReport:
    """Project every series of ``rows`` (daily usage before ``as_of``) ``horizon`` days on from ``as_of``.

    Raises :class:`MethodUnavailable` when ``method`` needs an extra that is not installed, and
    ``ValueError`` for an unknown dimension in ``by``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown forecast method {method!r}; choose from {', '.join(METHODS)}")
    report = ForecastReport(as_of=as_of, by=tuple(by), method=method)
    series = daily_series(rows, by=by, end=as_of)
    for key, daily in sorted(series.items()):
        report.series.append(_series_forecast(dict(zip(by, key, strict=True)), daily, method, horizon))
    total = _sum_series(series.values(), as_of)
    if total is not None:
        report.total = _series_forecast({}, total, method, horizon)
    return report
