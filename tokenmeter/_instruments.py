"""Metric instruments and their attributes: an allow-list of low-cardinality dimensions, each capped.

Names and units are the contract dashboards rely on (see ARCHITECTURE.md). Attribute dictionaries are
built once per distinct combination and cached, so recording a call costs dictionary hits and the
SDK's own ``add``/``record``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.metrics import Meter as OtelMeter

from . import _lifecycle
from ._usage import TOKEN_CLASSES

OTHER = "_other"
OVERFLOW = "otel.metric.overflow"  # the OTel SDK's own overflow attribute
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
        self._lock = _lifecycle.lock()

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

    def __init__(
        self,
        meter: OtelMeter,
        *,
        cardinality_limit: int,
        extra_dimensions: Iterable[str],
        max_attribute_sets: int = 2000,
    ) -> None:
        self.limiter = CardinalityLimiter(cardinality_limit)
        self.max_attribute_sets = max_attribute_sets
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
        self.time_to_first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        # The kWh meter: counters are registers summed in-process and read by the SDK at collection time
        # (observable counters), so the hot path is a dictionary hit and a few additions under a lock.
        meter.create_observable_counter(
            "tokenmeter.tokens", [self._observe_tokens], unit="{token}", description="Tokens metered, by class."
        )
        meter.create_observable_counter(
            "tokenmeter.cost",
            [self._observe_cost],
            unit="USD",
            description="Cost of priced tokens by class, and of per-request units by unit.",
        )
        meter.create_observable_counter(
            "tokenmeter.units",
            [self._observe_units],
            unit="{unit}",
            description="Per-request units metered (web searches...; cache_storage in token-seconds), by unit.",
        )
        meter.create_observable_counter(
            "tokenmeter.tokens.unpriced",
            [self._observe_unpriced],
            unit="{token}",
            description="Tokens of models with no known price.",
        )
        meter.create_observable_counter(
            "tokenmeter.calls", [self._observe_calls], unit="{call}", description="LLM calls, by outcome."
        )
        self.wasted_tokens = meter.create_counter(
            "tokenmeter.tokens.wasted", unit="{token}", description="Tokens of attempts retried or steps failed."
        )
        self.wasted_cost = meter.create_counter(
            "tokenmeter.cost.wasted", unit="USD", description="Cost of attempts retried or steps failed."
        )
        self.resent = meter.create_counter(
            "tokenmeter.calls.resent",
            unit="{call}",
            description="Calls resent once without an option tokenmeter added, after the server rejected it.",
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
        meter.create_observable_counter(
            "tokenmeter.policy.decisions",
            [self._observe_decisions],
            unit="{decision}",
            description="Policy decisions on LLM calls.",
        )
        # Set by the governance gate of the meter in force; the gauge is registered once per provider.
        self.budget_observer: Callable[[CallbackOptions], Iterable[Observation]] | None = None
        meter.create_observable_gauge(
            "tokenmeter.budget.utilization",
            [self._observe_budgets],
            unit="1",
            description="Settled spend of each budget's current window over its limit.",
        )
        # Set by the meter in force when configure(customer_metrics=N) (see ``_customers``).
        self.customers: Any = None
        meter.create_observable_gauge(
            "tokenmeter.customer.cost",
            [lambda options: self.customers.observe_cost(options) if self.customers is not None else ()],
            unit="USD",
            description="Window-to-date cost of the top-N customers, the rest as _other (opt-in).",
        )
        meter.create_observable_gauge(
            "tokenmeter.customer.tokens",
            [lambda options: self.customers.observe_tokens(options) if self.customers is not None else ()],
            unit="{token}",
            description="Window-to-date tokens of the top-N customers, the rest as _other (opt-in).",
        )
        # (genai-prices version, data date) of the meter in force: one point with value 1 ("info" metric).
        # A callable is called at collection (the data date needs the price table, loaded off the caller's path).
        self.prices_info: tuple[str, str] | Callable[[], tuple[str, str]] | None = None
        meter.create_observable_gauge(
            "tokenmeter.prices.info",
            [self._observe_prices],
            unit="1",
            description="The price table in use: its version and the newest price date it knows (value 1).",
        )
        self._cache: dict[tuple[Any, ...], CallAttributes] = {}
        self._by_attributes: dict[frozenset[tuple[str, Any]], CallAttributes] = {}
        self._decisions: dict[frozenset[tuple[str, Any]], list[Any]] = {}
        self._lock = _lifecycle.lock()
        self.register_lock = _lifecycle.lock()

    def call_attributes(self, key: tuple[Any, ...]) -> CallAttributes:
        """Attribute sets for the dimension values ``key`` (ordered as ``CALL_DIMENSIONS`` + extras)."""
        found = self._cache.get(key)
        if found is not None:
            return found
        base: dict[str, Any] = {}
        names = CALL_DIMENSIONS + self.extra_dimensions
        for name, value in zip(names, key, strict=False):
            if value is None:
                continue
            base[name] = self.limiter.fold(name, value)
        # Keys that fold to the same attributes (cardinality cap) share one register.
        identity = frozenset(base.items())
        with self._lock:
            built = self._by_attributes.get(identity)
            if built is None and len(self._by_attributes) >= self.max_attribute_sets:
                # The caps bound each dimension, not their product: past max_attribute_sets new
                # combinations are counted together (per semconv key set), as the OTel SDK's overflow.
                base = {k: base[k] for k in SEMCONV_KEYS if k in base}
                base[OVERFLOW] = True
                identity = frozenset(base.items())
                built = self._by_attributes.get(identity)
            if built is None:
                built = self._by_attributes[identity] = CallAttributes(base)
            if len(self._cache) > 50_000:
                self._cache.clear()  # only the key -> register shortcut; registers are kept
            self._cache[key] = built
        return built

    def reconfigure(self, *, cardinality_limit: int, extra_dimensions: Iterable[str], max_attribute_sets: int) -> None:
        """Adopt a new configuration, keeping the registers (counters are cumulative)."""
        self.limiter.limit = cardinality_limit
        self.max_attribute_sets = max_attribute_sets
        extra = tuple(k for k in extra_dimensions if k not in NEVER_ON_METRICS)
        if extra != self.extra_dimensions:
            self.extra_dimensions = extra
            with self._lock:
                self._cache.clear()
        self.budget_observer = None
        self.customers = None

    def _folded(self, dimensions: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.limiter.fold(k, v) for k, v in dimensions.items() if v is not None}

    def record_waste(self, dimensions: Mapping[str, Any], tokens: Sequence[int], cost: Decimal, reason: str) -> None:
        """``tokenmeter.tokens.wasted`` (per class) and ``tokenmeter.cost.wasted`` of retried or failed work."""
        base = self._folded(dimensions)
        base["tokenmeter.waste.reason"] = reason
        for token_class, n in zip(TOKEN_CLASSES, tokens, strict=False):
            if n:
                self.wasted_tokens.add(n, {**base, "tokenmeter.token.class": token_class})
        if cost:
            self.wasted_cost.add(float(cost), base)

    def record_run(self, dimensions: Mapping[str, Any], tokens: int, cost: Decimal, steps: int, *, ok: bool) -> None:
        """One point of each ``tokenmeter.run.*`` histogram for a finished workflow run."""
        attrs = self._folded(dimensions)
        attrs["tokenmeter.outcome"] = "ok" if ok else "error"
        self.run_tokens.record(tokens, attrs)
        self.run_cost.record(float(cost), attrs)
        self.run_steps.record(steps, attrs)

    def decision_register(self, attributes: dict[str, Any]) -> list[Any]:
        """The register ``[attributes, count]`` of one ``tokenmeter.policy.decisions`` attribute set.

        Increment ``register[1]`` under ``register_lock``.
        """
        identity = frozenset(attributes.items())
        with self._lock:
            found = self._decisions.get(identity)
            if found is None:
                found = self._decisions[identity] = [attributes, 0]
            return found

    def _observe_decisions(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            registers = list(self._decisions.values())
        for attributes, n in registers:
            if n:
                yield Observation(n, attributes)

    def _observe_budgets(self, options: CallbackOptions) -> Iterable[Observation]:
        observer = self.budget_observer
        return observer(options) if observer is not None else ()

    def _observe_prices(self, options: CallbackOptions) -> Iterable[Observation]:
        info = self.prices_info
        if info is not None:
            version, data_date = info() if callable(info) else info
            yield Observation(
                1,
                {
                    "tokenmeter.prices.table": "genai-prices",
                    "tokenmeter.prices.version": version,
                    "tokenmeter.prices.data_date": data_date,
                },
            )

    def _registers(self) -> list[CallAttributes]:
        with self._lock:
            return list(self._by_attributes.values())

    def _observe_tokens(self, options: CallbackOptions) -> Iterable[Observation]:
        for reg in self._registers():
            modal = reg.modal
            if not modal:
                for i, n in enumerate(reg.tokens):
                    if n:
                        yield Observation(n, reg.by_class_text[i])
                continue
            text = list(reg.tokens)
            for (i, modality), n in list(modal.items()):
                text[i] -= n
                if n:
                    yield Observation(n, {**reg.by_class[i], "tokenmeter.token.modality": modality})
            for i, n in enumerate(text):
                if n:
                    yield Observation(n, reg.by_class_text[i])

    def _observe_cost(self, options: CallbackOptions) -> Iterable[Observation]:
        for reg in self._registers():
            for i, usd in enumerate(reg.cost):
                if usd:
                    yield Observation(float(usd), reg.by_class[i])
            if reg.unit_cost:
                # A unit's charge is its own part of the cost: ``tokenmeter.token.class`` names the unit.
                for name, usd in list(reg.unit_cost.items()):
                    if usd:
                        yield Observation(float(usd), {**reg.base, "tokenmeter.token.class": name})

    def _observe_units(self, options: CallbackOptions) -> Iterable[Observation]:
        for reg in self._registers():
            if reg.units:
                for name, n in list(reg.units.items()):
                    yield Observation(n, {**reg.base, "tokenmeter.unit": name})

    def _observe_unpriced(self, options: CallbackOptions) -> Iterable[Observation]:
        for reg in self._registers():
            if reg.unpriced:
                yield Observation(reg.unpriced, reg.base)

    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        for reg in self._registers():
            for n, attrs in ((reg.ok_calls, reg.ok), (reg.error_calls, reg.error), (reg.blocked_calls, reg.blocked)):
                if n:
                    yield Observation(n, attrs)


# Attributes of the conventions' histograms: the semconv keys only (cheaper to record, and what
# GenAI dashboards group by). Attribution lives on the tokenmeter.* counters.
SEMCONV_KEYS = ("gen_ai.provider.name", "gen_ai.operation.name", "gen_ai.request.model", "error.type")


class CallAttributes:
    """One attribute set of the call counters: its attribute dictionaries and its registers.

    Registers (``tokens``, ``cost``, call counts) are only changed under ``Instruments.register_lock``.
    """

    __slots__ = (
        "base",
        "blocked",
        "blocked_calls",
        "by_class",
        "by_class_text",
        "cost",
        "error",
        "error_calls",
        "input",
        "modal",
        "ok",
        "ok_calls",
        "output",
        "semconv",
        "semconv_by_response",
        "tokens",
        "unit_cost",
        "units",
        "unpriced",
    )

    def __init__(self, base: dict[str, Any]) -> None:
        self.base = base
        self.by_class = tuple({**base, "tokenmeter.token.class": c} for c in TOKEN_CLASSES)
        # tokenmeter.tokens also says the modality (text unless the provider reported audio/image/video parts).
        self.by_class_text = tuple({**a, "tokenmeter.token.modality": "text"} for a in self.by_class)
        self.semconv = {k: base[k] for k in SEMCONV_KEYS if k in base}
        self.input = {**self.semconv, "gen_ai.token.type": "input"}
        self.output = {**self.semconv, "gen_ai.token.type": "output"}
        self.ok = {**base, "tokenmeter.outcome": "ok"}
        self.error = {**base, "tokenmeter.outcome": "error"}
        self.blocked = {**base, "tokenmeter.outcome": "blocked"}
        self.semconv_by_response: dict[tuple[str | None, str | None], tuple[dict[str, Any], ...]] = {}
        self.tokens = [0, 0, 0, 0, 0]
        self.modal: dict[tuple[int, str], int] = {}  # (class index, modality) -> tokens, non-text only
        self.cost = [Decimal(0)] * 5
        self.units: dict[str, int] = {}  # per-request unit -> count (see tokenmeter._usage.UNITS)
        self.unit_cost: dict[str, Decimal] = {}  # priced unit (and "request" fees) -> USD
        self.unpriced = 0
        self.ok_calls = 0
        self.error_calls = 0
        self.blocked_calls = 0

    def add_units(self, units: tuple[tuple[str, int], ...], costs: tuple[tuple[str, Decimal], ...]) -> None:
        """Add a call's unit counts and unit costs (under ``Instruments.register_lock``)."""
        for name, n in units:
            self.units[name] = self.units.get(name, 0) + n
        for name, usd in costs:
            self.unit_cost[name] = self.unit_cost.get(name, Decimal(0)) + usd

    def semconv_with(
        self, response_model: str | None, server_address: str | None
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The histograms' attributes (all, input, output) with the recommended response model and server."""
        if response_model is None and server_address is None:
            return self.semconv, self.input, self.output
        key = (response_model, server_address)
        found = self.semconv_by_response.get(key)
        if found is None:
            extra: dict[str, Any] = {}
            if response_model is not None:
                extra["gen_ai.response.model"] = response_model
            if server_address is not None:
                extra["server.address"] = server_address
            found = ({**self.semconv, **extra}, {**self.input, **extra}, {**self.output, **extra})
            if len(self.semconv_by_response) < 64:  # response models per request model are few; bounded anyway
                self.semconv_by_response[key] = found
        return found[0], found[1], found[2]


_BY_PROVIDER: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()


def instruments_for(
    provider: Any,
    meter: OtelMeter,
    *,
    cardinality_limit: int,
    extra_dimensions: Iterable[str],
    max_attribute_sets: int = 2000,
) -> Instruments:
    """The instruments of ``provider``: created once, then reused when tokenmeter is reconfigured.

    The SDK hands back an already registered observable instrument (with its first callbacks) when the
    same name is created again on the same provider, so new registers would never be read.
    """
    try:
        found = _BY_PROVIDER.get(provider)
    except TypeError:
        found = None
    if found is not None:
        found.reconfigure(
            cardinality_limit=cardinality_limit,
            extra_dimensions=extra_dimensions,
            max_attribute_sets=max_attribute_sets,
        )
        return found
    created = Instruments(
        meter,
        cardinality_limit=cardinality_limit,
        extra_dimensions=extra_dimensions,
        max_attribute_sets=max_attribute_sets,
    )
    try:
        _BY_PROVIDER[provider] = created
    except TypeError:
        pass
    return created
