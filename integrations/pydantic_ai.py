"""pydantic-ai: an agent run becomes ``invoke_agent {agent}``, each tool call ``execute_tool {tool}``.

Two patches (``wrapt``, removed by ``uninstrument()``): ``Agent.iter``, the async context manager every
``run`` / ``run_sync`` / ``run_stream`` goes through, opens the agent's scope (inside a new workflow named
after the agent when no tokenmeter workflow is in force); ``ToolManager.execute_tool_call`` opens the
tool's scope around a function tool's execution (parallel tool calls each in their own task). Tokens are
metered by the provider integration under pydantic-ai's model (``OpenAIChatModel`` / ``OpenAIResponsesModel``
-> ``openai``, ``AnthropicModel`` -> ``anthropic``...); pydantic-ai's own usage is never counted.

With pydantic-ai's own instrumentation on (``instrument=True``), its ``invoke_agent`` / ``chat`` spans and
tokenmeter's nest in one trace, and its ``gen_ai.client.token.usage`` is not doubled
(``semconv_metrics="auto"``). Tested with pydantic-ai-slim 2.68.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokenmeter._frameworks import Unit, in_run, open_unit, tool_keywords
from tokenmeter._patch import Patcher

EXTRA = "pydantic-ai"
"""The pip extra: ``pip install 'tokenmeter[pydantic-ai]'``."""

SDK_MODULE = "pydantic_ai"
"""The framework's top-level module."""

FRAMEWORK = "pydantic_ai"


class _AgentRun:
    """Proxy of the async context manager ``Agent.iter`` returns: the agent's scope spans the run."""

    __slots__ = ("_cm", "_name", "_units")

    def __init__(self, cm: Any, name: str) -> None:
        self._cm = cm
        self._name = name
        self._units: list[Unit] = []

    async def __aenter__(self) -> Any:
        if not in_run():
            workflow = open_unit("workflow", self._name)
            if workflow is not None:
                self._units.append(workflow)
        agent = open_unit("agent", self._name)
        if agent is not None:
            agent.set_attributes({"tokenmeter.framework.name": FRAMEWORK})
            self._units.append(agent)
        try:
            return await self._cm.__aenter__()
        except BaseException as exc:
            self._close(exc)
            raise

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Any:
        try:
            return await self._cm.__aexit__(exc_type, exc, tb)
        finally:
            self._close(exc)

    def _close(self, error: BaseException | None) -> None:
        units, self._units = self._units, []
        for unit in reversed(units):
            unit.close(error)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cm, name)


def _iter(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    cm = wrapped(*args, **kwargs)
    try:
        return _AgentRun(cm, str(getattr(instance, "name", None) or "agent"))
    except Exception:  # never stand between the user and the run
        return cm


async def _execute_tool(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    validated = args[0] if args else kwargs.get("validated")
    part = getattr(validated, "call", None)
    name = getattr(part, "tool_name", None) or "tool"
    call_id = getattr(part, "tool_call_id", None)
    # A function tool is run here by the client (the conventions' "function"); other kinds (output,
    # external) are not typed.
    kind = getattr(getattr(getattr(validated, "tool", None), "tool_def", None), "kind", None)
    unit = open_unit("tool", str(name), tool_keywords(call_id, "function" if kind == "function" else None))
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        if unit is not None:
            unit.close(exc)
        raise
    if unit is not None:
        unit.close()
    return result


def _patcher() -> Patcher:
    patcher = Patcher()
    patcher.add("pydantic_ai.agent", "Agent.iter", _iter)
    patcher.add("pydantic_ai.tool_manager", "ToolManager.execute_tool_call", _execute_tool)
    return patcher


_PATCHER = _patcher()


def instrument() -> None:
    """Patch pydantic-ai (now, or when it is imported). Idempotent."""
    _PATCHER.apply()


def uninstrument() -> None:
    """Remove tokenmeter's patches."""
    _PATCHER.restore()


__all__ = ["EXTRA", "FRAMEWORK", "SDK_MODULE", "instrument", "uninstrument"]
