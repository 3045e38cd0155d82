"""The forecast recovers a known trend and weekly season within its 80 % interval, and says when history is short."""

from __future__ import annotations

import importlib.util
import math
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from tokenmeter.finops import forecast as fc
from tokenmeter.finops._model import SEASONAL_DAYS, TREND_DAYS, Z80, project
from tokenmeter.testing.finops import synthetic_usage

WEEKDAY = (3000.0, 2500.0, 2000.0, 1500.0, 1000.0, -4000.0, -6000.0)  # Monday..Sunday, sums to zero
START = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday
HAS_STATSMODELS = importlib.util.find_spec("statsmodels") is not None


def _truth(day_index: int, level: float = 50_000.0, slope: float = 400.0) -> float:
    return level + slope * day_index + WEEKDAY[(START + timedelta(days=day_index)).weekday()]


def _series(days: int, noise: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [_truth(i) + rng.gauss(0, noise) for i in range(days)]


@pytest.mark.parametrize(
    "method",
    [
        "trend",
        pytest.param(
            "ets",
            marks=pytest.mark.skipif(not HAS_STATSMODELS, reason="statsmodels (tokenmeter[forecast]) is not installed"),
        ),
    ],
)
def test_recovers_trend_and_weekly_season_within_the_interval(method: fc.Method) -> None:
    noise, hist, horizon = 800.0, 70, 30
    inside = total = 0
    errors: list[float] = []
    for seed in range(8):
        values = _series(hist + horizon, noise, seed)
        p = project(values[:hist], horizon, method=method)
        assert p.method == f"{method}+weekday" and not p.flat
        for h in range(horizon):
            actual, truth = values[hist + h], _truth(hist + h)
            inside += p.lower[h] <= actual <= p.upper[h]
            total += 1
            errors.append(abs(p.point[h] - truth))
    coverage = inside / total
    # an 80 % interval: most future values inside, but not trivially all of them (so it is not absurdly wide)
    assert 0.7 <= coverage <= 0.97, coverage
    # the point forecast follows the true trend + season: mean error well below the weekday swing (9,000)
    assert sum(errors) / len(errors) < 1.5 * noise, sum(errors) / len(errors)


def test_trend_projection_reproduces_an_exact_line_and_season() -> None:
    values = [_truth(i) for i in range(28)]
    p = project(values, 7)
    for h in range(7):
        assert p.point[h] == pytest.approx(_truth(28 + h), rel=1e-9)
        assert p.upper[h] - p.lower[h] == pytest.approx(0, abs=1e-6)  # no residuals, no spread


def test_interval_is_the_ols_prediction_interval() -> None:
    rng = random.Random(3)
    values = [100.0 + 2 * i + rng.gauss(0, 5) for i in range(TREND_DAYS)]  # too short for a season: plain trend
    p = project(values, 1)
    assert p.method == "trend"
    n = len(values)
    mt = (n - 1) / 2
    sxx = sum((i - mt) ** 2 for i in range(n))
    b = sum((i - mt) * (v - sum(values) / n) for i, v in enumerate(values)) / sxx
    a = sum(values) / n - b * mt
    sigma = math.sqrt(sum((v - a - b * i) ** 2 for i, v in enumerate(values)) / (n - 2))
    se = sigma * math.sqrt(1 + 1 / n + (n - mt) ** 2 / sxx)
    assert p.point[0] == pytest.approx(a + b * n)
    assert p.upper[0] == pytest.approx(a + b * n + Z80 * se)


def test_too_short_history_gives_a_flat_wide_projection_that_says_what_is_needed() -> None:
    values = [1000.0, 1200.0, 900.0, 1100.0, 1000.0]
    p = project(values, 30)
    assert p.flat and p.method == "flat"
    assert set(p.point) == {1040.0}
    assert p.lower[0] == 0.0 and p.upper[0] >= 2 * 1040  # wide: at least the mean on either side
    assert "only 5 day(s)" in p.note and f"{TREND_DAYS} days" in p.note and f"{SEASONAL_DAYS} days" in p.note


def test_season_only_from_three_weeks() -> None:
    assert project(_series(SEASONAL_DAYS - 1, 0, 1), 7).method == "trend"
    assert project(_series(SEASONAL_DAYS, 0, 1), 7).method == "trend+weekday"


def test_forecast_per_workflow_and_env_with_weekly_variance() -> None:
    workflows = ("triage", "refund", *(f"wf{i}" for i in range(8)))
    rows = synthetic_usage(
        start=START,
        days=56,
        workflows=workflows,
        envs=("prod", "dev"),
        level=100_000,
        slope=1_000,
        weekday=WEEKDAY,
        noise=500,
    )
    as_of = (START + timedelta(days=56)).date()
    report = fc.forecast(rows, as_of=as_of, by=("workflow", "env"))
    assert [tuple(s.key.values()) for s in report.series][:2] == [("refund", "dev"), ("refund", "prod")]
    assert len(report.series) == 20
    s = report.series[0]
    assert s.history_days == 56 and s.tokens.method == "trend+weekday"
    v = s.tokens_variance
    assert v is not None and v.week_start == as_of - timedelta(days=7)
    assert v.actual == sum(
        r.tokens for r in rows if r.workflow == "refund" and r.env == "dev" and r.start.date() >= v.week_start
    )
    # the same process all along: about one week in five lies outside an 80 % interval, not most of them
    flagged = [x.key for x in report.series if x.tokens_variance and x.tokens_variance.flagged]
    assert len(flagged) <= 8, flagged
    # cost follows tokens at fixed rates: the 30-day cost band is inside the one implied by the token band
    assert report.total is not None and report.total.history_days == 56
    assert report.total.tokens.total(7)[0] == pytest.approx(sum(s.tokens.total(7)[0] for s in report.series))


def test_variance_flags_a_week_outside_the_interval() -> None:
    rows = synthetic_usage(start=START, days=49, level=100_000, slope=0, weekday=WEEKDAY, noise=300)
    spiked = [
        r
        if r.start < START + timedelta(days=42)
        else type(r)(**{**{f: getattr(r, f) for f in r.__dataclass_fields__}, "tokens": r.tokens * 3})
        for r in rows
    ]
    report = fc.forecast(spiked, as_of=(START + timedelta(days=49)).date())
    v = report.series[0].tokens_variance
    assert v is not None and v.flagged and v.actual > v.upper and v.change is not None and v.change > 1.5


def test_series_with_short_history_are_listed_with_their_note() -> None:
    rows = synthetic_usage(start=START, days=40, workflows=("old",)) + synthetic_usage(
        start=START + timedelta(days=35), days=5, workflows=("new",)
    )
    report = fc.forecast(rows, as_of=date(2026, 7, 11))
    short = report.short
    assert [s.key["workflow"] for s in short] == ["new"]
    assert "only 5 day(s) of history" in short[0].note


def test_unknown_dimension_and_method() -> None:
    with pytest.raises(ValueError, match="cannot group by 'color'"):
        fc.forecast([], as_of=date(2026, 7, 1), by=("color",))
    with pytest.raises(ValueError, match="unknown forecast method"):
        fc.forecast([], as_of=date(2026, 7, 1), method="prophet")  # type: ignore[arg-type]


@pytest.mark.skipif(HAS_STATSMODELS, reason="checks the message without statsmodels")
def test_ets_without_statsmodels_says_which_extra() -> None:
    with pytest.raises(fc.MethodUnavailable, match=r"tokenmeter\[forecast\]"):
        project(_series(30, 0, 1), 7, method="ets")
