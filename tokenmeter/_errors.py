"""The exceptions tokenmeter raises on purpose (everything else it swallows)."""

from __future__ import annotations


class TokenmeterError(Exception):
    """Base class of tokenmeter's own exceptions."""


class ConfigError(TokenmeterError, ValueError):
    """A configuration option is invalid; the message says which and how to fix it."""


class PolicyViolation(TokenmeterError, RuntimeError):
    """A policy refused an LLM call before it was sent (tier not allowed, approval denied).

    A ``RuntimeError``, so retry logic that leaves programming and runtime errors alone (LangGraph's default
    ``RetryPolicy``, for one) does not send the refused call again: the run stops and the caller sees it.
    """

    def __init__(self, message: str, *, decision: str = "block", model: str | None = None) -> None:
        super().__init__(message)
        self.decision = decision
        self.model = model


class BudgetExceeded(PolicyViolation):
    """A budget or a per-run limit would be exceeded by the call; nothing was sent."""

    def __init__(self, message: str, *, budget: str | None = None, model: str | None = None) -> None:
        super().__init__(message, decision="block", model=model)
        self.budget = budget


class BudgetStoreUnavailable(PolicyViolation):
    """The budget store could not be reached and ``fail_open`` is False, so the call was not sent.

    Not a breach: nothing says the budget is used up. A sibling of :class:`BudgetExceeded` (both are
    :class:`PolicyViolation`), so ``except PolicyViolation`` handles both while each can be told apart.
    """

    def __init__(self, message: str, *, budget: str | None = None, model: str | None = None) -> None:
        super().__init__(message, decision="block", model=model)
        self.budget = budget
