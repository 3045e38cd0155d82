"""CrewAI: crews, tasks, agents and tools become tokenmeter scopes.

CrewAI reports its units on its event bus (``crewai.events.crewai_event_bus``). Its listeners run later, in a
thread pool, so a listener would open a unit after the model calls it should contain had already gone out;
the adapter instead follows each event as it is emitted (``CrewAIEventsBus._prepare_event``, which every
``emit`` / ``aemit`` runs in the emitting code's own context, once CrewAI has given the event its id and
updated its scope stack):

* ``crew_kickoff_started`` outside any tokenmeter workflow -> ``invoke_workflow {crew}`` (a run: budgets and
  the per-run guard apply to it); inside one (a crew kicked off in the user's ``tokenmeter.workflow`` or in
  another crew's tool) -> ``step {crew}``;
* ``task_started`` -> ``step {task name}`` (the description, shortened, for an unnamed task);
* ``agent_execution_started`` -> ``invoke_agent {role}``; ``Agent.kickoff()`` outside a crew
  (``lite_agent_execution_started``) -> ``invoke_agent {role}``, under ``invoke_workflow {role}`` outside a run;
* ``tool_usage_started`` -> ``execute_tool {tool}``;
* a Flow (``flow_started``) -> ``invoke_workflow {flow}`` outside a run, ``step {flow}`` inside one; each of
  its methods (``method_execution_started``) -> ``step {method}``, so a crew kicked off in a method is a step
  of the flow's run (the Flow CrewAI's agent executor runs internally is left out);
* the matching completed / failed / error events close them (a failure marks the unit failed).

CrewAI runs an agent's model calls and tools in worker threads (its executor's event loop), so units are
never made current by the adapter: CrewAI keeps a stack of the events in force in a context variable it
carries into those threads (``crewai.events.event_context``), and a resolver names the innermost unit on that
stack wherever tokenmeter meters a call or the user opens ``tokenmeter.step`` / ``tool``.

Tokens are metered by the provider integration under CrewAI's LLM (its native ``openai`` / ``anthropic`` /
``gemini`` / ``bedrock`` providers use those SDKs; other models go through LiteLLM). CrewAI's own usage
report (``llm_call_completed``) is metered only where none of them metered the call, flagged
``tokenmeter.usage.source = framework`` and estimated.

A :class:`tokenmeter.PolicyViolation` (``BudgetExceeded``...) is added to the exceptions CrewAI's agent lets
through its ``max_retry_limit`` loop (``crewai.agent.core._passthrough_exceptions``) while instrumented, so a
refused call stops the crew and reaches the caller instead of re-running the agent's task.
Tested with crewai 1.15.30 (openai 2.x, in ``.venv-crewai``).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from tokenmeter import Usage
from tokenmeter._context import Scope, add_resolver, remove_resolver
from tokenmeter._errors import PolicyViolation
from tokenmeter._frameworks import ReportedError, Unit, Watch, fallback, in_run, open_unit, track_responses
from tokenmeter._patch import Patcher

from ._fields import count

EXTRA = "crewai"
"""The pip extra: ``pip install 'tokenmeter[crewai]'``."""

SDK_MODULE = "crewai"
"""The framework's module."""

FRAMEWORK = "crewai"

_EVENT_BUS = "crewai.events.event_bus"
_CONTEXT = "crewai.events.event_context"
_AGENT_CORE = "crewai.agent.core"
_MAX_NAME = 64
_MAX_WATCHES = 4096

# ending event type -> (the starting event type it closes, whether it reports a failure)
_ENDS: dict[str, tuple[str, bool]] = {
    "crew_kickoff_completed": ("crew_kickoff_started", False),
    "crew_kickoff_failed": ("crew_kickoff_started", True),
    "task_completed": ("task_started", False),
    "task_failed": ("task_started", True),
    "agent_execution_completed": ("agent_execution_started", False),
    "agent_execution_error": ("agent_execution_started", True),
    "lite_agent_execution_completed": ("lite_agent_execution_started", False),
    "lite_agent_execution_error": ("lite_agent_execution_started", True),
    "tool_usage_finished": ("tool_usage_started", False),
    "tool_usage_error": ("tool_usage_started", True),
    "flow_finished": ("flow_started", False),
    "flow_failed": ("flow_started", True),
    "flow_paused": ("flow_started", False),
    "method_execution_finished": ("method_execution_started", False),
    "method_execution_failed": ("method_execution_started", True),
    "method_execution_paused": ("method_execution_started", False),
}
# CrewAI's provider names (LLM.provider) -> tokenmeter's, for the fallback's call spans
_PROVIDERS = {"openai": "openai", "azure": "azure.ai.openai", "anthropic": "anthropic", "bedrock": "aws.bedrock"}


