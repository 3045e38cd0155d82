"""What governance emits: policy decisions (counter + span events), budget warnings, the utilization gauge."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.metrics import CallbackOptions, Observation

from .. import _safe
from ._budget import REQUESTS, Budget, BudgetWarning
from ._stores import BucketState, BudgetStore, Line, from_nano, to_nano
from ._windows import bounds, label

_log = logging.getLogger("tokenmeter")

DECISION_EVENT = "tokenmeter.policy.decision"
WARNING_EVENT = "tokenmeter.budget.warning"


def utilization(budget: Budget, state: BucketState, line: Line | None = None) -> float:
    """Settled spend over the limit (the larger ratio when a budget has both limits); ``line`` gives the
    bucket's own limits (an entity's override, the request count)."""
    ratios: list[float] = []
    limits = (
        (None if budget.limit_usd is None else to_nano(budget.limit_usd), budget.limit_tokens)
        if line is None
        else (line.limit_usd, line.limit_tokens)
    )
    for limit, spent in ((limits[0], state.spent_usd), (limits[1], state.spent_tokens)):
        if limit is not None:
            ratios.append(spent / limit if limit else 1.0)
    return max(ratios) if ratios else 0.0


class Decisions:
    """Counts decisions in ``tokenmeter.policy.decisions`` (registers read at collection time, like the
    call counters) with cached, cardinality-capped attributes."""

    def __init__(self, instruments: Any) -> None:
        self._instruments = instruments
        self._limiter = instruments.limiter
        self._cache: dict[tuple[str, str | None, str | None, str], list[Any]] = {}

    def count(self, decision: str, team: str | None, workflow: str | None, tier: str) -> None:
        """Add one decision."""
        key = (decision, team, workflow, tier)
        register = self._cache.get(key)
        if register is None:
            attrs = {"tokenmeter.policy.decision": decision}
            for name, value in (
                ("tokenmeter.team.name", team),
                ("gen_ai.workflow.name", workflow),
                ("tokenmeter.model.tier", tier),
            ):
                if value is not None:
                    attrs[name] = self._limiter.fold(name, value)
            if len(self._cache) > 4096:
                self._cache.clear()  # only the key -> register shortcut; registers are kept
            register = self._cache[key] = self._instruments.decision_register(attrs)
        with self._instruments.register_lock:
            register[1] += 1


def event_attributes(decision: str, reason: str, **extra: Any) -> dict[str, Any]:
    """Attributes of a ``tokenmeter.policy.decision`` span event."""
    attrs: dict[str, Any] = {"tokenmeter.policy.decision": decision, "tokenmeter.policy.reason": reason}
    attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs


def add_events(span: Any, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Add span events to ``span`` (the call span, or the enclosing span for a blocked call)."""
    if span is None or not span.is_recording():
        return
    for name, attrs in events:
        span.add_event(name, attrs)


def current_span() -> Any:
    """The span in force (where a blocked call's decision goes, since it never gets its own span)."""
    return otel_trace.get_current_span()


def warn(
    budget: Budget,
    line: Line,
    state: BucketState,
    thresholds: Sequence[float],
    now: float,
    span: Any,
    callback: Callable[[BudgetWarning], Any] | None,
) -> None:
    """Escalate each newly crossed threshold: span event, log record, user callback."""
    start, end = bounds(budget.window, now)
    used = utilization(budget, state, line)
    bucket, entity = budget.split_key(line.key)  # the budget's name, with "[entity]" for a template
    for threshold in thresholds:
        attrs: dict[str, Any] = {
            "tokenmeter.budget.name": budget.name,
            "tokenmeter.budget.threshold": threshold,
            "tokenmeter.budget.utilization": used,
            "tokenmeter.budget.window": budget.window,
            "tokenmeter.budget.window.start": label(start),
        }
        if budget.owner:
            attrs["tokenmeter.budget.owner"] = budget.owner
        if bucket != budget.name:
            attrs["tokenmeter.budget.bucket"] = bucket
        add_events(span, [(WARNING_EVENT, attrs)])
        owner = f" (owner {budget.owner})" if budget.owner else ""
        _log.warning(
            "tokenmeter: budget %r%s passed %d%% of its limit (now %.1f%%) in the %s window from %s",
            bucket,
            owner,
            round(threshold * 100),
            used * 100,
            budget.window,
            label(start),
        )
        if callback is not None:
            try:
                callback(
                    BudgetWarning(
                        budget,
                        threshold,
                        used,
                        datetime.fromtimestamp(start, UTC),
                        datetime.fromtimestamp(end, UTC),
                        from_nano(state.spent_usd),
                        state.spent_tokens,
                        entity,
                    )
                )
            except Exception:
                _safe.log_once("on_budget_warning", "tokenmeter: the on_budget_warning callback raised")


def register_gauge(instruments: Any, budgets: Sequence[Budget], store: BudgetStore, clock: Callable[[], float]) -> None:
    """``tokenmeter.budget.utilization``: one point per budget (templates have one bucket per entity and no
    point), read from the store at collection time, labelled with the budget's owner when it has one."""

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        now = clock()
        out: list[Observation] = []
        for budget in budgets:
            if budget.template or (budget.limit_usd is None and budget.limit_tokens is None):
                continue
            try:
                state = store.state(budget.key(now), now)
            except Exception:  # unavailable, or closed by a shutdown racing the last collection
                _safe.log_once("budget.gauge", "tokenmeter: reading budget utilization failed")
                continue
            attrs = {"tokenmeter.budget.name": budget.name}
            if budget.owner:
                attrs["tokenmeter.budget.owner"] = budget.owner
            out.append(Observation(utilization(budget, state), attrs))
        return out

    instruments.budget_observer = observe


def over(line: Line, state: BucketState) -> bool:
    """Whether a bucket's committed spend is past the line's limit (a ``warn`` budget admits anyway)."""
    return (line.limit_usd is not None and state.spent_usd + state.reserved_usd > line.limit_usd) or (
        line.limit_tokens is not None and state.spent_tokens + state.reserved_tokens > line.limit_tokens
    )


def explain(budget: Budget, line: Line, state: BucketState) -> str:
    """The message of the :class:`~tokenmeter.BudgetExceeded` raised when ``line`` did not fit."""
    parts: list[str] = []
    if line.key.endswith(REQUESTS):
        parts.append(f"{state.spent_tokens} requests made + {state.reserved_tokens} in flight of {line.limit_tokens}")
    else:
        if line.limit_usd is not None:
            parts.append(
                f"${from_nano(state.spent_usd).normalize()} spent + "
                f"${from_nano(state.reserved_usd).normalize()} reserved of "
                f"${from_nano(line.limit_usd).normalize()}, this call ~${from_nano(line.usd).normalize()}"
            )
        if line.limit_tokens is not None:
            parts.append(
                f"{state.spent_tokens} tokens spent + {state.reserved_tokens} reserved of "
                f"{line.limit_tokens}, this call ~{line.tokens}"
            )
    bucket = budget.split_key(line.key)[0]
    owner = f" (owner {budget.owner})" if budget.owner else ""
    return f"budget {bucket!r}{owner} ({budget.window} window) would be exceeded: " + "; ".join(parts)
