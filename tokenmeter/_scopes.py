"""``workflow`` / ``agent`` / ``step`` / ``tool`` / ``attributes``: decorators that are also (async) context managers.

Each use opens a :class:`_Frame`: a new :class:`Scope` (attribution, depth, rollup node), a span when
tokenmeter is configured, and baggage for downstream services. Functions, coroutines, generators and
async generators are all supported; a generator's scope is active only while its body runs.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import Status, StatusCode

from . import _meter, _safe
from ._call_usage import scope_usage_attributes
from ._context import (
    AttrValue,
    Run,
    Scope,
    add_scope_attributes,
    clean_id,
    current_frame,
    current_scope,
    reset_scope,
    set_scope,
    with_baggage,
)
from ._errors import PolicyViolation
from ._ids import new_id
from ._instruments import depth_bucket
from ._rollup import Node
from ._scope_metrics import record_scope_duration
from ._usage import TOKEN_CLASSES

F = TypeVar("F", bound=Callable[..., Any])

# Frames entered with ``with`` / ``async with`` and not yet left, in this context.
_OPEN: contextvars.ContextVar[tuple[_Frame, ...]] = contextvars.ContextVar("tokenmeter.open_frames", default=())

_ROLLUP_TOKEN_KEYS = tuple(f"tokenmeter.rollup.tokens.{c}" for c in TOKEN_CLASSES)
_OPERATION = {"workflow": "invoke_workflow", "agent": "invoke_agent", "tool": "execute_tool", "step": None}


class _Frame:
    """One active use of a scope spec: the scope, its span and the tokens needed to leave it."""

    __slots__ = ("_ctx", "_parent", "_parent_ctx", "_tokens", "node", "scope", "span", "spec")

    def __init__(self, spec: ScopeSpec, parent_frame: tuple[Scope, otel_context.Context] | None = None) -> None:
        self.spec = spec
        self.span: Any = None
        self._tokens: list[Any] = []
        if parent_frame is None:  # nested in what is in force here (or in a framework's unit, see _context)
            parent, ctx = current_frame()
            parent_frame = (parent, ctx if ctx is not None else otel_context.get_current())
        parent, self._parent_ctx = parent_frame
        self._parent = parent
        kind = spec.kind
        node: Node | None = None
        run = parent.run
        fields: dict[str, Any] = dict(spec.fields)
        if kind == "workflow":
            node = Node(parent.node)
            fields["workflow"] = spec.name
            run = Run(new_id(), spec.name, node, spec.max_tokens, spec.max_cost_usd)
            depth = parent.depth if parent.run is None else parent.depth + 1
        elif kind in ("agent", "step", "tool"):
            node = Node(parent.node)
            if parent.node is not None:
                parent.node.add_step()
            depth = parent.depth + 1
            if kind == "agent":
                fields["agent"] = spec.name
        else:
            depth = parent.depth
        scope = parent.with_attributes(extra=spec.extra, **fields)
        if node is not None or run is not parent.run or depth != parent.depth:
            scope = scope.derive(depth=depth, run=run, node=node if node is not None else parent.node)
        self.scope = scope
        self.node = node
        ctx = with_baggage(scope, self._parent_ctx)
        if node is not None:
            ctx = self._open_span(ctx)
        self._ctx = ctx

    def _open_span(self, ctx: otel_context.Context) -> otel_context.Context:

        meter = _meter.active()
        if meter is None:
            return ctx
        try:
            spec, scope = self.spec, self.scope
            operation = _OPERATION[spec.kind]
            attrs: dict[str, Any] = {"tokenmeter.step.depth": scope.depth}
            name = f"{operation} {spec.name}" if operation else f"step {spec.name}"
            if operation:
                attrs["gen_ai.operation.name"] = operation
            if spec.kind == "tool":
                attrs["gen_ai.tool.name"] = spec.name
                attrs.update(spec.span_attributes)
            elif spec.kind == "step":
                attrs["tokenmeter.step.name"] = spec.name
            if scope.tier is not None:
                attrs["tokenmeter.model.tier"] = scope.tier
            if scope.attempt:
                attrs["tokenmeter.retry.attempt"] = scope.attempt
            add_scope_attributes(scope, attrs)
            self.span = meter.tracer.start_span(name, context=ctx, attributes=attrs)
            return otel_trace.set_span_in_context(self.span, ctx)
        except Exception:
            _safe.log_once("scope.span", "tokenmeter: opening a scope span failed")
            return ctx

    def activate(self) -> None:
        self._tokens.append((set_scope(self.scope), otel_context.attach(self._ctx)))

    def deactivate(self) -> None:
        scope_token, ctx_token = self._tokens.pop()
        try:
            reset_scope(scope_token)
        except ValueError:
            # Left in another context than it was entered in (e.g. a generator stepped through a thread
            # pool): restore the parent explicitly instead of raising into the host.
            set_scope(self._parent)
            otel_context.attach(self._parent_ctx)
            return
        otel_context.detach(ctx_token)

    def close(self, error: BaseException | None) -> None:
        """End the span with the subtree's rollups; report waste and the run if this frame owns them."""
        node = self.node
        if node is None:
            return
        try:
            meter = _meter.active()
            if error is not None and meter is not None:
                report_waste(meter, self.scope, node, "failed")
            tokens, cost, calls, errors, retries, unpriced, steps = node.snapshot()
            if meter is not None:
                if self.spec.kind == "workflow":
                    _record_run(meter, self.scope, tokens, cost, unpriced, calls, steps + calls, error)
                elif self.scope.run is not None:
                    meter.ledger.step(self.scope.run.run_id, self.scope.depth, error is None)
            span = self.span
            if span is None:
                return
            if span.is_recording():
                attrs: dict[str, Any] = dict(zip(_ROLLUP_TOKEN_KEYS, tokens, strict=True))
                attrs["tokenmeter.rollup.tokens.total"] = sum(tokens)
                attrs["tokenmeter.rollup.cost.usd"] = float(cost)
                attrs["tokenmeter.rollup.calls"] = calls
                attrs["tokenmeter.rollup.errors"] = errors
                attrs["tokenmeter.rollup.retries"] = retries
                attrs["tokenmeter.rollup.steps"] = steps
                attrs["tokenmeter.rollup.tokens.unpriced"] = unpriced
                if calls:
                    scope_usage_attributes(attrs, tokens, meter.cache_write_keys if meter is not None else ())
                    if self.spec.kind == "agent" and node.provider:
                        attrs["gen_ai.provider.name"] = node.provider  # the one provider its calls used
                span.set_attributes(attrs)
                if error is not None:
                    span.set_attribute("error.type", type(error).__name__)
                    span.set_status(Status(StatusCode.ERROR, str(error)[:256]))
            span.end()
            start, end = getattr(span, "start_time", None), getattr(span, "end_time", None)
            if meter is not None and isinstance(start, int) and isinstance(end, int):
                record_scope_duration(meter, self.spec.kind, self.spec.name, (end - start) / 1e9, error)
        except Exception:
            _safe.log_once("scope.close", "tokenmeter: closing a scope failed")