def _short(text: Any) -> str:
    """A unit name from a free-text label: one line, at most ``_MAX_NAME`` characters."""
    line = " ".join(str(text or "").split())
    return line if len(line) <= _MAX_NAME else line[: _MAX_NAME - 1].rstrip() + "…"


def _usage(report: Any) -> Usage | None:
    """CrewAI's ``llm_call_completed`` usage (OpenAI-style totals, with its cached / reasoning counts);
    ``None`` when it carries no plausible totals."""
    if not isinstance(report, dict):
        return None
    total_in = count(report.get("prompt_tokens", report.get("input_tokens")))
    total_out = count(report.get("completion_tokens", report.get("output_tokens")))
    if total_in is None or total_out is None:
        return None
    cached = min(count(report.get("cached_prompt_tokens", report.get("cached_tokens"))) or 0, total_in)
    reasoning = min(count(report.get("reasoning_tokens")) or 0, total_out)
    return Usage(input=total_in - cached, cache_read=cached, output=total_out - reasoning, reasoning=reasoning)


def _identity(event: Any) -> str | None:
    """What a start and its end event both name: the crew, task, agent or tool (``None``: unknown)."""
    for attr in ("task", "agent"):
        obj = getattr(event, attr, None)
        if obj is not None and not isinstance(obj, str):
            return f"{attr}:{id(obj)}"
    info = getattr(event, "agent_info", None)
    if isinstance(info, dict):
        return f"agent:{info.get('id') or info.get('role')}"
    for attr in ("tool_name", "method_name", "flow_name", "crew_name"):
        value = getattr(event, attr, None)
        if value is not None:
            return f"{attr}:{value}"
    return None


class _Open:
    """An open unit: its start event's type and identity, and the key of the open unit it sits in."""

    __slots__ = ("ident", "parent", "start", "unit")

    def __init__(self, unit: Unit, start: str, ident: str | None, parent: str | None) -> None:
        self.unit, self.start, self.ident, self.parent = unit, start, ident, parent


