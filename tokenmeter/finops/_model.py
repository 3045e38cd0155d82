"""Projection of one daily series: a linear trend with weekday factors (pure Python), or Holt-Winters (statsmodels).

``trend`` (the default, no dependency): ordinary least squares on ``a + b*t`` plus additive weekday offsets
(six weekday dummies, fitted jointly with the line) when the history has at least :data:`SEASONAL_DAYS` days.
The 80 % interval is the OLS prediction interval from the residuals: ``z80 * sigma * sqrt(1 + x'(X'X)^-1 x)``
(without the season: ``sqrt(1 + 1/n + (t - mean_t)^2 / Sxx)``).

``ets`` (extra ``tokenmeter[forecast]``): statsmodels' additive Holt-Winters with a damped additive trend and
an additive weekly season, fitted on the last :data:`ETS_WINDOW` days; the interval uses the ETS(A,Ad,A)
forecast variance ``sigma^2 * (1 + sum_{j<h} c_j^2)``, ``c_j = alpha * (1 + beta * phi_j) + gamma * [j % 7 == 0]``.
It is slower (about 60 ms per series here against well under 1 ms), hence opt-in.

Below :data:`TREND_DAYS` days either method gives a flat projection (the mean of the last week) with a wide
interval (a standard deviation of at least the mean itself), marked ``flat``.
Values are clipped at zero: a series of tokens or dollars is never negative.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Method = Literal["trend", "ets"]
METHODS: tuple[str, ...] = ("trend", "ets")
Z80 = 1.2815515655446004  # two-sided 80 %: the 10th and 90th percentiles of a normal
TREND_DAYS = 14  # fewer days of history: flat projection
SEASONAL_DAYS = 21  # weekday seasonality from three full weeks on
ETS_WINDOW = 91


class MethodUnavailable(Exception):
    """The requested projection method needs an extra that is not installed."""


@dataclass(frozen=True, slots=True)
class Projection:
    """Daily projection of one series: ``point[i]`` is day ``i + 1`` after the history, with its 80 % interval."""

    method: str  # "trend", "trend+weekday", "ets", "ets+weekday" or "flat"
    history_days: int
    point: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    sd: tuple[float, ...]  # standard deviation of each day's forecast error (before clipping)
    note: str = ""

    @property
    def flat(self) -> bool:
        """True when the history was too short for a trend."""
        return self.method == "flat"

    def total(self, days: int) -> tuple[float, float, float]:
        """``(point, lower, upper)`` of the sum over the first ``days`` days (errors taken as independent)."""
        point = sum(self.point[:days])
        half = Z80 * math.sqrt(sum(s * s for s in self.sd[:days]))
        return point, max(0.0, point - half), point + half


def too_short_note(days: int) -> str:
    """What a series of ``days`` days lacks, and how much history is needed."""
    return (
        f"only {days} day(s) of history: flat projection with a wide interval; a trend needs at least "
        f"{TREND_DAYS} days and weekday seasonality {SEASONAL_DAYS} days (3 weeks)"
    )


def project(history: Sequence[float], horizon: int, *, method: Method = "trend") -> Projection:
    """Project ``history`` (one value per day, oldest first, no gaps) ``horizon`` days on."""
    n = len(history)
    if n == 0:
        raise ValueError("an empty series cannot be projected")
    if n < TREND_DAYS:
        return _flat(history, horizon)
    if method == "ets":
        return _ets(history, horizon)
    return _trend(history, horizon)


def _make(method: str, n: int, point: list[float], sd: list[float], note: str = "") -> Projection:
    point = [max(0.0, p) for p in point]
    lower = tuple(max(0.0, p - Z80 * s) for p, s in zip(point, sd, strict=True))
    upper = tuple(p + Z80 * s for p, s in zip(point, sd, strict=True))
    return Projection(method, n, tuple(point), lower, upper, tuple(sd), note)


def _flat(history: Sequence[float], horizon: int) -> Projection:
    n = len(history)
    recent = list(history[-7:])
    mean = sum(recent) / len(recent)
    std = math.sqrt(sum((v - mean) ** 2 for v in recent) / (len(recent) - 1)) if len(recent) > 1 else 0.0
    sd = max(std, mean)
    return _make("flat", n, [mean] * horizon, [sd] * horizon, too_short_note(n))


def _solve_inverse(m: list[list[float]]) -> list[list[float]]:
    """Inverse of a small symmetric positive-definite matrix (Gauss-Jordan with partial pivoting)."""
    k = len(m)
    a = [row[:] + [1.0 if i == j else 0.0 for j in range(k)] for i, row in enumerate(m)]
    for col in range(k):
        pivot = max(range(col, k), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-12:
            raise ZeroDivisionError("singular design")
        a[col], a[pivot] = a[pivot], a[col]
        p = a[col][col]
        a[col] = [v / p for v in a[col]]
        for r in range(k):
            if r != col and a[r][col]:
                f = a[r][col]
                a[r] = [v - f * w for v, w in zip(a[r], a[col], strict=True)]
    return [row[k:] for row in a]


def _design(t: int, seasonal: bool, centre: float) -> list[float]:
    x = [1.0, t - centre]
    if seasonal:  # a dummy per weekday but the first day's (the intercept's); weekdays relative to day 0
        x += [1.0 if t % 7 == j else 0.0 for j in range(1, 7)]
    return x


def _trend(history: Sequence[float], horizon: int) -> Projection:
    """Joint least squares on ``[1, t, weekday dummies]``; the interval is ``z80 * sigma * sqrt(1 + x'(X'X)^-1 x)``.

    ``X'X`` and ``X'y`` are built from per-weekday sums (one pass over the history), not from the design matrix.
    """
    n = len(history)
    seasonal = n >= SEASONAL_DAYS
    centre = (n - 1) / 2
    count, tsum, ysum = [0] * 7, [0.0] * 7, [0.0] * 7
    s2 = sty = 0.0
    for i, y in enumerate(history):
        w, dt = i % 7, i - centre
        count[w] += 1
        tsum[w] += dt
        ysum[w] += y
        s2 += dt * dt
        sty += dt * y
    k = 8 if seasonal else 2
    xtx = [[0.0] * k for _ in range(k)]
    xtx[0][0], xtx[0][1], xtx[1][1] = float(n), sum(tsum), s2
    xty = [sum(ysum), sty] + [0.0] * (k - 2)
    if seasonal:
        for j in range(1, 7):
            xtx[0][1 + j] = xtx[1 + j][1 + j] = float(count[j])
            xtx[1][1 + j] = tsum[j]
            xty[1 + j] = ysum[j]
    for i in range(k):
        for j in range(i):
            xtx[i][j] = xtx[j][i]
    inv = _solve_inverse(xtx)
    beta = [sum(inv[i][j] * xty[j] for j in range(k)) for i in range(k)]
    offsets = [0.0] + (beta[2:] if seasonal else [0.0] * 6)
    b0, b1 = beta[0], beta[1]
    sse = 0.0
    for i, y in enumerate(history):
        e = y - (b0 + b1 * (i - centre) + offsets[i % 7])
        sse += e * e
    sigma = math.sqrt(sse / max(1, n - k))
    point, sd = [], []
    for h in range(1, horizon + 1):
        x = _design(n - 1 + h, seasonal, centre)
        point.append(sum(b * v for b, v in zip(beta, x, strict=True)))
        leverage = sum(x[i] * inv[i][j] * x[j] for i in range(k) for j in range(k))
        sd.append(sigma * math.sqrt(1 + leverage))
    return _make("trend+weekday" if seasonal else "trend", n, point, sd)


def _ets(history: Sequence[float], horizon: int) -> Projection:
    try:
        import numpy as np
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
    except ImportError:
        raise MethodUnavailable("method 'ets' needs statsmodels: pip install 'tokenmeter[forecast]'") from None
    n = len(history)
    window = np.asarray(history[-ETS_WINDOW:], dtype=float)
    seasonal = len(window) >= SEASONAL_DAYS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' convergence chatter; the interval still reflects the fit
        fit = ExponentialSmoothing(
            window,
            trend="add",
            damped_trend=True,
            seasonal="add" if seasonal else None,
            seasonal_periods=7 if seasonal else None,
            initialization_method="estimated",
        ).fit()
    params = fit.params
    alpha = float(params["smoothing_level"])
    beta = float(params.get("smoothing_trend") or 0.0)
    gamma = float(params.get("smoothing_seasonal") or 0.0) if seasonal else 0.0
    phi = float(params.get("damping_trend") or 1.0)
    resid = np.asarray(fit.resid, dtype=float)
    dof = max(1, len(window) - len(fit.params_formatted))
    sigma = math.sqrt(float(np.sum(resid * resid)) / dof)
    point = [float(v) for v in fit.forecast(horizon)]
    sd, acc, phi_j = [], 0.0, 0.0
    for h in range(1, horizon + 1):
        sd.append(sigma * math.sqrt(1 + acc))
        phi_j += phi**h
        c = alpha * (1 + beta * phi_j) + (gamma if h % 7 == 0 else 0.0)
        acc += c * c
    return _make("ets+weekday" if seasonal else "ets", n, point, sd)
