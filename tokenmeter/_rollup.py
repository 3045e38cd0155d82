"""Rollup accumulators: every workflow/agent/step/tool/attempt scope sums the calls beneath it."""

from __future__ import annotations

from decimal import Decimal

from . import _lifecycle
from ._usage import Usage, class_counts

_LOCK = _lifecycle.lock()


class Node:
    """Totals of one scope's subtree; a call adds itself to its node and every ancestor.

    ``tokens`` is indexed like ``TOKEN_CLASSES``. ``wasted_*`` collects what was already reported as
    wasted below this node so that an enclosing failure does not report it twice.
    """

    __slots__ = (
        "calls",
        "cost",
        "errors",
        "parent",
        "provider",
        "retries",
        "steps",
        "tokens",
        "unpriced_tokens",
        "wasted_cost",
        "wasted_tokens",
    )

    def __init__(self, parent: Node | None) -> None:
        self.parent = parent
        self.provider: str | None = None  # the provider of the calls beneath ("" once they are several)
        self.tokens = [0, 0, 0, 0, 0]
        self.cost = Decimal(0)
        self.calls = 0
        self.errors = 0
        self.retries = 0
        self.unpriced_tokens = 0
        self.steps = 0
        self.wasted_tokens = [0, 0, 0, 0, 0]
        self.wasted_cost = Decimal(0)

    def add_call(self, usage: Usage | None, cost: Decimal | None, *, error: bool, provider: str | None = None) -> None:
        """Add one finished LLM call (of ``provider``) to this node and all its ancestors."""
        classes = None if usage is None else class_counts(usage)
        with _LOCK:
            node: Node | None = self
            while node is not None:
                node.calls += 1
                if provider is not None and node.provider != provider:
                    node.provider = provider if node.provider is None else ""
                if error:
                    node.errors += 1
                if classes is not None:
                    t = node.tokens
                    for i, n in enumerate(classes):
                        t[i] += n
                    if cost is None:
                        node.unpriced_tokens += sum(classes)
                if cost is not None:
                    node.cost += cost
                node = node.parent

    def add_retry(self) -> None:
        """Count one retried attempt here and above."""
        with _LOCK:
            node: Node | None = self
            while node is not None:
                node.retries += 1
                node = node.parent

    def add_step(self) -> None:
        """Count one agent/step/tool scope started beneath this node and above."""
        with _LOCK:
            node: Node | None = self
            while node is not None:
                node.steps += 1
                node = node.parent

    def take_unwasted(self) -> tuple[list[int], Decimal]:
        """Mark this subtree's not-yet-wasted tokens and cost as wasted; return them.

        Ancestors learn about it too, so a failure further up reports only what is new.
        """
        with _LOCK:
            tokens = [a - b for a, b in zip(self.tokens, self.wasted_tokens, strict=False)]
            cost = self.cost - self.wasted_cost
            node: Node | None = self
            while node is not None:
                for i, n in enumerate(tokens):
                    node.wasted_tokens[i] += n
                node.wasted_cost += cost
                node = node.parent
        return tokens, cost

    def snapshot(self) -> tuple[list[int], Decimal, int, int, int, int, int]:
        """``(tokens, cost, calls, errors, retries, unpriced_tokens, steps)`` read consistently."""
        with _LOCK:
            return (
                list(self.tokens),
                self.cost,
                self.calls,
                self.errors,
                self.retries,
                self.unpriced_tokens,
                self.steps,
            )
