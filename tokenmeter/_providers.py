"""Provider names of OpenAI-compatible hosts: the conventions' well-known names, plus configured globs.

An OpenAI client pointed at another vendor's base URL is that vendor's call, priced at its rates:
``api.deepseek.com`` is ``deepseek``, ``api.x.ai`` is ``x_ai`` (the ``gen_ai.provider.name`` values
of the OpenTelemetry GenAI conventions; vendors the conventions do not list keep their own name).
Self-hosted servers are recognised by their default port where it is unambiguous (Ollama's 11434);
``configure(providers={"host-glob": "name"})`` names private gateways and vLLM / llama.cpp servers.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from ._errors import ConfigError

WELL_KNOWN_HOSTS: dict[str, str] = {
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.x.ai": "x_ai",
    "api.mistral.ai": "mistral_ai",
    "openrouter.ai": "openrouter",
    "api.openrouter.ai": "openrouter",
    "api.together.xyz": "together",
    "api.together.ai": "together",
    "api.fireworks.ai": "fireworks",
    "api.perplexity.ai": "perplexity",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "api.cohere.ai": "cohere",
    "api.cohere.com": "cohere",
}
_SELF_HOSTED_PORTS = {11434: "ollama"}
# The characters of a provider name (the conventions use lower-case names with dots and underscores).
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")


def parse_providers(value: Any) -> tuple[tuple[str, str], ...]:
    """The ``providers`` option: ``{"host-glob": "name"}`` or ``"glob=name,glob=name"`` (ConfigError if bad)."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[tuple[Any, Any]] = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            key, sep, name = part.partition("=")
            if not sep:
                raise ConfigError(f"providers: expected 'host-glob=name,...' such as 'llm.internal=vllm', got {part!r}")
            items.append((key.strip(), name.strip()))
    elif isinstance(value, Mapping):
        items = list(value.items())
    else:
        raise ConfigError(f"providers must be a mapping {{'host-glob': 'provider-name'}}, got {value!r}")
    result: list[tuple[str, str]] = []
    for glob, name in items:
        if not isinstance(glob, str) or not glob or "/" in glob:
            raise ConfigError(
                f"providers: keys must be host globs such as '*.gateway.internal' (no scheme), got {glob!r}"
            )
        if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS:
            raise ConfigError(
                f"providers: {glob!r} must map to a lower-case provider name such as 'openai' or 'vllm', got {name!r}"
            )
        result.append((glob.lower(), name))
    return tuple(result)


def provider_for_host(
    host: str | None, port: int | None = None, configured: tuple[tuple[str, str], ...] = ()
) -> str | None:
    """The provider serving ``host[:port]``: a configured glob first, then a well-known host; else ``None``."""
    if not host:
        return None
    host = host.lower()
    address = f"{host}:{port}" if port else host
    for glob, name in configured:
        if fnmatch.fnmatchcase(host, glob) or fnmatch.fnmatchcase(address, glob):
            return name
    known = WELL_KNOWN_HOSTS.get(host)
    if known is not None:
        return known
    if port is not None:
        return _SELF_HOSTED_PORTS.get(port)
    return None


def configured_provider(host: str | None, port: int | None = None) -> str | None:
    """:func:`provider_for_host` with the active meter's ``providers`` option."""
    from . import _meter

    meter = _meter.active()
    configured = meter.options.providers if meter is not None else ()
    return provider_for_host(host, port, configured)
