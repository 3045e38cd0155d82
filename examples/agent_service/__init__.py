"""The demo agent service: three teams' agents calling LLMs through the real ``openai`` client, metered by tokenmeter.

Run it with ``python -m examples.agent_service`` (``make demo``). Tests and the end-to-end suite call
:func:`run_workload` under their own ``tokenmeter.configure(...)`` (start from :func:`demo_options`).
"""

from .cli import demo, main
from .llm import LLM, CallRecord
from .workload import DEFAULT_RUNS, DEFAULT_SEED, RunRecord, WorkloadResult, demo_options, plan, run_workload

__all__ = [
    "DEFAULT_RUNS",
    "DEFAULT_SEED",
    "LLM",
    "CallRecord",
    "RunRecord",
    "WorkloadResult",
    "demo",
    "demo_options",
    "main",
    "plan",
    "run_workload",
]
