"""LangChain and LangGraph: graph nodes, agents and tools become tokenmeter scopes.

A callback handler registered for every LangChain run (``langchain_core``'s configure hook, so no
``callbacks=[...]`` is needed) translates run events; tokens are metered by the provider integration the
chat model uses underneath (``ChatOpenAI`` -> ``openai``, ``ChatAnthropic`` -> ``anthropic``...), once:

* a top-level chain or graph run outside any tokenmeter workflow -> ``invoke_workflow {name}`` (a run);
* a named graph (``create_react_agent(..., name="researcher")``, a sub-graph with its own name) ->
  ``invoke_agent {name}``;
* a LangGraph node (runs tagged ``graph:step:N``) -> ``step {node}``;
* a tool -> ``execute_tool {tool}``;
* a chat model's ``usage_metadata`` is metered only when no provider integration metered that call (none
  metered between the model's start and end events, and its response id is unknown to tokenmeter),
  flagged ``tokenmeter.usage.source = framework`` and estimated.

LangChain's async callbacks run in other tasks than the code they describe, so the handler never makes a
unit current by itself: units nest by LangChain's own run tree (``parent_run_id``), and a resolver names
the unit in force wherever LangChain runs code (its ``var_child_runnable_config``), for tokenmeter's calls
and for ``tokenmeter.step`` / ``tool`` opened inside a node, sync or async, in LangGraph's parallel branches
too. Tested with langchain-core 1.8,
langchain-openai 1.8, langgraph 1.2.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any
from uuid import UUID

from tokenmeter import Usage
from tokenmeter._context import Scope, add_resolver, remove_resolver
from tokenmeter._frameworks import Unit, Watch, fallback, in_run, open_unit, tool_keywords, track_responses

EXTRA = "langchain"
"""The pip extra: ``pip install 'tokenmeter[langchain]'``."""

SDK_MODULE = "langchain_core"
"""The framework's core module."""

FRAMEWORK = "langchain"

_DEFAULT_GRAPH = "LangGraph"
# Chains that are plumbing, never an agent.
_PLUMBING_PREFIXES = ("Runnable", "ChannelWrite", "ChatPromptTemplate", "Prompt", "Branch", "__")
_PROVIDERS = {"openai": "openai", "azure": "azure.ai.openai", "anthropic": "anthropic", "bedrock": "aws.bedrock"}


def _usage(metadata: Any) -> Usage | None:
    """LangChain ``usage_metadata`` (``input_tokens`` incl. cache, ``output_tokens`` incl. reasoning) -> Usage."""
    if not isinstance(metadata, dict):
        return None
    total_in = int(metadata.get("input_tokens") or 0)
    total_out = int(metadata.get("output_tokens") or 0)
    details_in = metadata.get("input_token_details") or {}
    details_out = metadata.get("output_token_details") or {}
    cache_read = min(int(details_in.get("cache_read") or 0), total_in)
    cache_write = min(int(details_in.get("cache_creation") or 0), total_in - cache_read)
    reasoning = min(int(details_out.get("reasoning") or 0), total_out)
    return Usage(
        input=total_in - cache_read - cache_write,
        cache_read=cache_read,
        cache_write=cache_write,
        output=total_out - reasoning,
        reasoning=reasoning,
    )


