"""Metric instruments and their attributes: an allow-list of low-cardinality dimensions, each capped.

Names and units are the contract dashboards rely on (see ARCHITECTURE.md). Attribute dictionaries are
built once per distinct combination and cached, so recording a call costs dictionary hits and the
SDK's own ``add``/``record``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import Meter as OtelMeter

from ._usage import TOKEN_CLASSES

OTHER = "_other"
TOKEN_BUCKETS = [4.0**i for i in range(14)]  # 1, 4, 16, ... 67108864 (semconv advice)
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
RUN_TOKEN_BUCKETS = [4.0**i for i in range(4, 15)]  # 256 ... 268M tokens per run
RUN_COST_BUCKETS = [0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 100.0]
RUN_STEP_BUCKETS = [1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0, 89.0, 144.0]

DEPTH_CAP = 6

# Dimensions allowed on metrics, in the order of the cache key built by the call path.
CALL_DIMENSIONS = (
    "gen_ai.provider.name",
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.workflow.name",
    "gen_ai.agent.name",
    "tokenmeter.team.name",
    "tokenmeter.model.tier",
    "tokenmeter.env",
    "tokenmeter.retried",
    "tokenmeter.step.depth",
    "error.type",
)
NEVER_ON_METRICS = frozenset({"tokenmeter.run.id", "gen_ai.conversation.id", "gen_ai.response.id"})


def depth_bucket(depth: int) -> str:
    """``tokenmeter.step.depth`` on metrics: ``"0"`` ... ``"5"``, then ``"6+"``."""
    return str(depth) if depth < DEPTH_CAP else f"{DEPTH_CAP}+"


class CardinalityLimiter:
    """Lets at most ``limit`` distinct values through per dimension; later ones become ``"_other"``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: dict[str, set[Any]] = {}
        self._lock = threading.Lock()

    def fold(self, key: str, value: Any) -> Any:
        """``value`` if it is known or there is room for it, else ``"_other"``."""
        seen = self._seen.get(key)
        if seen is not None and value in seen:
            return value
        with self._lock:
            seen = self._seen.setdefault(key, set())
            if value in seen:
                return value
            if len(seen) >= self.limit:
                return OTHER
            seen.add(value)
            return value


class Instruments:
    """The instruments of one configured meter, plus the cached attribute sets they are recorded with."""

    def __init__(self, meter: OtelMeter, *, cardinality_limit: int, extra_dimensions: Iterable[str]) -> None:
        self.limiter = CardinalityLimiter(cardinality_limit)
        self.extra_dimensions = tuple(k for k in extra_dimensions if k not in NEVER_ON_METRICS)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used per call.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.tokens = meter.create_counter("tokenmeter.tokens", unit="{token}", description="Tokens metered, by class.")
        self.cost = meter.create_counter("tokenmeter.cost", unit="USD", description="Cost of priced tokens, by class.")
        self.unpriced = meter.create_counter(
            "tokenmeter.tokens.unpriced", unit="{token}", description="Tokens of models with no known price."
        )
        self.calls = meter.create_counter("tokenmeter.calls", unit="{call}", description="LLM calls, by outcome.")
        self.wasted_tokens = meter.create_counter(
            "tokenmeter.tokens.wasted", unit="{token}", description="Tokens of attempts retried or steps failed."
        )
        self.wasted_cost = meter.create_counter(
            "tokenmeter.cost.wasted", unit="USD", description="Cost of attempts retried or steps failed."
        )
        self.run_tokens = meter.create_histogram(
            "tokenmeter.run.tokens",
            unit="{token}",
            description="Tokens per finished workflow run.",
            explicit_bucket_boundaries_advisory=RUN_TOKEN_BUCKETS,
        )
        self.run_cost = meter.create_histogram(
            "tokenmeter.run.cost",
            unit="USD",
            description="Cost per finished workflow run.",
            explicit_bucket_boundaries_advisory=RUN_COST_BUCKETS,
        )
        self.run_steps = meter.create_histogram(
            "tokenmeter.run.steps",
            unit="{step}",
            description="Agent/step/tool scopes and LLM calls per finished workflow run.",
            explicit_bucket_boundaries_advisory=RUN_STEP_BUCKETS,
        )
        self.policy_decisions = meter.create_counter(
            "tokenmeter.policy.decisions", unit="{decision}", description="Policy decisions on LLM calls."
        )
        self._cache: dict[tuple[Any, ...], CallAttributes] = {}
        self._lock = threading.Lock()

    def call_attributes(self, key: tuple[Any, ...]) -> CallAttributes:
        """Attribute sets for the dimension values ``key`` (ordered as ``CALL_DIMENSIONS`` + extras)."""
        found = self._cache.get(key)
        if found is not None:
            return found
        base: dict[str, Any] = {}
        names = CALL_DIMENSIONS + self.extra_dimensions
        for name, value in zip(names, key):
            if value is None:
                continue
            base[name] = self.limiter.fold(name, value)
        built = CallAttributes(base)
        with self._lock:
            if len(self._cache) > 20_000:
                self._cache.clear()
            self._cache[key] = built
        return built


class CallAttributes:
    """The attribute dictionaries one call is recorded with (shared, never mutated)."""

    __slots__ = ("base", "by_class", "input", "output", "ok", "error", "blocked")

    def __init__(self, base: dict[str, Any]) -> None:
        self.base = base
        self.by_class = tuple({**base, "tokenmeter.token.class": c} for c in TOKEN_CLASSES)
        self.input = {**base, "gen_ai.token.type": "input"}
        self.output = {**base, "gen_ai.token.type": "output"}
        self.ok = {**base, "tokenmeter.outcome": "ok"}
        self.error = {**base, "tokenmeter.outcome": "error"}
        self.blocked = {**base, "tokenmeter.outcome": "blocked"}
