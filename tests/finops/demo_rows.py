"""The demo agent service's workload as FinOps :class:`UsageRow` s, read from tokenmeter's own counters.

``python -m tests.finops.demo_rows`` prints the seeds' scenario table from the demo's measured baseline (the
README's "Forecast and scenarios" table) through the real ``tokenmeter forecast`` command.

The rows come from the ``tokenmeter.tokens`` / ``tokenmeter.cost`` / ``tokenmeter.calls`` counters of a real
metered run (the openai client over HTTP to the local FakeProvider), as a Prometheus-compatible reader would
build them: a stand-in for the ledger reader while that is built.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from examples.agent_service import DEFAULT_RUNS, DEFAULT_SEED, demo_options, run_workload
from tokenmeter.finops import UsageRow
from tokenmeter.testing import capture

_KEYS = (
    "tokenmeter.env",
    "tokenmeter.team.name",
    "gen_ai.workflow.name",
    "gen_ai.agent.name",
    "tokenmeter.model.tier",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.operation.name",
)


def demo_usage_rows(day: datetime, runs: int = DEFAULT_RUNS, seed: int = DEFAULT_SEED) -> list[UsageRow]:
    """Serve the demo workload once and return its usage as daily rows dated ``day``."""
    with capture(**demo_options(runs)) as cap:
        run_workload(runs, seed)
        cells: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(lambda: {"tokens": 0, "cost": None, "calls": 0})
        for metric, field in (("tokenmeter.tokens", "tokens"), ("tokenmeter.cost", "cost")):
            for p in cap.points(metric):
                a = dict(p.attributes or {})
                key = (*(str(a.get(k, "")) for k in _KEYS), str(a.get("tokenmeter.token.class", "")))
                if field == "cost":
                    cells[key]["cost"] = (cells[key]["cost"] or Decimal(0)) + Decimal(str(p.value))
                else:
                    cells[key][field] += int(p.value)
        for p in cap.points("tokenmeter.calls"):
            a = dict(p.attributes or {})
            cells[(*(str(a.get(k, "")) for k in _KEYS), "input")]["calls"] += int(p.value)
    rows = []
    for (env, team, workflow, agent, tier, provider, model, operation, klass), c in cells.items():
        if not klass or not c["tokens"]:
            continue
        # the unpriced counter carries no token class: a class with no cost point is unpriced
        cost = c["cost"]
        rows.append(
            UsageRow(
                start=day,
                end=day + timedelta(days=1),
                env=env or "default",
                team=team,
                workflow=workflow,
                agent=agent,
                tier=tier,
                provider=provider,
                model=model,
                operation=operation,
                token_class=klass,
                tokens=c["tokens"],
                cost_usd=cost,
                list_cost_usd=cost,
                cost_source="table" if cost is not None else "unpriced",
                unpriced_tokens=c["tokens"] if cost is None else 0,
                calls=c["calls"],
            )
        )
    return rows


def main() -> int:
    """Print the seeds' three scenarios from the demo's measured baseline."""
    from tokenmeter import finops
    from tokenmeter.cli import main as cli
    from tokenmeter.testing.finops import ListReader

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    reader = ListReader(demo_usage_rows(today), name="the demo workload")
    finops.reader_for = lambda source: reader  # type: ignore[attr-defined]
    return cli(
        [
            "forecast",
            "--baseline",
            "1",
            "--by",
            "workflow",
            *sys.argv[1:],
            "--scenario",
            "price=-90% demand=1x",
            "--scenario",
            "price=-90% demand=10x",
            "--scenario",
            "price=-90% demand=30x",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