class _Adapter:
    """Event -> unit translation, and the resolver of the unit in force (CrewAI's event scope stack)."""

    def __init__(self) -> None:
        self.enabled = True
        self._units: dict[str, _Open] = {}  # start event id (+ "#i" for extra units of one event) -> unit
        self._watches: dict[str, Watch] = {}  # llm_call_started event id -> watch
        self._lock = threading.Lock()
        self._stack: Any = None  # crewai's ContextVar of (event id, event type) pairs

    # -- the unit in force ---------------------------------------------------------------------------
    def _innermost(self) -> str | None:
        stack = self._stack.get() if self._stack is not None else ()
        with self._lock:
            for event_id, _ in reversed(stack):
                if event_id in self._units:
                    return str(event_id)
        return None

    def resolve(self) -> tuple[Scope, Any] | None:
        """The unit in force where CrewAI runs code now, for tokenmeter's calls and scopes."""
        if not self._units:
            return None
        key = self._innermost()
        entry = self._units.get(key) if key is not None else None
        return entry.unit.frame if entry is not None else None

    # -- events ----------------------------------------------------------------------------------------
    def on_event(self, source: Any, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind in _ENDS:
            start, failed = _ENDS[kind]
            if start in _FLOW_STARTS and _internal(source):
                return
            self._end(event, start, failed)
        elif kind == "llm_call_started":
            self._watch(event)
        elif kind in ("llm_call_completed", "llm_call_failed"):
            self._llm_end(source, event, kind == "llm_call_completed")
        elif self.enabled and kind in _OPENERS and not (kind in _FLOW_STARTS and _internal(source)):
            parent = self._innermost()  # the event itself is on the stack now, with no unit yet
            units = _OPENERS[kind](event)
            ident = _identity(event)
            with self._lock:
                # several units for one event (workflow + agent): the inner one is keyed by the event's id
                for i, unit in enumerate(units):
                    key = event.event_id if i == len(units) - 1 else f"{event.event_id}#{i}"
                    self._units[key] = _Open(unit, kind, ident, parent)
                    parent = key

    def _end(self, event: Any, start: str, failed: bool) -> None:
        error = ReportedError(str(getattr(event, "error", "") or event.type)) if failed else None
        ident = _identity(event)
        with self._lock:
            if not self._units:
                return
            key = getattr(event, "started_event_id", None)
            entry = self._units.get(key) if key else None
            if entry is None or entry.start != start or (ident and entry.ident and ident != entry.ident):
                # CrewAI's scope stack paired the end with another start (it does after a failed model
                # call): close the latest open unit of this kind and identity instead
                key = next(
                    (
                        k
                        for k in reversed(self._units)
                        if self._units[k].start == start
                        and (not ident or self._units[k].ident in (None, ident))
                        and "#" not in k
                    ),
                    None,
                )
            doomed = self._pop(key) if key is not None else []
        for unit in doomed:
            unit.close(error)

    def _pop(self, key: str) -> list[Unit]:
        """Remove ``key``'s units (with the extra units opened for the same event) and every open unit
        inside them (ended without their own end event: CrewAI failed past them), innermost first."""
        roots = {key, *(k for k in self._units if k.startswith(key + "#"))}
        doomed = []
        for k in reversed(list(self._units)):
            ancestor: str | None = k
            for _ in range(256):  # a unit tree is never this deep; guards against a cycle
                if ancestor is None or ancestor in roots:
                    break
                entry = self._units.get(ancestor)
                ancestor = entry.parent if entry is not None else None
            if ancestor is not None:
                doomed.append(k)
        return [self._units.pop(k).unit for k in doomed]

    def close_all(self) -> None:
        """Close every open unit (their end events will not be seen any more)."""
        with self._lock:
            units = [entry.unit for entry in self._units.values()]
            self._units.clear()
            self._watches.clear()
        for unit in reversed(units):
            unit.close()

    # -- model calls: CrewAI's usage only as a fallback ----------------------------------------------
    def _watch(self, event: Any) -> None:
        if self.enabled:
            with self._lock:
                if len(self._watches) >= _MAX_WATCHES:  # calls whose end event never came: forget the oldest
                    self._watches.pop(next(iter(self._watches)))
                self._watches[event.event_id] = Watch()

    def _llm_end(self, llm: Any, event: Any, completed: bool) -> None:
        started = getattr(event, "started_event_id", None)
        with self._lock:
            watch = self._watches.pop(started, None) if started else None
        metered = watch.end() if watch is not None else False
        if not (completed and self.enabled and watch is not None):
            return
        usage = _usage(getattr(event, "usage", None))
        if usage is None:
            return
        model = str(getattr(event, "model", None) or getattr(llm, "model", None) or "unknown")
        provider = str(getattr(llm, "provider", None) or "openai")
        fallback(
            FRAMEWORK,
            _PROVIDERS.get(provider, provider),
            model,
            usage,
            response_id=getattr(event, "response_id", None),
            metered=metered,
        )


def _labelled(unit: Unit | None) -> list[Unit]:
    if unit is None:
        return []
    unit.set_attributes({"tokenmeter.framework.name": FRAMEWORK})
    return [unit]


def _crew(event: Any) -> list[Unit]:
    name = _short(getattr(event, "crew_name", None) or "crew")
    return _labelled(open_unit("step" if in_run() else "workflow", name, activate=False))


def _task(event: Any) -> list[Unit]:
    task = getattr(event, "task", None)
    name = getattr(task, "name", None) or getattr(event, "task_name", None) or getattr(task, "description", None)
    return _labelled(open_unit("step", _short(name or "task"), activate=False))


def _agent(event: Any) -> list[Unit]:
    role = getattr(getattr(event, "agent", None), "role", None) or getattr(event, "agent_role", None)
    return _labelled(open_unit("agent", _short(role or "agent"), activate=False))


def _lite_agent(event: Any) -> list[Unit]:
    info = getattr(event, "agent_info", None) or {}
    role = _short(info.get("role") if isinstance(info, dict) else None) or "agent"
    units = [] if in_run() else _labelled(open_unit("workflow", role, activate=False))
    parent = units[0].frame if units else None
    return units + _labelled(open_unit("agent", role, parent=parent, activate=False))


def _tool(event: Any) -> list[Unit]:
    return _labelled(open_unit("tool", _short(getattr(event, "tool_name", None) or "tool"), activate=False))


def _flow(event: Any) -> list[Unit]:
    name = _short(getattr(event, "flow_name", None) or "flow")
    return _labelled(open_unit("step" if in_run() else "workflow", name, activate=False))


def _method(event: Any) -> list[Unit]:
    return _labelled(open_unit("step", _short(getattr(event, "method_name", None) or "method"), activate=False))


_FLOW_STARTS = frozenset({"flow_started", "method_execution_started"})


def _internal(source: Any) -> bool:
    """CrewAI's agent executor runs as a Flow of its own: plumbing inside the agent's unit, never a unit."""
    return any(c.__name__ == "AgentExecutor" and c.__module__.startswith("crewai.") for c in type(source).__mro__)


_OPENERS = {
    "crew_kickoff_started": _crew,
    "task_started": _task,
    "agent_execution_started": _agent,
    "lite_agent_execution_started": _lite_agent,
    "tool_usage_started": _tool,
    "flow_started": _flow,
    "method_execution_started": _method,
}

ADAPTER = _Adapter()
_PATCHER = Patcher()


def _prepare_event(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """``CrewAIEventsBus._prepare_event``: CrewAI's own work first (event id, scope stack), then the unit."""
    result = wrapped(*args, **kwargs)
    try:
        source = args[0] if args else kwargs.get("source")
        event = args[1] if len(args) > 1 else kwargs.get("event")
        ADAPTER.on_event(source, event)
    except Exception:
        from tokenmeter import _safe

        _safe.log_once("crewai.event", "tokenmeter: translating a CrewAI event failed")
    return result


_PATCHER.add(_EVENT_BUS, "CrewAIEventsBus._prepare_event", _prepare_event)


def _on_context(module: Any) -> None:
    ADAPTER._stack = getattr(module, "_event_id_stack", None)


def _on_agent_core(module: Any) -> None:
    """Let a refused call through the agent's retry loop (``_passthrough_exceptions``)."""
    if not ADAPTER.enabled:
        return
    current = getattr(module, "_passthrough_exceptions", None)
    if isinstance(current, tuple) and PolicyViolation not in current:
        module._passthrough_exceptions = (*current, PolicyViolation)


def instrument() -> None:
    """Translate CrewAI's events into scopes (now, or when CrewAI is imported). Idempotent."""
    import wrapt

    track_responses()
    ADAPTER.enabled = True
    add_resolver(ADAPTER.resolve)
    wrapt.register_post_import_hook(_on_context, _CONTEXT)
    wrapt.register_post_import_hook(_on_agent_core, _AGENT_CORE)
    if _AGENT_CORE in sys.modules:  # a post-import hook fires once: after uninstrument(), add it again
        _on_agent_core(sys.modules[_AGENT_CORE])
    _PATCHER.apply()


def uninstrument() -> None:
    """Stop translating: the event hook, the resolver and the retry pass-through are removed."""
    ADAPTER.enabled = False
    remove_resolver(ADAPTER.resolve)
    _PATCHER.restore()
    ADAPTER.close_all()
    core = sys.modules.get(_AGENT_CORE)
    current = getattr(core, "_passthrough_exceptions", None)
    if core is not None and isinstance(current, tuple) and PolicyViolation in current:
        setattr(core, "_passthrough_exceptions", tuple(e for e in current if e is not PolicyViolation))  # noqa: B010


__all__ = ["ADAPTER", "EXTRA", "FRAMEWORK", "SDK_MODULE", "instrument", "uninstrument"]
