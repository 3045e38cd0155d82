"""Budget runway: when each configured :class:`~tokenmeter.Budget` runs out of its current window at the projected burn.

Spent so far in the window comes from hourly usage rows matching the budget's scope (team / workflow / tier / env);
the burn after ``now`` is the scope's projected daily series (see :mod:`tokenmeter.finops._model`), spread evenly
over each day. A budget that lasts until its window ends does not run out (windows reset); its projected
spend at the window's end is reported instead. The earliest date uses the 80 % interval's upper bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ..governance import Budget
from ..governance._windows import bounds
from ._model import Method, Projection, project
from ._rows import UsageRow
from .forecast import daily_series

_HORIZON = 32  # longest window ("month") plus the day in progress


@dataclass(frozen=True, slots=True)
class Runway:
    """One limit (dollars or tokens) of one budget in its current window."""

    budget: str
    scope: dict[str, str]
    window: str
    window_start: datetime
    window_end: datetime
    unit: str  # "usd" or "tokens"
    limit: float
    spent: float
    projected_at_end: float
    runs_out_at: datetime | None  # at the projected burn; None when the budget lasts the window
    earliest_out_at: datetime | None  # at the 80 % interval's upper bound
    method: str
    note: str = ""


def _matches(row: UsageRow, scope: dict[str, str]) -> bool:
    return all(getattr(row, key) == value for key, value in scope.items())


def _walk(now: datetime, end: datetime, remaining: float, per_day: Sequence[float]) -> tuple[datetime | None, float]:
    """When ``remaining`` is used up by ``per_day`` (index 0 = the day of ``now``), and what is spent by ``end``."""
    t, spent = now, 0.0
    day0 = datetime(now.year, now.month, now.day, tzinfo=UTC)
    out: datetime | None = None
    for k, daily in enumerate(per_day):
        day_end = min(end, day0 + timedelta(days=k + 1))
        if day_end <= t:
            continue
        rate = daily / 86400.0
        chunk = rate * (day_end - t).total_seconds()
        if out is None and rate > 0 and spent + chunk >= remaining:
            out = t + timedelta(seconds=(remaining - spent) / rate)
        spent += chunk
        t = day_end
        if t >= end:
            break
    return out, spent


def runways(
    budgets: Iterable[Budget],
    history: Sequence[UsageRow],
    window_rows: Sequence[UsageRow],
    *,
    now: datetime,
    method: Method = "trend",
) -> list[Runway]:
    """Runway of every limit of ``budgets``: ``history`` holds daily rows before today, ``window_rows`` hourly
    rows from the earliest window start up to ``now``."""
    today = now.astimezone(UTC).date()
    out: list[Runway] = []
    for budget in budgets:
        scope = dict(budget.scope)
        start_s, end_s = bounds(budget.window, now.timestamp())
        start, end = datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(end_s, UTC)
        series = daily_series((r for r in history if _matches(r, scope)), by=(), end=today).get(())
        in_window = [r for r in window_rows if start <= r.start < now and _matches(r, scope)]
        limits: list[tuple[str, float]] = []
        if budget.limit_usd is not None:
            limits.append(("usd", float(budget.limit_usd)))
        if budget.limit_tokens is not None:
            limits.append(("tokens", float(budget.limit_tokens)))
        for unit, limit in limits:
            if unit == "usd":
                spent = sum(float(r.cost_usd) for r in in_window if r.cost_usd is not None)
            else:
                spent = float(sum(r.tokens for r in in_window))
            proj: Projection | None = None
            if series is not None:
                values = series.cost if unit == "usd" else series.tokens
                proj = project(values, _HORIZON, method=method)
            point = proj.point if proj else (0.0,) * _HORIZON
            upper = proj.upper if proj else (0.0,) * _HORIZON
            remaining = limit - spent
            if remaining <= 0:
                runs_out: datetime | None = now
                earliest: datetime | None = now
                _, projected = _walk(now, end, float("inf"), point)
            else:
                runs_out, projected = _walk(now, end, remaining, point)
                earliest, _ = _walk(now, end, remaining, upper)
            note = "no usage history in scope" if proj is None else proj.note
            out.append(
                Runway(
                    budget.name,
                    scope,
                    budget.window,
                    start,
                    end,
                    unit,
                    limit,
                    spent,
                    spent + projected,
                    runs_out,
                    earliest,
                    proj.method if proj else "none",
                    note,
                )
            )
    return out


def earliest_window_start(budgets: Iterable[Budget], now: datetime) -> datetime:
    """The earliest start of the budgets' current windows (``now`` when there are none)."""
    starts = [bounds(b.window, now.timestamp())[0] for b in budgets]
    return datetime.fromtimestamp(min(starts), UTC) if starts else now


def day_start(day: date) -> datetime:
    """Midnight UTC of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
