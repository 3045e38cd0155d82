"""Helpers shared by the gate tests: make a metered call the way an integration does, without HTTP."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tokenmeter import MeteredCall, Request, Usage
from tokenmeter._call import begin
from tokenmeter.governance._gate import Gate
from tokenmeter.governance._stores import BucketState
from tokenmeter.testing import Capture

MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Summarise the refund policy in one line."}]


def start(
    model: str = "gpt-4o-mini",
    *,
    max_tokens: int | None = 100,
    messages: Sequence[Any] | None = None,
    provider: str = "openai",
    operation: str = "chat",
) -> MeteredCall:
    """``begin()`` a call as an integration would (raises BudgetExceeded / PolicyViolation when refused)."""
    call = begin(Request(provider, model, operation=operation, max_tokens=max_tokens, messages=messages))
    assert call is not None
    return call


def complete(model: str = "gpt-4o-mini", usage: Usage | None = None, **kwargs: Any) -> MeteredCall:
    """Start a call and finish it with ``usage`` (default: exactly its ``max_tokens`` of output)."""
    call = start(model, **kwargs)
    call.stop(usage if usage is not None else Usage(output=kwargs.get("max_tokens", 100) or 0))
    return call


def gate(cap: Capture) -> Gate:
    g = cap.meter.gate
    assert isinstance(g, Gate)
    return g


def landed(g: Gate) -> None:
    """Wait until this process's queued settles (Redis sends them off the caller's path) are in the store."""
    if g.settler is not None:
        assert g.settler.flush()


def bucket(cap: Capture, name: str) -> BucketState:
    """The current window's bucket of budget ``name`` (once this process's settles landed)."""
    g = gate(cap)
    assert g.store is not None
    landed(g)
    budget = next(b for b in g.budgets if b.name == name)
    now = g.clock()
    return g.store.state(budget.key(now), now)


def decisions(cap: Capture, decision: str, **attrs: Any) -> float:
    return cap.counter("tokenmeter.policy.decisions", **{"tokenmeter.policy.decision": decision}, **attrs)


def events(span: Any, name: str = "tokenmeter.policy.decision") -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == name]


@contextmanager
def redis_sends() -> Iterator[Counter[str]]:
    """Round trips redis-py makes inside the block, by the name of the thread making them: every round trip
    is one ``send_packed_command`` (a pipeline too), counted on the real client (nothing is replaced)."""
    import redis.connection

    sends: Counter[str] = Counter()
    original = redis.connection.Connection.send_packed_command

    def counted(conn: Any, command: Any, check_health: bool = True) -> None:
        sends[threading.current_thread().name] += 1
        original(conn, command, check_health)

    redis.connection.Connection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield sends
    finally:
        redis.connection.Connection.send_packed_command = original  # type: ignore[method-assign]
