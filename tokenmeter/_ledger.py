"""Totals of one attribution key, as ``meter.ledger.rollup(by)`` returns them.

The ledger itself (in memory and on disk) lives in :mod:`tokenmeter.finops`; this record stays for code that
reads per-team / per-model totals of the running process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass
class Totals:
    """Token, cost and call totals of one attribution key."""

    tokens: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])
    cost: Decimal = Decimal(0)
    unpriced_tokens: int = 0
    calls: int = 0
    errors: int = 0
    blocked: int = 0
    wasted_tokens: int = 0
    wasted_cost: Decimal = Decimal(0)

    @property
    def total_tokens(self) -> int:
        """All tokens of every class."""
        return sum(self.tokens)
