"""tokenmeter: meter LLM tokens like a utility meters kilowatt-hours, on OpenTelemetry.

    import tokenmeter
    tokenmeter.configure(service_name="support-bot")
    tokenmeter.instrument()              # openai, anthropic, bedrock, gemini, litellm if installed

    @tokenmeter.workflow("refund", team="payments")
    def handle(ticket): ...

Every LLM call becomes a GenAI span and counters tagged with team, workflow, model tier, retry
attempt and step depth, priced in dollars. Without ``configure()`` everything is a near-free no-op.
"""

from __future__ import annotations

from ._call import MeteredCall, Request, record
from ._context import Scope, current_scope
from ._errors import BudgetExceeded, BudgetStoreUnavailable, ConfigError, PolicyViolation, TokenmeterError
from ._instrument import instrument, instrumented, uninstrument
from ._meter import Meter, active, configure, shutdown, unconfigure
from ._prices import Cost, PriceBook
from ._retry import Attempt, attempts
from ._scopes import agent, attributes, outcome, step, tool, workflow
from ._threads import in_context
from ._tokens import TokenCount, count_tokens
from ._usage import MAX_TOKENS, TOKEN_CLASSES, Usage
from .governance import Budget, BudgetWarning, Policy

__all__ = [
    "MAX_TOKENS",
    "TOKEN_CLASSES",
    "Attempt",
    "Budget",
    "BudgetExceeded",
    "BudgetStoreUnavailable",
    "BudgetWarning",
    "ConfigError",
    "Cost",
    "Meter",
    "MeteredCall",
    "Policy",
    "PolicyViolation",
    "PriceBook",
    "Request",
    "Scope",
    "TokenCount",
    "TokenmeterError",
    "Usage",
    "active",
    "agent",
    "attempts",
    "attributes",
    "configure",
    "count_tokens",
    "current_scope",
    "in_context",
    "instrument",
    "instrumented",
    "outcome",
    "record",
    "shutdown",
    "step",
    "tool",
    "unconfigure",
    "uninstrument",
    "workflow",
]
