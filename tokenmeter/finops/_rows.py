"""The rows every FinOps reader yields and every FinOps output consumes.

One report model, several readers (the SQLite ledger, a Prometheus-compatible TSDB, an in-memory meter):
each reader turns what it stores into :class:`UsageRow` and :class:`RunRow`; the report, the forecast and
the FOCUS export read only these types, never a reader's own storage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

Granularity = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Tokens of one token class, aggregated over one period for one attribution.

    ``cost_usd`` is what was charged at the effective (contracted) price: overrides and multipliers
    applied, or the provider-reported cost. ``list_cost_usd`` is the same tokens at the price table's
    published rate. Both are ``None`` when the tokens are unpriced (never ``0`` for "unknown").
    ``calls`` counts metered calls once per call: readers put a call's count on exactly one of its
    token-class rows (the ``input`` row, or the first class the call reported), so summing ``calls``
    over rows counts each call once.

    A *unit row* charges per-request units instead of tokens: its ``token_class`` is the unit's name
    (``web_search``, ``web_fetch``, ``file_search``, ``code_execution``, ``cache_storage`` in token-seconds,
    ``request`` for a per-call fee; see ``tokenmeter._usage.UNITS``), ``tokens`` is 0 and ``units`` is how
    many were charged (0 on rows a reader cannot count: a ledger written before schema 2, a TSDB).
    """

    start: datetime  # period start, UTC, aware
    end: datetime  # period end (exclusive), UTC, aware
    env: str
    team: str
    workflow: str
    agent: str
    tier: str
    provider: str
    model: str
    operation: str
    token_class: str  # one of tokenmeter.TOKEN_CLASSES
    outcome: str = "ok"  # ok / error / blocked
    customer: str = ""
    tokens: int = 0
    cost_usd: Decimal | None = None
    list_cost_usd: Decimal | None = None
    cost_source: str = "unpriced"  # table:<name>@<version> / override / provider / unpriced
    unpriced_tokens: int = 0
    estimated_tokens: int = 0
    wasted_tokens: int = 0
    wasted_cost_usd: Decimal = Decimal(0)
    calls: int = 0
    context_tier: str = ""  # the price's context tier (e.g. ">200k" prompt pricing); "" for the default tier
    units: int = 0  # on a unit row: how many units were charged (searches, token-seconds, requests...)


@dataclass(frozen=True, slots=True)
class RunRow:
    """One finished workflow run."""

    run_id: str
    workflow: str
    team: str
    env: str
    start: datetime
    duration_s: float
    calls: int
    steps: int
    max_depth: int
    tokens: dict[str, int] = field(default_factory=dict)  # per token class
    cost_usd: Decimal | None = None
    outcome: str = "ok"  # ok / error / stopped
    business_outcome: str | None = None
    customer: str = ""
    # Added by the ledger (defaults keep older readers valid): whether the run counts as a success (``None``:
    # decided by ``outcome == "ok"``), and per step depth ``(ok, failed)`` steps and LLM calls.
    succeeded: bool | None = None
    step_results: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        """Ok and, when a business outcome was given with ``tokenmeter.outcome()``, a successful one."""
        return self.outcome == "ok" if self.succeeded is None else (self.outcome == "ok" and self.succeeded)

    @property
    def total_tokens(self) -> int:
        """Tokens of every class."""
        return sum(self.tokens.values())


class Reader(Protocol):
    """A source of FinOps rows: the SQLite ledger, a Prometheus-compatible TSDB, an in-memory meter."""

    def describe(self) -> str:
        """Where the rows come from, for report headers and error messages."""
        ...

    def usage(
        self, start: datetime, end: datetime, *, env: str | None = None, granularity: Granularity = "day"
    ) -> Iterable[UsageRow]:
        """Usage rows whose period lies in ``[start, end)``, aggregated to ``granularity``."""
        ...

    def runs(self, start: datetime, end: datetime, *, env: str | None = None) -> Iterable[RunRow]:
        """Runs that started in ``[start, end)``; a reader that keeps no per-run rows yields none."""
        ...
