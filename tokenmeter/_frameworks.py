"""What framework adapters (``integrations/openai_agents.py``, ``langchain.py``...) share.

An adapter sees a framework's units (agent runs, graph nodes, tool calls) as start / end callbacks rather
than ``with`` blocks. :func:`open_unit` opens the same scope a ``tokenmeter.agent`` / ``step`` / ``tool`` /
``workflow`` decorator would (depth, rollups, run metrics, budgets and the run guard all follow), and
:meth:`Unit.close` leaves it. Tokens are never counted here: the provider integrations' HTTP-client patches
meter every call once. A framework's own usage report is metered by :func:`fallback` only when no provider
integration metered that response (matched by response id, else by the call being made inside a
metered client at all), and is flagged ``tokenmeter.usage.source = framework``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context

from . import _meter, _responses, _safe
from ._call import MeteredCall, Request
from ._context import AttrValue, Scope, current_frame, current_scope
from ._responses import was_metered
from ._scopes import ScopeSpec, _Frame, agent, step, tool, workflow
from ._usage import Usage

_KINDS: dict[str, Callable[..., ScopeSpec]] = {"workflow": workflow, "agent": agent, "step": step, "tool": tool}


class Unit:
    """A framework unit opened as a tokenmeter scope; :meth:`close` once, from the callback that ends it.

    ``parent``: the ``(scope, OTel context)`` to nest in (default: what is in force here). ``activate``:
    make the unit current in this context until it closes (for frameworks whose start and end events run
    in the context of the code they describe); otherwise the adapter names the unit in force through a
    resolver (``tokenmeter._context.add_resolver``).
    """

    __slots__ = ("_active", "_closed", "_frame", "kind", "name")

    def __init__(
        self,
        kind: str,
        name: str,
        attributes: Mapping[str, AttrValue] | None = None,
        *,
        parent: tuple[Scope, otel_context.Context] | None = None,
        activate: bool = True,
    ) -> None:
        self.kind = kind
        self.name = name
        self._closed = False
        self._frame = _Frame(_KINDS[kind](name, **(attributes or {})), parent)
        self._active = activate
        if activate:
            self._frame.activate()

    @property
    def scope(self) -> Scope:
        """The unit's scope."""
        return self._frame.scope

    @property
    def frame(self) -> tuple[Scope, otel_context.Context]:
        """``(scope, OTel context holding the unit's span)``: what a child unit or a call nests in."""
        return self._frame.scope, self._frame._ctx

    @property
    def span(self) -> Any:
        """The unit's span (``None`` when tokenmeter is not configured)."""
        return self._frame.span

    def set_attributes(self, attributes: Mapping[str, AttrValue]) -> None:
        """Add attributes to the unit's span."""
        span = self.span
        if span is not None and span.is_recording():
            span.set_attributes(attributes)

    def add_event(self, name: str, attributes: Mapping[str, AttrValue]) -> None:
        """Add an event to the unit's span."""
        span = self.span
        if span is not None and span.is_recording():
            span.add_event(name, attributes)

    def close(self, error: BaseException | None = None) -> None:
        """Leave the scope (idempotent); ``error`` marks the unit failed (its unsettled tokens are waste)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._active:
                self._frame.deactivate()
        except Exception:
            _safe.log_once("framework.close", "tokenmeter: leaving a framework scope failed")
        finally:
            self._frame.close(error)


def open_unit(
    kind: str,
    name: str,
    attributes: Mapping[str, AttrValue] | None = None,
    *,
    parent: tuple[Scope, otel_context.Context] | None = None,
    activate: bool = True,
) -> Unit | None:
    """Open a ``workflow`` / ``agent`` / ``step`` / ``tool`` scope for a framework unit; ``None`` on a fault."""
    try:
        return Unit(kind, name or kind, attributes, parent=parent, activate=activate)
    except Exception:
        _safe.log_once(f"framework.open:{kind}", "tokenmeter: opening a framework scope failed")
        return None


def tool_keywords(call_id: object, tool_type: str | None = "function") -> dict[str, str]:
    """The ``call_id`` / ``type`` keywords of :func:`tokenmeter.tool` a framework knows (unknown: left out)."""
    found: dict[str, str] = {}
    if isinstance(call_id, str) and call_id:
        found["call_id"] = call_id
    if tool_type:
        found["type"] = tool_type
    return found


class Watch:
    """Watches one model call of a framework (from its start event to its end event, same context): whether
    a provider integration metered it. :meth:`end` says so and stops watching (idempotent)."""

    __slots__ = ("_count", "_token")

    def __init__(self) -> None:
        self._count = [0]
        self._token: Any = _responses.WATCH.set(self._count)

    def end(self) -> bool:
        """Stop watching; ``True`` when a provider integration metered a call meanwhile."""
        token, self._token = self._token, None
        if token is not None:
            try:
                _responses.WATCH.reset(token)
            except ValueError:  # ended in another context than it started in
                _responses.WATCH.set(None)
        return self._count[0] > 0


def track_responses() -> None:
    """Remember the response ids provider integrations meter from now on (a framework adapter is on)."""
    _responses.TRACK = True


def in_run() -> bool:
    """Whether a tokenmeter run (a workflow scope) is in force here."""
    return current_scope().run is not None


class ReportedError(Exception):
    """A failure a framework reported by message only (no exception object reaches the adapter)."""


def fallback(
    framework: str,
    provider: str,
    model: str,
    usage: Usage,
    *,
    response_id: str | None = None,
    response_model: str | None = None,
    metered: bool = False,
) -> bool:
    """Meter a call from the framework's own usage report, unless a provider integration metered it.

    ``metered``: a :class:`Watch` of the call saw a provider integration meter it. Returns whether it
    metered. The usage is flagged estimated: the framework's numbers, not the wire's.
    """
    meter = _meter.active()
    if meter is None or metered or was_metered(response_id):
        return False
    try:
        request = Request(
            provider=provider,
            model=model,
            attributes={"tokenmeter.usage.source": "framework", "tokenmeter.framework.name": framework},
        )
        scope, parent_ctx = current_frame()  # a framework's resolved unit: its span is the call's parent
        call = MeteredCall(meter, request, scope)
        call._start(gated=False, parent_ctx=parent_ctx)
        from dataclasses import replace

        call.stop(replace(usage, estimated=True), response_model=response_model, response_id=response_id)
        return True
    except Exception:
        _safe.log_once(f"framework.fallback:{framework}", "tokenmeter: metering a framework usage report failed")
        return False