class _Handler:
    """The callback handler (a ``BaseCallbackHandler`` subclass is built when ``langchain_core`` loads)."""

    run_inline = True
    raise_error = False
    ignore_llm = False
    ignore_chain = False
    ignore_agent = False  # also governs tool events
    ignore_retriever = True
    ignore_chat_model = False
    ignore_retry = True
    ignore_custom_event = True

    def __init__(self) -> None:
        self.enabled = True
        self._units: dict[UUID, list[Unit]] = {}
        self._nodes: set[UUID] = set()
        self._parents: dict[UUID, UUID | None] = {}
        self._watches: dict[UUID, Watch] = {}
        self._lock = threading.Lock()

    # -- chains: graphs, nodes, agents ---------------------------------------------------------
    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._parents[run_id] = parent_run_id
        name = str(kwargs.get("name") or "")
        parent = self._nearest(parent_run_id)
        frame = parent.frame if parent is not None else None
        units: list[Unit] = []
        node = next((t for t in tags or () if t.startswith("graph:step:")), None)
        if node is not None and metadata and metadata.get("langgraph_node"):
            unit = open_unit("step", str(metadata["langgraph_node"]), parent=frame, activate=False)
            with self._lock:
                self._nodes.add(run_id)
        else:
            unit = None
            root = parent_run_id is None
            if root and frame is None and not in_run():
                workflow = open_unit("workflow", name or _DEFAULT_GRAPH, activate=False)
                if workflow is not None:
                    units.append(workflow)
                    frame = workflow.frame
            with self._lock:
                under_node = parent_run_id is not None and parent_run_id in self._nodes
            if (root or under_node) and name and name != _DEFAULT_GRAPH and not name.startswith(_PLUMBING_PREFIXES):
                if not any(t.startswith("seq:step:") for t in tags or ()):
                    unit = open_unit("agent", name, parent=frame, activate=False)
        if unit is not None:
            unit.set_attributes({"tokenmeter.framework.name": FRAMEWORK})
            units.append(unit)
        if units:
            with self._lock:
                self._units[run_id] = units

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, error)

    # -- tools ---------------------------------------------------------------------------------
    def on_tool_start(
        self, serialized: Any, input_str: str, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._parents[run_id] = parent_run_id
        parent = self._nearest(parent_run_id)
        name = kwargs.get("name") or (serialized or {}).get("name") or "tool"
        # ``tool_call_id``: the model's id of the call (langchain-core passes it when a ToolCall ran the tool).
        unit = open_unit(
            "tool",
            str(name),
            tool_keywords(kwargs.get("tool_call_id")),
            parent=parent.frame if parent is not None else None,
            activate=False,
        )
        if unit is not None:
            with self._lock:
                self._units[run_id] = [unit]

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, None)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, error)

    # -- which unit is in force ------------------------------------------------------------------
    def _nearest(self, run_id: UUID | None) -> Unit | None:
        """The innermost open unit of ``run_id`` or its ancestors."""
        with self._lock:
            for _ in range(256):  # a run tree is never this deep; guards against a cycle
                if run_id is None:
                    return None
                units = self._units.get(run_id)
                if units:
                    return units[-1]
                run_id = self._parents.get(run_id)
        return None

    def resolve(self) -> tuple[Scope, Any] | None:
        """The unit in force where LangChain runs code now (its run context), for tokenmeter's calls."""
        if not self._units:
            return None
        config = _child_config()
        if not config:
            return None
        parent_run_id = getattr(config.get("callbacks"), "parent_run_id", None)
        unit = self._nearest(parent_run_id)
        return unit.frame if unit is not None else None

    # -- models: usage only as a fallback -------------------------------------------------------
    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._watch(run_id)

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._watch(run_id)

    def _watch(self, run_id: UUID) -> None:
        if self.enabled:
            with self._lock:
                self._watches[run_id] = Watch()

    def _unwatch(self, run_id: UUID) -> bool:
        with self._lock:
            watch = self._watches.pop(run_id, None)
        return watch.end() if watch is not None else False

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        metered = self._unwatch(run_id)
        if not self.enabled:
            return
        llm_output = getattr(response, "llm_output", None) or {}
        for generations in getattr(response, "generations", None) or ():
            for generation in generations:
                message = getattr(generation, "message", None)
                usage = _usage(getattr(message, "usage_metadata", None))
                if usage is None:
                    continue
                meta = getattr(message, "response_metadata", None) or {}
                response_id = meta.get("id") or llm_output.get("id")
                model = meta.get("model_name") or llm_output.get("model_name") or "unknown"
                provider = _PROVIDERS.get(str(meta.get("model_provider") or "openai"), str(meta.get("model_provider")))
                fallback(FRAMEWORK, provider, str(model), usage, response_id=response_id, metered=metered)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._unwatch(run_id)

    def _close(self, run_id: UUID, error: BaseException | None) -> None:
        with self._lock:
            units = self._units.pop(run_id, None)
            self._nodes.discard(run_id)
            self._parents.pop(run_id, None)
        for unit in reversed(units or ()):
            unit.close(error)


def _child_config() -> Any:
    return _CONFIG_VAR.get() if _CONFIG_VAR is not None else None


_CONFIG_VAR: Any = None
_VAR: contextvars.ContextVar[Any] = contextvars.ContextVar("tokenmeter_langchain_handler", default=None)
HANDLER: Any = None
_lock = threading.Lock()


def _register(module: Any) -> None:
    """Build the handler class on ``BaseCallbackHandler`` and add it to every LangChain run."""
    global HANDLER, _VAR, _CONFIG_VAR
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.runnables.config import var_child_runnable_config
    from langchain_core.tracers import context as lc_context

    _CONFIG_VAR = var_child_runnable_config
    with _lock:
        if HANDLER is None:
            cls = type("TokenmeterCallbackHandler", (_Handler, BaseCallbackHandler), {})
            HANDLER = cls()
            _VAR = contextvars.ContextVar("tokenmeter_langchain_handler", default=HANDLER)
        HANDLER.enabled = True
        add_resolver(HANDLER.resolve)
        hooks = lc_context._configure_hooks
        if not any(h[0] is _VAR for h in hooks):
            lc_context.register_configure_hook(_VAR, True)


def instrument() -> None:
    """Add the handler to every LangChain run (now, or when ``langchain_core`` is imported). Idempotent."""
    import wrapt

    track_responses()
    if HANDLER is not None:
        HANDLER.enabled = True
    wrapt.register_post_import_hook(_register, "langchain_core.tracers.context")


def uninstrument() -> None:
    """Remove the handler from new runs."""
    if HANDLER is not None:
        HANDLER.enabled = False
        remove_resolver(HANDLER.resolve)
    try:
        from langchain_core.tracers import context as lc_context

        lc_context._configure_hooks[:] = [h for h in lc_context._configure_hooks if h[0] is not _VAR]
    except Exception:  # langchain_core not imported or changed: the handler is inert anyway
        pass


__all__ = ["EXTRA", "FRAMEWORK", "HANDLER", "SDK_MODULE", "instrument", "uninstrument"]
