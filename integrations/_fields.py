"""Reading provider payloads that may be SDK objects or plain mappings (JSON bodies, raw responses).

Shared by every integration, so a payload is read the same way everywhere: a field that is absent,
``None`` or of the wrong kind reads as ``None``, never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_ABSENT: Any = object()


def field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]`` (``None`` when absent).

    On the hot path of every call and stream chunk: plain dicts and attributes are looked up first,
    the (slower, ABC) ``Mapping`` check only runs for other mappings.
    """
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(name)
    value = getattr(obj, name, _ABSENT)
    if value is not _ABSENT:
        return value
    if isinstance(obj, Mapping):
        return obj.get(name)
    return None


def count(value: Any) -> int | None:
    """A valid token count, or ``None`` for anything else (bool, str, negative, null, float)."""
    return value if type(value) is int and value >= 0 else None


def nonempty(value: Any) -> str | None:
    """A non-empty string, or ``None`` (model names, response ids)."""
    return value if isinstance(value, str) and value else None
