"""OpenAI Agents SDK (``openai-agents``): its agents, tools, handoffs and guardrails become tokenmeter scopes.

A ``TracingProcessor`` added with ``agents.add_trace_processor`` (kept next to the SDK's own processors)
translates the SDK's trace events; tokens are metered by the ``openai`` integration underneath, once:

* a trace (one ``Runner.run``) outside any tokenmeter workflow -> ``invoke_workflow {trace name}`` (a run:
  per-run metrics, ``workflow(max_tokens=...)`` guards apply when the user opened the workflow);
* an agent span -> ``invoke_agent {agent}``; a handoff is recorded on the agent handing off (span event
  ``tokenmeter.handoff`` with ``from`` / ``to``) and on the next agent (``tokenmeter.handoff.from``), which
  keeps the depth of the agent it replaces;
* a function (tool) span -> ``execute_tool {tool}``; a guardrail span -> ``step {guardrail}`` with
  ``tokenmeter.guardrail.triggered``;
* a response / generation span's usage is metered only when no provider integration metered that call (a
  model whose client tokenmeter does not see): none metered while the span was open and its response id
  is unknown to tokenmeter; flagged ``tokenmeter.usage.source = framework`` and estimated.

Tested with openai-agents 0.24.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

from tokenmeter import Usage
from tokenmeter._context import AttrValue
from tokenmeter._frameworks import (
    ReportedError,
    Unit,
    Watch,
    fallback,
    in_run,
    open_unit,
    tool_keywords,
    track_responses,
)
from tokenmeter._patch import Patcher

PROVIDER = "openai"
EXTRA = "openai-agents"
"""The pip extra: ``pip install 'tokenmeter[openai-agents]'``."""

SDK_MODULE = "agents"
"""The SDK's top-level module."""

FRAMEWORK = "openai_agents"


def _error(span: Any) -> BaseException | None:
    error = getattr(span, "error", None)
    if not error:
        return None
    message = error.get("message") if isinstance(error, dict) else str(error)
    return ReportedError(str(message or "agent span failed"))


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _usage(raw: Any) -> Usage | None:
    """The SDK's usage (``input_tokens`` / ``output_tokens`` and their details) -> :class:`Usage`."""
    if raw is None:
        return None
    total_in = int(_get(raw, "input_tokens") or _get(raw, "prompt_tokens") or 0)
    total_out = int(_get(raw, "output_tokens") or _get(raw, "completion_tokens") or 0)
    cached = min(int(_get(_get(raw, "input_tokens_details"), "cached_tokens") or 0), total_in)
    reasoning = min(int(_get(_get(raw, "output_tokens_details"), "reasoning_tokens") or 0), total_out)
    return Usage(input=total_in - cached, cache_read=cached, output=total_out - reasoning, reasoning=reasoning)


