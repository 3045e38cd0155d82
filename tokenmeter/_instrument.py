"""``instrument()`` / ``uninstrument()``: patch installed provider SDKs, whatever the import order."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Any

from . import _lifecycle, _transport
from ._errors import ConfigError

_log = logging.getLogger("tokenmeter")

# name -> (integration module, SDK module that must be importable, pip extra)
INTEGRATIONS: dict[str, tuple[str, str, str]] = {
    "openai": ("tokenmeter.integrations.openai", "openai", "openai"),
    "anthropic": ("tokenmeter.integrations.anthropic", "anthropic", "anthropic"),
    "bedrock": ("tokenmeter.integrations.bedrock", "botocore", "bedrock"),
    "gemini": ("tokenmeter.integrations.gemini", "google.genai", "gemini"),
    "litellm": ("tokenmeter.integrations.litellm", "litellm", "litellm"),
    # Agent frameworks: they only open scopes; the provider integrations above meter the tokens.
    "openai_agents": ("tokenmeter.integrations.openai_agents", "agents", "openai-agents"),
    "langchain": ("tokenmeter.integrations.langchain", "langchain_core", "langchain"),
    "langgraph": ("tokenmeter.integrations.langchain", "langchain_core", "langchain"),  # LangGraph runs on it
    "pydantic_ai": ("tokenmeter.integrations.pydantic_ai", "pydantic_ai", "pydantic-ai"),
    "llama_index": ("tokenmeter.integrations.llama_index", "llama_index.core", "llama-index"),
    "crewai": ("tokenmeter.integrations.crewai", "crewai", "crewai"),
}
FRAMEWORKS = frozenset({"openai_agents", "langchain", "langgraph", "pydantic_ai", "llama_index", "crewai"})
"""Integration names that are agent-framework adapters (they open scopes; they never meter tokens)."""

_lock = _lifecycle.lock()
_active: set[str] = set()


def _sdk_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def instrument(*names: str) -> list[str]:
    """Patch the named provider SDKs and frameworks (all installed ones when no name is given); returns what
    is active. Frameworks (``openai_agents``, ``langchain`` for LangChain and LangGraph, ``pydantic_ai``,
    ``llama_index``, ``crewai``) get adapters that name their agents, steps and tools; the provider SDKs
    underneath meter the tokens.

    A name whose SDK is missing raises :class:`ConfigError` saying which extra to install. Idempotent.
    Patches are applied through post-import hooks, so the SDK may be imported before or after.
    """
    unknown = [n for n in names if n not in INTEGRATIONS]
    if unknown:
        raise ConfigError(f"unknown integration(s) {', '.join(unknown)}; choose from {', '.join(INTEGRATIONS)}")
    chosen = list(names) if names else list(INTEGRATIONS)
    with _lock:
        for name in chosen:
            if name in _active:
                continue
            module_name, sdk, extra = INTEGRATIONS[name]
            if any(INTEGRATIONS[n][0] == module_name for n in _active):  # an alias of an active one
                if names:
                    _active.add(name)
                continue
            if not _sdk_installed(sdk):
                if names:
                    raise ConfigError(
                        f"cannot instrument {name!r}: its SDK ({sdk}) is not installed; "
                        f"run: pip install 'tokenmeter[{extra}]'"
                    )
                continue
            try:
                module: Any = importlib.import_module(module_name)
            except ImportError:
                if names:
                    raise
                _log.debug("tokenmeter: integration %s not available", name, exc_info=True)
                continue
            module.instrument()
            _active.add(name)
        if _active:
            _transport.PATCHER.apply()
        return sorted(_active)


def uninstrument(*names: str) -> None:
    """Restore the original SDK methods of the named integrations (all when no name). Idempotent."""
    with _lock:
        for name in list(names) if names else list(_active):
            if name not in _active:
                continue
            module_name = INTEGRATIONS[name][0]
            module: Any = importlib.import_module(module_name)
            module.uninstrument()
            _active.difference_update([n for n in INTEGRATIONS if INTEGRATIONS[n][0] == module_name])
        if not _active:
            _transport.PATCHER.restore()


def instrumented() -> list[str]:
    """Names of the integrations currently patched."""
    return sorted(_active)