def report_waste(meter: Any, scope: Scope, node: Node, reason: str) -> None:
    """Emit the not-yet-reported tokens and cost of ``node``'s subtree as wasted."""
    tokens, cost = node.take_unwasted()
    total = sum(tokens)
    if not total and not cost:
        return
    dimensions = {
        "gen_ai.workflow.name": scope.workflow,
        "gen_ai.agent.name": scope.agent,
        "tokenmeter.team.name": scope.team,
        "tokenmeter.model.tier": scope.tier,
        "tokenmeter.env": scope.env,
        "tokenmeter.step.depth": depth_bucket(scope.depth),
    }
    meter.instruments.record_waste(dimensions, tokens, cost, reason)
    meter.ledger.waste(scope, tokens, cost)


def _record_run(
    meter: Any,
    scope: Scope,
    by_class: list[int],
    cost: Any,
    unpriced: int,
    calls: int,
    steps: int,
    error: BaseException | None,
) -> None:
    tokens = sum(by_class)
    dimensions = {
        "gen_ai.workflow.name": scope.workflow,
        "tokenmeter.team.name": scope.team,
        "tokenmeter.model.tier": scope.tier,
        "tokenmeter.env": scope.env,
    }
    meter.instruments.record_run(dimensions, tokens, cost, steps, ok=error is None)
    if scope.run is not None:
        outcome = "ok" if error is None else "stopped" if isinstance(error, PolicyViolation) else "error"
        meter.ledger.run(scope, scope.run, by_class, cost, unpriced, calls, steps, outcome)


