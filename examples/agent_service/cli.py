"""Command line of the demo: configure tokenmeter (a fresh SQLite ledger), serve the workload, print the report."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import textwrap
from typing import Any, TextIO

import tokenmeter

from .workload import DEFAULT_RUNS, DEFAULT_SEED, WorkloadResult, demo_options, run_workload

_WIDTH = 100
_RULE = "-" * _WIDTH


class _BudgetWarningsInReport(logging.Filter):
    """Budget threshold warnings are printed in the report (from the callback), not logged over it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("tokenmeter: budget %r passed")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m examples.agent_service",
        description="A small agent service (3 teams, 3 workflows, small/standard/frontier models) metered by "
        "tokenmeter; prints tokens and cost by team, workflow and tier, waste and per-run spread.",
    )
    p.add_argument(
        "--base-url",
        help="an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (llama.cpp, "
        "vLLM); default: a local fake server started by the demo",
    )
    p.add_argument("--api-key", default="demo-key", help="API key for --base-url (default: %(default)s)")
    p.add_argument("--model", help="send every call to this model (servers that serve one model by name)")
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="workflow runs to serve (default: %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the traffic mix (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the demo; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.runs < 3:
        parser.error("--runs must be at least 3")
    demo(args.runs, args.seed, base_url=args.base_url, model=args.model, api_key=args.api_key)
    return 0


def demo(
    runs: int = DEFAULT_RUNS,
    seed: int = DEFAULT_SEED,
    *,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str = "demo-key",
    out: TextIO | None = None,
    **configure_options: Any,
) -> WorkloadResult:
    """Configure tokenmeter, serve the workload, print the product's ``tokenmeter report`` of the demo's own
    ledger; ``configure_options`` override the demo's ``configure()`` options (tests pass in-memory providers).
    tokenmeter is unconfigured afterwards."""
    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="tokenmeter-demo-") as tmp:
        ledger = f"sqlite:///{tmp}/ledger.db"
        return _demo(runs, seed, base_url, model, api_key, out, ledger, configure_options)


def _demo(
    runs: int,
    seed: int,
    base_url: str | None,
    model: str | None,
    api_key: str,
    out: TextIO,
    ledger: str,
    configure_options: dict[str, Any],
) -> WorkloadResult:
    warnings: list[str] = []

    def on_budget_warning(w: tokenmeter.BudgetWarning) -> None:
        limit = f"${w.budget.limit_usd}" if w.budget.limit_usd is not None else f"{w.budget.limit_tokens:,} tokens"
        warnings.append(
            f"{w.budget.name!r} passed {w.threshold:.0%} of its {limit} per {w.budget.window} "
            f"(now {w.utilization:.0%}; action {w.budget.action!r} at 100%)."
        )

    logger = logging.getLogger("tokenmeter")
    quiet = _BudgetWarningsInReport()
    logger.addFilter(quiet)
    options = demo_options(runs, on_budget_warning=on_budget_warning, served_model=model)
    meter = tokenmeter.configure(**{**options, "ledger": ledger, **configure_options})
    try:
        where = base_url or "a local OpenAI-compatible fake on 127.0.0.1 (--base-url for a real server)"
        _say(
            out,
            f"tokenmeter demo: acme-agents serves {runs} workflow runs (seed {seed}) through the openai "
            f"client against {where}.",
        )
        result = run_workload(runs, seed, base_url=base_url, model=model, api_key=api_key)
        result.budget_warnings = warnings
        stopped = sum(1 for r in result.runs if r.outcome != "ok")
        _say(
            out,
            f"Served {len(result.runs)} runs ({stopped} stopped or failed) with {len(result.calls)} LLM calls "
            f"in {result.seconds:.1f} s.",
        )
        for line in warnings:
            _say(out, f"Budget: {line}")
        meter.shutdown()  # writes the ledger's last rows
        print(f"\n{_RULE}\n$ tokenmeter report --source {ledger}\n", file=out)
        from tokenmeter.cli import main as tokenmeter_cli

        argv = ["report", "--source", ledger] + ([] if out.isatty() else ["--plain"])
        with contextlib.redirect_stdout(out):
            tokenmeter_cli(argv)
        print(file=out)
        _say(
            out,
            "Next: the same numbers as metrics and traces, in Prometheus, Grafana and a trace UI: see the "
            "README, 'Dashboards, alerts and backends'.",
        )
        return result
    finally:
        tokenmeter.unconfigure()
        logger.removeFilter(quiet)


def _say(out: TextIO, text: str) -> None:
    print(textwrap.fill(text, width=_WIDTH, break_on_hyphens=False), file=out)
