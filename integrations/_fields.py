"""Reading provider payloads that may be SDK objects or plain mappings (JSON bodies, raw responses).

Shared by every integration, so a payload is read the same way everywhere: a field that is absent,
``None`` or of the wrong kind reads as ``None``, never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenmeter._usage import MAX_TOKENS

ABSENT: Any = object()
"""A ``getattr`` default that no payload holds."""


def field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]`` (``None`` when absent).

    On the hot path of every call and stream chunk: plain dicts and instance attributes are looked up
    first; a name a pydantic model (every SDK's response objects) does not have is answered from its
    extras without a ``getattr`` miss (pydantic raises, and builds, an ``AttributeError`` for each);
    the (slower, ABC) ``Mapping`` check only runs for other mappings.
    """
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(name)
    attrs = getattr(obj, "__dict__", None)
    if type(attrs) is dict:
        value = attrs.get(name, ABSENT)
        if value is not ABSENT:
            return value
        extra = getattr(obj, "__pydantic_extra__", None)
        if type(extra) is dict and not _on_class(type(obj), name):
            return extra.get(name)  # a pydantic model: not a field it holds, nor a class attribute
    value = getattr(obj, name, ABSENT)
    if value is not ABSENT:
        return value
    if isinstance(obj, Mapping):
        return obj.get(name)
    return None


_ON_CLASS: dict[tuple[type, str], bool] = {}


def _on_class(kind: type, name: str) -> bool:
    """Whether ``kind`` has a class attribute ``name`` (a property, a method), once per type and name."""
    key = (kind, name)
    found = _ON_CLASS.get(key)
    if found is None:
        found = hasattr(kind, name)
        if len(_ON_CLASS) < 4096:
            _ON_CLASS[key] = found
    return found


def count(value: Any) -> int | None:
    """A plausible token count, or ``None`` for anything else.

    ``None`` for a bool, str, null, float (NaN and integral floats included), a negative int and an int
    above :data:`tokenmeter.MAX_TOKENS`: such a count is treated as not reported (estimated).
    """
    return value if type(value) is int and 0 <= value <= MAX_TOKENS else None


def nonempty(value: Any) -> str | None:
    """A non-empty string, or ``None`` (model names, response ids)."""
    return value if isinstance(value, str) and value else None


def generic_status(error: BaseException, generic_class: str) -> str | None:
    """The HTTP status (``"418"``) of an SDK's generic status error class, whose name says nothing.

    Stainless-built SDKs (openai, anthropic) raise named subclasses (``RateLimitError``...) for the common
    statuses and ``APIStatusError`` itself for the rest.
    """
    if type(error).__name__ != generic_class:
        return None
    status = getattr(error, "status_code", None)
    return str(status) if type(status) is int else None


class AttributeView:
    """Read a mapping (and the mappings and lists inside it) by attribute: ``view.a`` is ``m.get("a")``."""

    __slots__ = ("_mapping",)

    def __init__(self, mapping: Mapping[str, Any]) -> None:
        self._mapping = mapping

    def __getattr__(self, name: str) -> Any:
        value = self._mapping.get(name)
        if isinstance(value, Mapping):
            return AttributeView(value)
        if isinstance(value, list):
            return [AttributeView(v) if isinstance(v, Mapping) else v for v in value]
        return value
