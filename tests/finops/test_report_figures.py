"""Report figures equal hand-computed answers, and the ledger's totals equal the metrics' for the same workload.

The hand-computed workload uses override prices with round numbers (USD per million tokens), so every cost
below is worked out on paper; the demo workload drives the real ``openai`` client over loopback HTTP to the
fake provider and compares the SQLite ledger with the ``tokenmeter.*`` counters of an InMemoryMetricReader.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import tokenmeter
from examples.agent_service import demo_options, run_workload
from tokenmeter.finops._memory import MemoryReader
from tokenmeter.finops._render import to_json
from tokenmeter.finops._sqlite import SQLiteReader
from tokenmeter.finops.report import Report, build_report
from tokenmeter.testing import capture

PRICES = {"small-*": {"input": 1, "output": 2}, "big-*": {"input": 10, "cache_read": 1, "output": 30}}
TIERS = {"small-*": "small", "big-*": "frontier"}


def _workload() -> None:
    @tokenmeter.workflow("triage", team="support")
    def run(i: int) -> None:
        with tokenmeter.step("answer"):
            if i < 3:
                n = 100 * (i + 1)
                tokenmeter.record("openai", "small-1", tokenmeter.Usage(input=n, output=n // 10))
                tokenmeter.outcome("resolved" if i < 2 else "escalated")
            else:
                tokenmeter.record("openai", "big-1", tokenmeter.Usage(input=1000, cache_read=1000, output=100))
                raise RuntimeError("the tool broke")

    for i in range(4):
        try:
            run(i)
        except RuntimeError:
            pass


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Report]:
    path = tmp_path_factory.mktemp("ledger") / "ledger.db"
    with capture(ledger=f"sqlite:///{path}", prices=PRICES, tiers=TIERS) as cap:
        _workload()
        memory = build_report(MemoryReader(cap.meter), prices=tokenmeter.PriceBook(PRICES))
        assert cap.counter("tokenmeter.tokens") == 2760
        assert cap.counter("tokenmeter.cost") == pytest.approx(0.01472)
    sqlite = build_report(SQLiteReader(str(path)), prices=tokenmeter.PriceBook(PRICES))
    return {"memory": memory, "sqlite": sqlite}


@pytest.mark.parametrize("source", ["memory", "sqlite"])
def test_hand_computed_figures(reports: dict[str, Report], source: str) -> None:
    r = reports[source]
    assert (r.total.calls, r.total.tokens, r.total.cost) == (4, 2760, Decimal("0.01472"))
    # 100*$1 + 10*$2, 200*$1 + 20*$2, 300*$1 + 30*$2 per million; then 1000*$10 + 1000*$1 + 100*$30
    costs = [Decimal("0.00012"), Decimal("0.00024"), Decimal("0.00036"), Decimal("0.014")]
    (wf,) = r.workflows
    assert (wf.workflow, wf.runs, wf.succeeded) == ("triage", 4, 2)
    assert (wf.tokens.p50, wf.tokens.p95, wf.tokens.p99, wf.tokens.max) == (330, 2100, 2100, 2100)
    assert wf.multiplier == pytest.approx(2100 / 330)
    assert wf.cost.p50 == costs[2] and wf.cost.max == costs[3]
    assert wf.total_cost == sum(costs) and wf.cost_per_success == sum(costs) / 2 == Decimal("0.00736")
    assert r.cost_per_success == Decimal("0.00736")
    assert wf.worst[0][1] == 2100 and wf.tokens_per_task == 690 and wf.tokens_per_call == 690
    assert wf.outcomes == {"resolved": 2, "escalated": 1, "error": 1}
    rel = r.reliability
    # per run: one step scope + one call = 2 steps, at depth 1; the broken run's step failed, its call did not
    assert rel.by_depth == {1: (7, 1)} and rel.mean_steps == 2
    assert rel.per_step == 7 / 8 and rel.implied == pytest.approx((7 / 8) ** 2) and rel.observed == 0.5
    assert r.tier_mix == [
        ("frontier", 0.25, pytest.approx(0.014 / 0.01472)),
        ("small", 0.75, pytest.approx(0.00072 / 0.01472)),
    ]
    assert r.cache_read_share == pytest.approx(1000 / 2600)
    assert r.cache_saved_usd == Decimal("0.009")  # 1000 tokens at $10 instead of $1 per million
    assert r.total.wasted_tokens == 2100 and r.total.wasted_cost == Decimal("0.014")
    assert {g.name: g.tokens for g in r.by["model"]} == {"big-1": 2100, "small-1": 660}
    assert r.token_classes["cache_read"].cost == Decimal("0.001")


def test_every_source_gives_the_same_report(reports: dict[str, Report]) -> None:
    memory, sqlite = (to_json(reports[s]) for s in ("memory", "sqlite"))
    memory.pop("source"), sqlite.pop("source")
    assert memory == sqlite


def test_unpriced_tokens_are_called_out_never_zero(tmp_path: Path) -> None:
    with capture(ledger=f"sqlite:///{tmp_path}/l.db") as cap:
        with tokenmeter.workflow("w", team="t"):
            tokenmeter.record("openai", "private-model-x", tokenmeter.Usage(input=40, output=2))
        text = cap.meter.report()
    r = build_report(SQLiteReader(f"{tmp_path}/l.db"))
    assert r.unpriced_by_model == {"private-model-x": 42}
    assert r.by["model"][0].all_unpriced and r.workflows[0].cost.max == 0
    assert "Unpriced: 42 tokens have no price (private-model-x 42)" in text
    assert "unpriced" in text.split("By model:")[1].splitlines()[2]


def test_ledger_totals_equal_the_metrics_for_the_demo_workload(tmp_path: Path) -> None:
    """Real openai client over loopback HTTP: ledger file == tokenmeter.* counters, class by class."""
    path = tmp_path / "ledger.db"
    with capture(**demo_options(24), ledger=f"sqlite:///{path}") as cap:
        result = run_workload(24, 5)
        cap.meter.force_flush()
        r = build_report(SQLiteReader(str(path)), by=("team", "model", "tier"))
        assert r.total.tokens == cap.counter("tokenmeter.tokens") > 0
        assert float(r.total.cost) == pytest.approx(cap.counter("tokenmeter.cost"), rel=1e-9)
        assert r.total.unpriced_tokens == cap.counter("tokenmeter.tokens.unpriced") > 0
        assert r.total.calls == cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "ok"})
        assert r.total.blocked == cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"})
        assert r.total.wasted_tokens == cap.counter("tokenmeter.tokens.wasted") > 0
        for c, f in r.token_classes.items():
            assert f.tokens == cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": c})
        for dim, attr in (
            ("team", "tokenmeter.team.name"),
            ("model", "gen_ai.request.model"),
            ("tier", "tokenmeter.model.tier"),
        ):
            for g in r.by[dim]:
                assert g.tokens == cap.counter("tokenmeter.tokens", **{attr: g.name}), (dim, g.name)
                assert float(g.cost) == pytest.approx(
                    cap.counter("tokenmeter.cost", **{attr: g.name}), rel=1e-9, abs=1e-12
                )
        runs = sum(p.count for p in cap.points("tokenmeter.run.tokens"))
        assert r.reliability.runs == runs == len(result.runs)
        assert sum(w.tokens_per_task * w.runs for w in r.workflows) == sum(
            p.sum for p in cap.points("tokenmeter.run.tokens")
        )


@pytest.mark.parametrize("granularity", ["hour", "day", "month"])
def test_both_readers_yield_the_same_rows(tmp_path: Path, granularity: str) -> None:
    """The Reader contract: the ledger file and the in-memory meter give the same UsageRow and RunRow sets."""
    from tokenmeter.finops.report import EPOCH, FOREVER

    path = tmp_path / "ledger.db"
    with capture(ledger=f"sqlite:///{path}", prices=PRICES, tiers=TIERS) as cap:
        _workload()
        memory = MemoryReader(cap.meter)
        mem_rows = sorted(memory.usage(EPOCH, FOREVER, granularity=granularity), key=repr)
        mem_runs = sorted(memory.runs(EPOCH, FOREVER), key=lambda r: r.run_id)
        cap.meter.force_flush()
    sqlite = SQLiteReader(str(path))
    assert sorted(sqlite.usage(EPOCH, FOREVER, granularity=granularity), key=repr) == mem_rows
    assert sorted(sqlite.runs(EPOCH, FOREVER), key=lambda r: r.run_id) == mem_runs
    assert len(mem_rows) > 5 and len(mem_runs) == 4
    assert all(r.start.tzinfo is not None and r.end > r.start for r in mem_rows)
    assert sum(r.calls for r in mem_rows) == 4


def test_a_source_with_run_histograms_only(reports: dict[str, Report]) -> None:
    """A TSDB keeps run histograms, not run rows: the per-run section is interpolated in the buckets."""
    from types import SimpleNamespace

    from tokenmeter.finops._histograms import bucket_quantile

    class HistogramsOnly:
        def describe(self) -> str:
            return "histograms"

        def usage(self, start: object, end: object, *, env: object = None, granularity: str = "day") -> list[object]:
            return []

        def runs(self, start: object, end: object, *, env: object = None) -> list[object]:
            return []

        def run_stats(self, start: object, end: object, *, env: object = None) -> list[SimpleNamespace]:
            # 3 ok runs of 100, 200, 300 tokens and 1 failed run of 2,000, in buckets 0-250-500-1000-5000-inf
            ok = {
                "tokens": {250.0: 2, 500.0: 3, 1000.0: 3, 5000.0: 3, float("inf"): 3},
                "cost": {0.001: 3, float("inf"): 3},
                "steps": {2.0: 3, float("inf"): 3},
            }
            bad = {
                "tokens": {250.0: 0, 500.0: 0, 1000.0: 0, 5000.0: 1, float("inf"): 1},
                "cost": {0.001: 0, 0.1: 1, float("inf"): 1},
                "steps": {2.0: 1, float("inf"): 1},
            }
            return [
                SimpleNamespace(
                    workflow="w",
                    team="t",
                    env="",
                    outcome="ok",
                    runs=3,
                    tokens=600,
                    cost_usd=Decimal("0.0006"),
                    steps=6,
                    buckets=ok,
                ),
                SimpleNamespace(
                    workflow="w",
                    team="t",
                    env="",
                    outcome="error",
                    runs=1,
                    tokens=2000,
                    cost_usd=Decimal("0.02"),
                    steps=2,
                    buckets=bad,
                ),
            ]

    r = build_report(HistogramsOnly())
    (wf,) = r.workflows
    assert wf.estimated and (wf.runs, wf.succeeded) == (4, 3) and wf.worst == []
    # merged buckets {250: 2, 500: 3, 1000: 3, 5000: 4}: the median (rank 2) is the top of the first bucket
    assert wf.tokens.p50 == 250 and wf.tokens.p99 == round(
        bucket_quantile({250.0: 2, 500.0: 3, 1000.0: 3, 5000.0: 4}, 0.99)
    )
    assert wf.total_cost == Decimal("0.0206") and wf.cost_per_success == Decimal("0.0206") / 3
    assert r.reliability.observed == 0.75 and r.reliability.mean_steps == 2 and r.reliability.per_step is None
    assert r.cost_per_success == Decimal("0.0206") / 3
