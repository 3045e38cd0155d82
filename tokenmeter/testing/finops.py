"""Test inputs for the FinOps outputs: a Reader over a list of rows, and synthetic daily usage with a known shape.

``ListReader`` stands in for a ledger or TSDB reader (it filters and re-aggregates rows like one); the
forecast, scenario and FOCUS code under test is the real code. ``synthetic_usage`` makes daily rows whose
tokens follow ``level + slope * day + weekday[day % 7]`` plus seeded Gaussian noise, priced at fixed rates.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ..finops import Granularity, RunRow, UsageRow

# USD per million tokens by (tier, token class): list prices of the synthetic models
RATES: dict[tuple[str, str], Decimal] = {
    ("small", "input"): Decimal("0.15"),
    ("small", "output"): Decimal("0.60"),
    ("standard", "input"): Decimal("2.50"),
    ("standard", "output"): Decimal("10"),
    ("frontier", "input"): Decimal("15"),
    ("frontier", "output"): Decimal("75"),
}
MODELS = {"small": "gpt-4o-mini", "standard": "gpt-4o", "frontier": "o1"}


class ListReader:
    """A :class:`~tokenmeter.finops.Reader` over rows held in memory (hourly or daily rows)."""

    def __init__(self, rows: Iterable[UsageRow], runs: Iterable[RunRow] = (), name: str = "test rows") -> None:
        self.rows = list(rows)
        self._runs = list(runs)
        self._name = name

    def describe(self) -> str:
        """The name given at construction."""
        return self._name

    def usage(
        self, start: datetime, end: datetime, *, env: str | None = None, granularity: Granularity = "day"
    ) -> Iterator[UsageRow]:
        """Rows in ``[start, end)``, summed per day when ``granularity`` is ``"day"``."""
        picked = [r for r in self.rows if start <= r.start < end and (env is None or r.env == env)]
        if granularity == "hour":
            yield from picked
            return
        cells: dict[tuple[object, ...], UsageRow] = {}
        for r in picked:
            day = r.start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            key = (
                day,
                r.env,
                r.team,
                r.workflow,
                r.agent,
                r.tier,
                r.provider,
                r.model,
                r.operation,
                r.token_class,
                r.outcome,
                r.customer,
                r.cost_source,
            )
            base = cells.get(key)
            if base is None:
                cells[key] = replace(r, start=day, end=day + timedelta(days=1))
            else:
                cells[key] = replace(
                    base,
                    tokens=base.tokens + r.tokens,
                    calls=base.calls + r.calls,
                    cost_usd=None if base.cost_usd is None or r.cost_usd is None else base.cost_usd + r.cost_usd,
                    list_cost_usd=None
                    if base.list_cost_usd is None or r.list_cost_usd is None
                    else base.list_cost_usd + r.list_cost_usd,
                    unpriced_tokens=base.unpriced_tokens + r.unpriced_tokens,
                    estimated_tokens=base.estimated_tokens + r.estimated_tokens,
                    wasted_tokens=base.wasted_tokens + r.wasted_tokens,
                    wasted_cost_usd=base.wasted_cost_usd + r.wasted_cost_usd,
                )
        yield from cells.values()

    def runs(self, start: datetime, end: datetime, *, env: str | None = None) -> Iterator[RunRow]:
        """Runs that started in ``[start, end)``."""
        yield from (r for r in self._runs if start <= r.start < end and (env is None or r.env == env))


def synthetic_usage(
    *,
    start: datetime,
    days: int,
    workflows: Sequence[str] = ("triage",),
    envs: Sequence[str] = ("prod",),
    level: float = 1_000_000,
    slope: float = 10_000,
    weekday: Sequence[float] = (0, 0, 0, 0, 0, 0, 0),
    noise: float = 0.0,
    seed: int = 1,
    tier: str = "standard",
    output_share: float = 0.25,
) -> list[UsageRow]:
    """Daily input/output rows per workflow x env: day ``d`` has ``level + slope*d + weekday[weekday(d)] + noise``
    tokens (``weekday`` indexed Monday=0), ``output_share`` of them output, priced at :data:`RATES`."""
    rng = random.Random(seed)
    model = MODELS[tier]
    out: list[UsageRow] = []
    for wf_i, wf in enumerate(workflows):
        for env in envs:
            for d in range(days):
                day = start + timedelta(days=d)
                total = level * (1 + 0.01 * wf_i) + slope * d + weekday[day.weekday()] + rng.gauss(0, noise)
                total = max(0, round(total))
                out_tokens = round(total * output_share)
                for klass, n in (("input", total - out_tokens), ("output", out_tokens)):
                    rate = RATES[(tier, klass)]
                    cost = Decimal(n) * rate / Decimal(1_000_000)
                    out.append(
                        UsageRow(
                            start=day,
                            end=day + timedelta(days=1),
                            env=env,
                            team=f"team-{wf_i % 5}",
                            workflow=wf,
                            agent="agent",
                            tier=tier,
                            provider="openai",
                            model=model,
                            operation="chat",
                            token_class=klass,
                            tokens=n,
                            cost_usd=cost,
                            list_cost_usd=cost,
                            cost_source="table:test@1",
                            calls=(n // 1000) if klass == "input" else 0,
                        )
                    )
    return out
