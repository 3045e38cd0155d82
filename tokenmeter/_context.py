"""Ambient attribution: who (team; customer, user, session), what (workflow, agent, feature), which
tier/env, how deep, which attempt.

One ``ContextVar`` holds an immutable :class:`Scope`; entering a decorator or ``attributes()`` sets a
new one and leaving restores the old. Team, workflow, tier, env, customer, user, session and feature
also travel as W3C baggage under ``tokenmeter.*`` keys, so a downstream service attributes its calls to
the upstream caller. Entity ids (customer, user, session, feature) are cleaned by :func:`clean_id`.
"""

from __future__ import annotations

import contextvars
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context

from ._rollup import Node

AttrValue = str | bool | int | float

BAGGAGE_KEYS: dict[str, str] = {
    "team": "tokenmeter.team",
    "workflow": "tokenmeter.workflow",
    "tier": "tokenmeter.tier",
    "env": "tokenmeter.env",
    "customer": "tokenmeter.customer",
    "user": "tokenmeter.user",
    "session": "tokenmeter.session",
    "feature": "tokenmeter.feature",
}
ENTITY_FIELDS: tuple[str, ...] = ("customer", "user", "session", "feature")
MAX_ID_CHARS = 128


def clean_id(value: object) -> str:
    """An entity id safe for spans, baggage and store keys: control characters escaped (``\\x1b``),
    at most ``MAX_ID_CHARS`` characters (longer ids are cut and end in ``…``); never raises."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:
        return "_invalid"
    if not text.isprintable():
        text = "".join(
            ch
            if ch.isprintable() or ch == " "
            else (
                f"\\x{ord(ch):02x}"
                if ord(ch) < 0x100
                else f"\\u{ord(ch):04x}"
                if ord(ch) < 0x10000
                else f"\\U{ord(ch):08x}"
            )
            if unicodedata.category(ch)[0] in "CZ"
            else ch
            for ch in text
        )
    if len(text) > MAX_ID_CHARS:
        text = text[: MAX_ID_CHARS - 1] + "…"
    return text


@dataclass(frozen=True, slots=True)
class Run:
    """One workflow run: its id, its root rollup node and its optional per-run limits."""

    run_id: str
    workflow: str
    node: Node
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    started: float = dc_field(default_factory=time.time)
    # The business outcome set with ``tokenmeter.outcome()``: {"outcome": name, "success": bool}.
    marks: dict[str, Any] = dc_field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Scope:
    """The attribution in force for code running now.

    ``team`` / ``workflow`` / ``tier`` / ``env`` / ``agent`` are ``None`` when not set; the entity ids
    ``customer`` / ``user`` / ``session`` / ``feature`` are ``""`` when not set (already cleaned by
    :func:`clean_id`). ``extra`` holds the other keyword attributes.
    """

    team: str | None = None
    workflow: str | None = None
    tier: str | None = None
    env: str | None = None
    agent: str | None = None
    customer: str = ""
    user: str = ""
    session: str = ""
    feature: str = ""
    extra: tuple[tuple[str, AttrValue], ...] = ()
    depth: int = 0
    attempt: int = 0
    run: Run | None = None
    node: Node | None = None

    def with_attributes(self, **values: Any) -> Scope:
        """A copy with the given non-``None`` fields replaced (``extra`` is merged)."""
        extra = values.pop("extra", None)
        changes = {k: v for k, v in values.items() if v is not None}
        if extra:
            merged = dict(self.extra)
            merged.update(extra)
            changes["extra"] = tuple(merged.items())
        return self.derive(**changes) if changes else self

    def derive(self, **changes: Any) -> Scope:
        """A copy with ``changes`` (what ``dataclasses.replace`` does, without its per-call field walk:
        every scope entered builds one)."""
        s = self
        return Scope(
            changes.get("team", s.team),
            changes.get("workflow", s.workflow),
            changes.get("tier", s.tier),
            changes.get("env", s.env),
            changes.get("agent", s.agent),
            changes.get("customer", s.customer),
            changes.get("user", s.user),
            changes.get("session", s.session),
            changes.get("feature", s.feature),
            changes.get("extra", s.extra),
            changes.get("depth", s.depth),
            changes.get("attempt", s.attempt),
            changes.get("run", s.run),
            changes.get("node", s.node),
        )


EMPTY = Scope()
_SCOPE: contextvars.ContextVar[Scope] = contextvars.ContextVar("tokenmeter.scope", default=EMPTY)

# The metered call in progress (while the SDK method runs): an SDK that calls another instrumented SDK
# underneath (LiteLLM -> openai) is metered once, by the outermost integration, and the HTTP requests
# sent meanwhile are that call's attempts (``_transport``).
CURRENT_CALL: contextvars.ContextVar[Any] = contextvars.ContextVar("tokenmeter.current_call", default=None)


# The last (scope, OTel context) -> filled scope: a scope and a context are immutable, and calls in one
# ``with`` block see the same pair, so the baggage is read once per block instead of once per call.
_FILLED: tuple[Scope | None, object, Scope | None] = (None, None, None)


# Framework adapters whose units cannot live in this context (LangChain's async callbacks run in other
# tasks than the code they describe): each resolver says which of its units is in force here, from the
# framework's own context, as ``(scope, OTel context holding the unit's span)``, or ``None``.
Resolver = Callable[[], "tuple[Scope, otel_context.Context] | None"]
_RESOLVERS: list[Resolver] = []


def add_resolver(resolver: Resolver) -> None:
    """Consult ``resolver`` for the scope in force (idempotent)."""
    if resolver not in _RESOLVERS:
        _RESOLVERS.append(resolver)


def remove_resolver(resolver: Resolver) -> None:
    """Stop consulting ``resolver``."""
    if resolver in _RESOLVERS:
        _RESOLVERS.remove(resolver)


def current_frame() -> tuple[Scope, otel_context.Context | None]:
    """The scope in force and, when a framework resolver supplied it, the OTel context of its span.

    A resolver's unit wins over this context's own scope unless that one is deeper (a scope the user
    opened inside the framework's unit).
    """
    scope = _own_scope()
    if _RESOLVERS:
        for resolver in _RESOLVERS:
            try:
                found = resolver()
            except Exception:
                found = None
            if found is not None and found[0].depth >= scope.depth and found[0] is not scope:
                return _with_baggage_fill(found[0]), found[1]
    return scope, None


def current_scope() -> Scope:
    """The scope in force, with attribution from incoming baggage filling what the process did not set."""
    return current_frame()[0] if _RESOLVERS else _with_baggage_fill(_SCOPE.get())


def _own_scope() -> Scope:
    return _with_baggage_fill(_SCOPE.get())


def _with_baggage_fill(scope: Scope) -> Scope:
    global _FILLED
    ctx = otel_context.get_current()
    last = _FILLED
    if last[0] is scope and last[1] is ctx:
        return last[2]  # type: ignore[return-value]
    bag = otel_baggage.get_all(ctx)
    filled = scope
    if bag:
        fill: dict[str, Any] = {}
        for field, key in BAGGAGE_KEYS.items():
            if not getattr(scope, field):
                value = bag.get(key)
                if isinstance(value, str) and value:
                    fill[field] = clean_id(value) if field in ENTITY_FIELDS else value
        if fill:
            filled = scope.derive(**fill)
    _FILLED = (scope, ctx, filled)
    return filled


def add_scope_attributes(scope: Scope, attrs: dict[str, Any]) -> None:
    """Put the scope's attribution on span attributes ``attrs`` (team, workflow, agent, env, run, extras)."""
    if scope.team is not None:
        attrs["tokenmeter.team.name"] = scope.team
    if scope.workflow is not None:
        attrs["gen_ai.workflow.name"] = scope.workflow
    if scope.agent is not None:
        attrs["gen_ai.agent.name"] = scope.agent
    if scope.env is not None:
        attrs["tokenmeter.env"] = scope.env
    if scope.run is not None:
        attrs["tokenmeter.run.id"] = scope.run.run_id
    if scope.customer:
        attrs["tokenmeter.customer.id"] = scope.customer
    if scope.user:
        attrs["user.id"] = scope.user
    if scope.session:
        attrs["session.id"] = scope.session
        attrs["gen_ai.conversation.id"] = scope.session
    if scope.feature:
        attrs["tokenmeter.feature.name"] = scope.feature
    for k, v in scope.extra:
        attrs[k] = v


def set_scope(scope: Scope) -> contextvars.Token[Scope]:
    """Make ``scope`` current; pass the token to :func:`reset_scope`."""
    return _SCOPE.set(scope)


def reset_scope(token: contextvars.Token[Scope]) -> None:
    """Restore the scope that was current before ``set_scope``."""
    _SCOPE.reset(token)


def with_baggage(scope: Scope, ctx: otel_context.Context | None = None) -> otel_context.Context:
    """An OTel context carrying the scope's team/workflow/tier/env as baggage."""
    ctx = ctx if ctx is not None else otel_context.get_current()
    bag = otel_baggage.get_all(ctx)  # one context lookup; set_baggage only for what differs
    for field, key in BAGGAGE_KEYS.items():
        value = getattr(scope, field)
        if value and bag.get(key) != value:
            ctx = otel_baggage.set_baggage(key, str(value), ctx)
    return ctx
