"""LlamaIndex: workflows, agents, workflow steps and tool calls become tokenmeter scopes.

A span handler on LlamaIndex's root instrumentation dispatcher (``llama_index_instrumentation``) translates
its spans, which start and end in the task that runs the code they describe:

* a workflow's ``run`` (``Workflow``, ``AgentWorkflow``, ``FunctionAgent``, ``ReActAgent``...) outside any
  tokenmeter workflow -> ``invoke_workflow {name}``; an agent's ``run`` -> ``invoke_agent {agent}`` too;
* a workflow step (a span whose arguments carry a workflow ``Event``) -> ``step {step}``;
* a tool's ``call`` / ``acall`` -> ``execute_tool {tool}``.

Tokens are metered by the provider integration under LlamaIndex's LLM (``llama_index.llms.openai`` ->
``openai``); LlamaIndex's own token counts are never used. Tested with llama-index-core 0.14.25,
llama-index-workflows 2.26, llama-index-llms-openai 0.8.3 (openai 2.x, in ``.venv-llamaindex``).
"""

from __future__ import annotations

import threading
from typing import Any

from tokenmeter._frameworks import Unit, in_run, open_unit, tool_keywords

EXTRA = "llama-index"
"""The pip extra: ``pip install 'tokenmeter[llama-index]'``."""

SDK_MODULE = "llama_index.core"
"""The framework's core module."""

FRAMEWORK = "llama_index"

_TOOL_METHODS = frozenset({"call", "acall"})


def _event_class() -> Any:
    try:
        from workflows.events import Event

        return Event
    except ImportError:
        return None


class _Handler:
    """The translation (a ``BaseSpanHandler`` subclass is built when LlamaIndex loads)."""

    def _setup(self) -> None:
        self._tm_units: dict[str, list[Unit]] = {}
        self._tm_lock = threading.Lock()
        self._tm_enabled = True
        self._tm_event = _event_class()
        # Span id of an agent's ``call_tool`` step -> the model's id of the tool call its ``ToolCall`` carries;
        # the tool's ``acall`` span opened inside it takes it as ``gen_ai.tool.call.id``.
        self._tm_tool_ids: dict[str, str] = {}

    def new_span(
        self,
        id_: str,
        bound_args: Any,
        instance: Any = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        from llama_index_instrumentation.span.simple import SimpleSpan

        if self._tm_enabled:
            try:
                units = self._units_for(id_, bound_args, instance, parent_span_id)
            except Exception:
                units = []
            if units:
                with self._tm_lock:
                    self._tm_units[id_] = units
        return SimpleSpan(id_=id_, parent_id=parent_span_id)

    def _units_for(self, id_: str, bound_args: Any, instance: Any, parent_span_id: str | None = None) -> list[Unit]:
        qualname = id_.split("-", 1)[0]
        method = qualname.rpartition(".")[2]
        units: list[Unit] = []
        if method in _TOOL_METHODS and instance is not None and hasattr(instance, "metadata"):
            name = getattr(instance.metadata, "name", None) or type(instance).__name__
            with self._tm_lock:
                call_id = self._tm_tool_ids.get(parent_span_id or "")
            unit = open_unit("tool", str(name), tool_keywords(call_id))
            return [unit] if unit is not None else []
        if method == "run" and instance is not None and _is_workflow(instance):
            agent_name = getattr(instance, "name", None) if _is_agent(instance) else None
            if not in_run():
                workflow = open_unit("workflow", str(agent_name or type(instance).__name__))
                if workflow is not None:
                    units.append(workflow)
            if agent_name:
                agent = open_unit("agent", str(agent_name))
                if agent is not None:
                    agent.set_attributes({"tokenmeter.framework.name": FRAMEWORK})
                    units.append(agent)
            return units
        event = self._tm_event
        arguments = getattr(bound_args, "arguments", None) or {}
        if event is not None and any(isinstance(v, event) for v in arguments.values()):
            for value in arguments.values():
                tool_id = getattr(value, "tool_id", None) if isinstance(value, event) else None
                if isinstance(tool_id, str) and tool_id:
                    with self._tm_lock:
                        self._tm_tool_ids[id_] = tool_id
            unit = open_unit("step", method)
            return [unit] if unit is not None else []
        return units

    def prepare_to_exit_span(
        self, id_: str, bound_args: Any, instance: Any = None, result: Any = None, **kwargs: Any
    ) -> Any:
        self._close(id_, None)
        return None

    def prepare_to_drop_span(
        self, id_: str, bound_args: Any, instance: Any = None, err: BaseException | None = None, **kwargs: Any
    ) -> Any:
        self._close(id_, err)
        return None

    def _close(self, id_: str, error: BaseException | None) -> None:
        with self._tm_lock:
            units = self._tm_units.pop(id_, None)
            self._tm_tool_ids.pop(id_, None)
        for unit in reversed(units or ()):
            unit.close(error)


def _is_workflow(instance: Any) -> bool:
    return any(c.__name__ == "Workflow" and c.__module__.startswith("workflows") for c in type(instance).__mro__)


def _is_agent(instance: Any) -> bool:
    return any(c.__name__ in ("BaseWorkflowAgent", "AgentWorkflow") for c in type(instance).__mro__)


HANDLER: Any = None
_lock = threading.Lock()


def _register(module: Any) -> None:
    global HANDLER
    from llama_index_instrumentation import get_dispatcher
    from llama_index_instrumentation.span.simple import SimpleSpan
    from llama_index_instrumentation.span_handlers.base import BaseSpanHandler

    with _lock:
        if HANDLER is None:
            cls = type("TokenmeterSpanHandler", (_Handler, BaseSpanHandler[SimpleSpan]), {})
            HANDLER = cls()
            HANDLER._setup()
            get_dispatcher().add_span_handler(HANDLER)
        HANDLER._tm_enabled = True


def instrument() -> None:
    """Add the span handler (now, or when LlamaIndex's instrumentation is imported). Idempotent."""
    import wrapt

    if HANDLER is not None:
        HANDLER._tm_enabled = True
    wrapt.register_post_import_hook(_register, "llama_index_instrumentation")


def uninstrument() -> None:
    """Stop translating (the dispatcher has no call to remove one handler; it stays, inert)."""
    if HANDLER is not None:
        HANDLER._tm_enabled = False


__all__ = ["EXTRA", "FRAMEWORK", "HANDLER", "SDK_MODULE", "instrument", "uninstrument"]
