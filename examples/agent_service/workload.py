"""The day's traffic of the demo service, and the tokenmeter configuration it runs under.

``run_workload()`` serves a seeded mix of workflow runs against whatever meter is configured (the demo's
embedded ledger, or a test's Prometheus / OTLP set-up) and returns the service's own account of it
(:class:`WorkloadResult`). ``demo_options()`` is the configuration: model tiers, budgets and the policy.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import openai

import tokenmeter
from tokenmeter import Budget, Policy

from . import agents
from .llm import LLM, CallRecord

DEFAULT_RUNS = 60
DEFAULT_SEED = 7
SERVICE_NAME = "acme-agents"
TEAMS = {"support-triage": "support", "refund": "payments", "nightly-summarisation": "data"}
FRONTIER_APPROVED_WORKFLOWS = frozenset({"refund"})  # premium reasoning only where the value justifies it


@dataclass
class RunRecord:
    """One workflow run: which, and how it ended (``ok``, ``stopped`` by a guard or budget, ``failed``)."""

    index: int
    workflow: str
    team: str
    outcome: str
    detail: str = ""


@dataclass
class WorkloadResult:
    """What the service did: its runs and every LLM call it attempted (see :class:`CallRecord`)."""

    runs: list[RunRecord]
    calls: list[CallRecord]
    seconds: float
    base_url: str
    scripted: bool  # replies were scripted on the local fake, so each call's usage is known exactly
    budget_warnings: list[str] = field(default_factory=list)

    def run_usage(self, index: int) -> tokenmeter.Usage:
        """Tokens of one run, from the call log."""
        total = tokenmeter.Usage()
        for call in self.calls:
            if call.run == index and call.usage is not None:
                total = total + call.usage
        return total


def approve_frontier(request: tokenmeter.Request) -> bool:
    """The premium gate: frontier calls only from workflows whose value justifies them."""
    return tokenmeter.current_scope().workflow in FRONTIER_APPROVED_WORKFLOWS


def demo_options(
    runs: int = DEFAULT_RUNS, *, on_budget_warning: Callable[[Any], Any] | None = None, served_model: str | None = None
) -> dict[str, Any]:
    """``configure()`` options of the demo: tiers, a day's budgets sized for ``runs`` runs (at least the
    default volume), the policy. ``served_model``: the one model a real server serves (tier "small")."""
    scale = Decimal(max(runs, DEFAULT_RUNS)) / DEFAULT_RUNS

    def usd(per_default_day: str) -> Decimal:
        return (Decimal(per_default_day) * scale).quantize(Decimal("0.01"))

    return {
        "service_name": SERVICE_NAME,
        # The self-hosted model has no list price; declare its tier (its tokens stay "unpriced").
        "tiers": {"llama-*": "small", **({served_model: "small"} if served_model else {})},
        "budgets": [
            Budget(
                "support-daily",
                scope={"team": "support"},
                limit_usd=usd("0.45"),
                window="1d",
                action="warn",
                warn_at=(0.5, 0.8),
            ),
            Budget("frontier-monthly", scope={"tier": "frontier"}, limit_usd=usd("2.00"), window="month"),
            Budget("data-daily-tokens", scope={"team": "data"}, limit_tokens=int(60_000 * scale), window="1d"),
        ],
        "policy": Policy(
            team_tiers={"data": ["small", "standard"]},
            downgrade={agents.FRONTIER: agents.STANDARD},
            approve=approve_frontier,
        ),
        "on_budget_warning": on_budget_warning,
    }


def plan(runs: int, seed: int) -> list[str]:
    """The workflow of each run: mostly support tickets and refunds, one nightly batch per ~25 runs, and one
    runaway ticket two thirds of the way through."""
    rng = random.Random(seed)
    kinds = ["support-triage" if rng.random() < 0.6 else "refund" for _ in range(runs)]
    if runs >= 3:
        kinds[0], kinds[1] = "support-triage", "refund"
    for i in range(max(1, runs // 25)):
        kinds[runs - 1 - i] = "nightly-summarisation"
    if runs >= 4:
        kinds[runs * 2 // 3] = "runaway"
    return kinds


def run_workload(
    runs: int = DEFAULT_RUNS,
    seed: int = DEFAULT_SEED,
    *,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str = "demo-key",
) -> WorkloadResult:
    """Serve ``runs`` workflow runs, one after the other, metered by whatever tokenmeter configuration is active.

    ``base_url`` / ``api_key``: an OpenAI-compatible server (default: a local fake started here). ``model``:
    send every call to this model (for servers that serve one model under its own name).
    """
    tokenmeter.instrument("openai")
    llm = LLM(base_url, api_key=api_key, model=model)
    records: list[RunRecord] = []
    t0 = time.perf_counter()
    try:
        for index, kind in enumerate(plan(runs, seed)):
            llm.run = index
            records.append(_serve(llm, random.Random(f"{seed}:{index}"), index, kind))
    finally:
        llm.close()
    return WorkloadResult(records, llm.calls, time.perf_counter() - t0, llm.base_url, llm.fake is not None)


def _serve(llm: LLM, rng: random.Random, index: int, kind: str) -> RunRecord:
    workflow = "support-triage" if kind == "runaway" else kind
    record = RunRecord(index, workflow, TEAMS[workflow], "ok")
    try:
        if kind == "refund":
            agents.refund(llm, rng, index)
        elif kind == "nightly-summarisation":
            agents.nightly_summarisation(llm, rng, index)
        else:
            agents.support_triage(llm, rng, index, runaway=kind == "runaway")
    except tokenmeter.BudgetExceeded as stop:
        record.outcome, record.detail = "stopped", str(stop)  # a real service hands the ticket to a human here
    except (agents.ValidationError, tokenmeter.PolicyViolation) as failure:
        record.outcome, record.detail = "failed", str(failure)
    except openai.BadRequestError as failure:  # e.g. a small real model's context window overflowing
        record.outcome, record.detail = "failed", f"provider refused the request: {failure.message}"
    if record.outcome != "ok":
        for call in llm.calls:
            if call.run == index and call.wasted is None:
                call.wasted = "failed"
    return record