class TokenmeterProcessor:
    """An Agents SDK ``TracingProcessor`` opening tokenmeter scopes for the SDK's spans."""

    def __init__(self) -> None:
        self.enabled = True
        self._units: dict[str, list[Unit]] = {}
        self._agents: dict[str, list[Unit]] = {}  # trace id -> open agent units
        self._handoffs: dict[str, str] = {}  # trace id -> agent that handed off (for the next agent span)
        self._watches: dict[str, Watch] = {}  # response / generation span id -> its model call's watch
        self._lock = threading.Lock()

    # -- traces --------------------------------------------------------------------------------
    def on_trace_start(self, trace: Any) -> None:
        """A run outside any tokenmeter workflow becomes one (named after the trace's workflow name)."""
        if not self.enabled or in_run():
            return
        unit = open_unit("workflow", str(getattr(trace, "name", "") or "Agent workflow"))
        if unit is not None:
            self._keep(f"trace:{trace.trace_id}", unit)

    def on_trace_end(self, trace: Any) -> None:
        """Close the workflow opened for the trace."""
        self._handoffs.pop(str(getattr(trace, "trace_id", "")), None)
        for unit in reversed(self._take(f"trace:{getattr(trace, 'trace_id', '')}")):
            unit.close()

    # -- spans ---------------------------------------------------------------------------------
    def on_span_start(self, span: Any) -> None:
        """Open the scope of an agent, tool or guardrail span."""
        if not self.enabled:
            return
        data = span.span_data
        kind = getattr(data, "type", None)
        unit: Unit | None = None
        if kind == "agent":
            came_from = self._handoffs.pop(str(span.trace_id), None)
            attrs: dict[str, AttrValue] = {"tokenmeter.framework.name": FRAMEWORK}
            if came_from:
                attrs["tokenmeter.handoff.from"] = came_from
            unit = open_unit("agent", str(data.name))
            if unit is not None:
                unit.set_attributes(attrs)
                with self._lock:
                    self._agents.setdefault(str(span.trace_id), []).append(unit)
        elif kind == "function":
            unit = open_unit("tool", str(data.name), tool_keywords(_TOOL_CALL_ID.get()))
        elif kind == "guardrail":
            unit = open_unit("step", str(data.name))
            if unit is not None:
                unit.set_attributes({"tokenmeter.step.kind": "guardrail"})
        elif kind in ("response", "generation"):
            with self._lock:
                self._watches[str(span.span_id)] = Watch()
        if unit is not None:
            self._keep(span.span_id, unit)

    def on_span_end(self, span: Any) -> None:
        """Close the span's scope; record handoffs; meter usage no provider integration saw."""
        data = span.span_data
        kind = getattr(data, "type", None)
        units = self._take(span.span_id)
        with self._lock:
            watch = self._watches.pop(str(span.span_id), None)
        metered = watch.end() if watch is not None else False
        if kind == "guardrail":
            for unit in units:
                unit.set_attributes({"tokenmeter.guardrail.triggered": bool(getattr(data, "triggered", False))})
        for unit in reversed(units):
            if unit.kind == "agent":
                self._forget_agent(str(span.trace_id), unit)
            unit.close(_error(span))
        if not self.enabled:
            return
        if kind == "handoff":
            self._handoff(span, data)
        elif kind == "response":
            response = getattr(data, "response", None)
            usage = _usage(getattr(response, "usage", None) or getattr(data, "usage", None))
            if usage is not None:
                model = str(getattr(response, "model", "") or "unknown")
                response_id = getattr(response, "id", None)
                fallback(FRAMEWORK, PROVIDER, model, usage, response_id=response_id, metered=metered)
        elif kind == "generation" and getattr(data, "usage", None):
            usage = _usage(data.usage)
            if usage is not None:
                fallback(FRAMEWORK, PROVIDER, str(data.model or "unknown"), usage, metered=metered)

    def _handoff(self, span: Any, data: Any) -> None:
        source, target = getattr(data, "from_agent", None), getattr(data, "to_agent", None)
        if not source or not target:
            return
        self._handoffs[str(span.trace_id)] = str(source)
        parent = self._open_agent(str(span.trace_id), str(source))
        if parent is not None:
            parent.add_event("tokenmeter.handoff", {"tokenmeter.handoff.from": source, "tokenmeter.handoff.to": target})

    def _open_agent(self, trace_id: str, name: str) -> Unit | None:
        """The open agent unit of the trace called ``name`` (the handoff span's parent may be a turn span)."""
        with self._lock:
            agents = self._agents.get(trace_id) or []
            return next((u for u in reversed(agents) if u.name == name), None)

    def _forget_agent(self, trace_id: str, unit: Unit) -> None:
        with self._lock:
            agents = self._agents.get(trace_id)
            if agents is not None and unit in agents:
                agents.remove(unit)
                if not agents:
                    del self._agents[trace_id]

    def _keep(self, key: str, unit: Unit) -> None:
        with self._lock:
            self._units.setdefault(str(key), []).append(unit)

    def _take(self, key: str) -> list[Unit]:
        with self._lock:
            return self._units.pop(str(key), [])

    def shutdown(self) -> None:
        """Nothing buffered: scopes end with their spans."""

    def force_flush(self) -> None:
        """Nothing buffered."""


PROCESSOR = TokenmeterProcessor()
_registered = False
_lock = threading.Lock()


# The model's id of the function tool call being run here: the SDK opens a tool's function span inside
# ``_FunctionToolBatchExecutor._run_single_tool(tool_call=...)``, in the same context (its span data has
# no call id), so the patch below names the call for ``on_span_start`` (``gen_ai.tool.call.id``).
_TOOL_CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("tokenmeter.agents.call_id", default=None)


async def _run_single_tool(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    call_id = getattr(kwargs.get("tool_call"), "call_id", None)
    if not isinstance(call_id, str) or not PROCESSOR.enabled:
        return await wrapped(*args, **kwargs)
    token = _TOOL_CALL_ID.set(call_id)
    try:
        return await wrapped(*args, **kwargs)
    finally:
        try:
            _TOOL_CALL_ID.reset(token)
        except ValueError:  # finished in another context than it started in
            _TOOL_CALL_ID.set(None)


_PATCHER = Patcher()
_PATCHER.add("agents.run_internal.tool_execution", "_FunctionToolBatchExecutor._run_single_tool", _run_single_tool)


def _register(module: Any) -> None:
    global _registered
    with _lock:
        PROCESSOR.enabled = True
        if not _registered:
            import agents

            agents.add_trace_processor(PROCESSOR)  # type: ignore[arg-type]  # duck-typed TracingProcessor
            _registered = True


def instrument() -> None:
    """Add the processor (now, or when ``agents`` is imported). Idempotent."""
    import wrapt

    track_responses()
    PROCESSOR.enabled = True
    wrapt.register_post_import_hook(_register, "agents")
    _PATCHER.apply()


def uninstrument() -> None:
    """Stop translating (the SDK has no call to remove one processor; it stays registered, inert)."""
    PROCESSOR.enabled = False
    _PATCHER.restore()


__all__ = ["EXTRA", "FRAMEWORK", "PROCESSOR", "SDK_MODULE", "TokenmeterProcessor", "instrument", "uninstrument"]
