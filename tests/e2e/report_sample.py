"""A month of a service's FinOps rows for the HTML report's browser test and its screenshot (docs/img/report.png).

Deterministic (seeded): three teams, three model tiers at published per-token prices, a weekly rhythm (quiet
weekends, growth), ~40 runs a day whose cost is log-normal with a few 50x runaways -- the shape the report exists to
show -- a 14-day forecast band and three budgets.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tokenmeter.finops import RunRow, UsageRow
from tokenmeter.finops.html import BudgetBurn

START = datetime(2026, 11, 2, tzinfo=UTC)
DAYS = 30
MODELS = {  # tier -> (model, USD per 1M input, USD per 1M output)
    "small": ("gpt-4o-mini", Decimal("0.15"), Decimal("0.60")),
    "standard": ("gpt-4o", Decimal("2.50"), Decimal("10")),
    "frontier": ("o1", Decimal("15"), Decimal("60")),
}
TEAMS = {"support": ("support-triage", 1.0), "payments": ("refund", 0.55), "data": ("nightly-summarisation", 0.3)}
MIX = {
    "support": {"small": 0.6, "standard": 0.4},
    "payments": {"standard": 0.7, "frontier": 0.3},
    "data": {"small": 0.8, "standard": 0.2},
}


def sample() -> tuple[list[UsageRow], list[RunRow], list[tuple[str, float, float, float]], list[BudgetBurn]]:
    rng = random.Random(11)
    usage: list[UsageRow] = []
    runs: list[RunRow] = []
    for day in range(DAYS):
        start = START + timedelta(days=day)
        weekday = start.weekday()
        volume = (0.45 if weekday >= 5 else 1.0) * (1 + day / 60)
        for team, (workflow, share) in TEAMS.items():
            for tier, part in MIX[team].items():
                model, rate_in, rate_out = MODELS[tier]
                calls = max(1, int(900 * volume * share * part * rng.uniform(0.85, 1.15)))
                tokens_in, tokens_out = calls * rng.randint(900, 1300), calls * rng.randint(150, 260)
                for token_class, n, rate in (("input", tokens_in, rate_in), ("output", tokens_out, rate_out)):
                    usage.append(
                        UsageRow(
                            start,
                            start + timedelta(days=1),
                            "prod",
                            team,
                            workflow,
                            f"{team}-agent",
                            tier,
                            "openai",
                            model,
                            "chat",
                            token_class,
                            tokens=n,
                            cost_usd=rate * n / 1_000_000,
                            cost_source="table:genai-prices",
                            calls=calls if token_class == "input" else 0,
                            wasted_tokens=n // 40,
                            wasted_cost_usd=rate * (n // 40) / 1_000_000,
                        )
                    )
            if team == "data":  # the self-hosted model: metered, never priced
                n = int(2_000_000 * volume)
                usage.append(
                    UsageRow(
                        start,
                        start + timedelta(days=1),
                        "prod",
                        team,
                        workflow,
                        "summariser",
                        "small",
                        "openai",
                        "llama-3.1-8b-instruct",
                        "chat",
                        "input",
                        tokens=n,
                        unpriced_tokens=n,
                        calls=400,
                    )
                )
        for i in range(int(40 * volume)):
            team = rng.choice(["support", "support", "payments", "data"])
            cost = math.exp(rng.gauss(math.log(0.02), 0.6)) * (50 if rng.random() < 0.012 else 1)
            tokens = int(cost / 4e-6)
            runs.append(
                RunRow(
                    f"run-{day:02d}-{i:03d}",
                    TEAMS[team][0],
                    team,
                    "prod",
                    start + timedelta(minutes=i),
                    rng.uniform(2, 30),
                    calls=rng.randint(2, 9),
                    steps=rng.randint(3, 12),
                    max_depth=2,
                    tokens={"input": tokens * 4 // 5, "output": tokens // 5},
                    cost_usd=Decimal(str(round(cost, 6))),
                    outcome="ok" if cost < 0.5 else "stopped",
                )
            )
    last = sum(float(r.cost_usd or 0) for r in usage if r.start == START + timedelta(days=DAYS - 1))
    forecast = []
    for k in range(1, 15):
        day = START + timedelta(days=DAYS - 1 + k)
        mid = last * (0.5 if day.weekday() >= 5 else 1.05) * (1 + k / 80)
        spread = 0.06 + 0.015 * k
        forecast.append((day.date().isoformat(), mid * (1 - spread), mid, mid * (1 + spread)))
    budgets = [
        BudgetBurn("support-daily", Decimal("40"), Decimal("29.80"), elapsed=0.62),
        BudgetBurn("frontier-monthly", Decimal("900"), Decimal("941.25"), elapsed=0.97),
        BudgetBurn("data-daily-tokens", 60_000_000, 21_500_000, elapsed=0.55, unit="tokens"),
    ]
    return usage, runs, forecast, budgets