def outcome(name: str, *, success: bool | None = None) -> None:
    """Record the business outcome of the current workflow run (``"resolved"``, ``"failed"``, ...).

    Use it when "no exception" is not success: the report's run success rate and cost per successful run
    count a run as successful only if it finished without an exception *and* its outcome is a success.
    ``success`` defaults to whether ``name`` is one of ``resolved``, ``success``, ``succeeded``, ``ok``,
    ``completed``, ``done``, ``converted``, ``accepted``. Outside a workflow run it does nothing.
    """
    scope = current_scope()
    if scope.run is None:
        return
    if success is None:
        success = name.strip().lower() in _SUCCESS
    scope.run.marks["outcome"] = name
    scope.run.marks["success"] = bool(success)


_SUCCESS = frozenset({"resolved", "success", "succeeded", "ok", "completed", "done", "converted", "accepted"})


class ScopeSpec:
    """A reusable scope description; decorate with it or enter it with ``with`` / ``async with``."""

    def __init__(
        self,
        kind: str,
        name: str,
        fields: dict[str, Any],
        extra: dict[str, AttrValue],
        *,
        max_tokens: int | None = None,
        max_cost_usd: float | None = None,
        span_attributes: dict[str, AttrValue] | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.fields = {k: v for k, v in fields.items() if v is not None}
        self.extra = extra
        # Attributes of this scope's own span only (not inherited by the spans and calls inside it).
        self.span_attributes = span_attributes or {}
        self.max_tokens = max_tokens
        self.max_cost_usd = max_cost_usd
        self._frames: list[_Frame] = []  # open frames of this spec, whatever context they were entered in

    # -- context manager -------------------------------------------------------------------------
    def __enter__(self) -> Scope:
        frame = _Frame(self)
        frame.activate()
        _OPEN.set((*_OPEN.get(), frame))
        self._frames.append(frame)
        return frame.scope

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        # The frame this spec opened in *this* context (a spec may be entered by several tasks at once);
        # failing that (left from another context, e.g. a generator stepped through a thread pool), the
        # spec's most recent open frame.
        frames = _OPEN.get()
        index = next((i for i in range(len(frames) - 1, -1, -1) if frames[i].spec is self), None)
        if index is not None:
            frame = frames[index]
            _OPEN.set(frames[:index] + frames[index + 1 :])
        elif self._frames:
            frame = self._frames[-1]
        else:
            return
        try:
            self._frames.remove(frame)
            frame.deactivate()
        except Exception:
            _safe.log_once("scope.exit", "tokenmeter: leaving a scope failed")
        finally:
            frame.close(None if isinstance(exc, GeneratorExit) else exc)

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- decorator -----------------------------------------------------------------------------
    def __call__(self, fn: F) -> F:
        spec = self
        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
                frame = _Frame(spec)
                error: BaseException | None = None
                gen = fn(*args, **kwargs)
                try:
                    sent: Any = None
                    thrown: BaseException | None = None
                    while True:
                        frame.activate()
                        try:
                            item = await (gen.asend(sent) if thrown is None else gen.athrow(thrown))
                        except StopAsyncIteration:
                            return
                        finally:
                            frame.deactivate()
                        thrown = None
                        try:
                            sent = yield item
                        except GeneratorExit:
                            raise
                        except BaseException as exc:  # athrow(): hand it to the user's generator
                            thrown = exc
                except BaseException as exc:
                    error = exc if not isinstance(exc, GeneratorExit) else None
                    raise
                finally:
                    await gen.aclose()
                    frame.close(error)

            return agen_wrapper  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
                frame = _Frame(spec)
                error: BaseException | None = None
                gen = fn(*args, **kwargs)
                try:
                    sent: Any = None
                    thrown: BaseException | None = None
                    while True:
                        frame.activate()
                        try:
                            item = gen.send(sent) if thrown is None else gen.throw(thrown)
                        except StopIteration as stop:
                            return stop.value
                        finally:
                            frame.deactivate()
                        thrown = None
                        try:
                            sent = yield item
                        except GeneratorExit:
                            raise
                        except BaseException as exc:  # throw(): hand it to the user's generator
                            thrown = exc
                except BaseException as exc:
                    error = exc if not isinstance(exc, GeneratorExit) else None
                    raise
                finally:
                    gen.close()
                    frame.close(error)

            return gen_wrapper  # type: ignore[return-value]
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                frame = _Frame(spec)
                frame.activate()
                error: BaseException | None = None
                try:
                    return await fn(*args, **kwargs)
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    frame.deactivate()
                    frame.close(error)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            frame = _Frame(spec)
            frame.activate()
            error: BaseException | None = None
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:
                error = exc
                raise
            finally:
                frame.deactivate()
                frame.close(error)

        return wrapper  # type: ignore[return-value]


def _entities(customer: object, user: object, session: object, feature: object) -> dict[str, str]:
    values = {"customer": customer, "user": user, "session": session, "feature": feature}
    return {k: clean_id(v) for k, v in values.items() if v is not None and v != ""}


def workflow(
    name: str,
    *,
    team: str | None = None,
    tier: str | None = None,
    env: str | None = None,
    customer: str | None = None,
    user: str | None = None,
    session: str | None = None,
    feature: str | None = None,
    max_tokens: int | None = None,
    max_cost_usd: float | None = None,
    **attrs: AttrValue,
) -> ScopeSpec:
    """A workflow run: span ``invoke_workflow {name}``, a new ``tokenmeter.run.id`` and run metrics.

    ``max_tokens`` / ``max_cost_usd`` guard the run: a call that would take it over raises
    :class:`BudgetExceeded` before it is sent. ``customer`` / ``user`` / ``session`` / ``feature``
    attribute the calls inside as in :func:`attributes`. Extra keyword attributes go on spans (and on
    metrics if listed in ``configure(metric_attributes=...)``).
    """
    return ScopeSpec(
        "workflow",
        name,
        {"team": team, "tier": tier, "env": env, **_entities(customer, user, session, feature)},
        attrs,
        max_tokens=max_tokens,
        max_cost_usd=max_cost_usd,
    )


def agent(name: str, **attrs: AttrValue) -> ScopeSpec:
    """An agent: span ``invoke_agent {name}``, ``gen_ai.agent.name`` on everything inside, depth + 1."""
    return ScopeSpec("agent", name, {}, attrs)


def step(name: str, **attrs: AttrValue) -> ScopeSpec:
    """A step of an agent (plan, validate, summarise...): span ``step {name}``, depth + 1."""
    return ScopeSpec("step", name, {}, attrs)


TOOL_TYPES: tuple[str, ...] = ("function", "extension", "datastore")
"""The ``gen_ai.tool.type`` values the GenAI conventions list."""


def tool(name: str, *, call_id: str | None = None, type: str | None = None, **attrs: AttrValue) -> ScopeSpec:
    """A tool execution: span ``execute_tool {name}`` with ``gen_ai.tool.name``, depth + 1.

    ``call_id`` (``gen_ai.tool.call.id``: the id the model gave the tool call) and ``type``
    (``gen_ai.tool.type``: ``function``, ``extension`` or ``datastore``, see :data:`TOOL_TYPES`) go on the
    tool's own span when known; an empty value is left out. Neither is inherited by spans inside.
    """
    span_attrs: dict[str, AttrValue] = {}
    if isinstance(call_id, str) and call_id:
        span_attrs["gen_ai.tool.call.id"] = call_id[:256]
    if isinstance(type, str) and type:
        span_attrs["gen_ai.tool.type"] = type
    return ScopeSpec("tool", name, {}, attrs, span_attributes=span_attrs)


def attributes(
    *,
    team: str | None = None,
    workflow: str | None = None,
    tier: str | None = None,
    env: str | None = None,
    customer: str | None = None,
    user: str | None = None,
    session: str | None = None,
    feature: str | None = None,
    **extra: AttrValue,
) -> ScopeSpec:
    """Ambient attribution for everything inside (no span): team, workflow, tier, env, entities and extras.

    ``customer`` (span attribute ``tokenmeter.customer.id``), ``user`` (``user.id``), ``session``
    (``session.id`` and ``gen_ai.conversation.id``) and ``feature`` (``tokenmeter.feature.name``) go on
    every span inside and travel as baggage; ids are cut to 128 characters and control characters
    escaped. They are not metric attributes (unbounded): per-customer metrics come only from the
    opt-in top-N dimension (``configure(customer_metrics=N)``); budgets can scope by them.
    """
    fields = {
        "team": team,
        "workflow": workflow,
        "tier": tier,
        "env": env,
        **_entities(customer, user, session, feature),
    }
    return ScopeSpec("attributes", "", fields, extra)
