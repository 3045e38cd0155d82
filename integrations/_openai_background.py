"""OpenAI Responses in background mode: metered once, when ``responses.retrieve`` returns it finished.

``responses.create(background=True)`` answers at once with a ``queued`` (or ``in_progress``) response
and no usage: that call is metered with no tokens (not estimated: nothing was generated yet) and its id
is remembered. When ``responses.retrieve`` later returns that response in a final state with its usage,
the usage is metered as one call (``record``, at the time it was created), exactly once: the id is then
forgotten. Remembered ids are bounded (the oldest are dropped past 10,000) and per process, so a
response created in one process and retrieved in another is not metered at retrieval.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from tokenmeter import _safe
from tokenmeter._call import record

from ._fields import field, nonempty
from ._openai_usage import combine, read_responses, served

_PENDING: OrderedDict[str, tuple[str, str, float | None]] = OrderedDict()  # id -> (provider, model, created)
_LOCK = threading.Lock()
_LIMIT = 10_000
_FINAL = frozenset({"completed", "failed", "incomplete", "cancelled"})


def is_pending(response: Any) -> bool:
    """Whether a Responses API response is a background one still running (no usage yet)."""
    return field(response, "background") is True and field(response, "status") in ("queued", "in_progress")


def remember(response: Any, provider: str, model: str) -> None:
    """Remember a pending background response, to meter it when it is retrieved finished."""
    response_id = nonempty(field(response, "id"))
    if response_id is None:
        return
    created = field(response, "created_at")
    with _LOCK:
        _PENDING[response_id] = (provider, model, float(created) if isinstance(created, (int, float)) else None)
        while len(_PENDING) > _LIMIT:
            _PENDING.popitem(last=False)


def _meter(response: Any) -> None:
    try:
        response_id = nonempty(field(response, "id"))
        if response_id is None or field(response, "status") not in _FINAL:
            return
        with _LOCK:
            pending = _PENDING.pop(response_id, None)
        if pending is None:
            return
        usage = combine(read_responses(field(response, "usage")))
        if usage is None:
            return
        provider, model, created = pending
        record(
            provider,
            model,
            served(usage, response),
            response_model=nonempty(field(response, "model")),
            timestamp=created,
            attributes={"gen_ai.response.id": response_id, "tokenmeter.response.background": True},
        )
    except Exception:
        _safe.log_once("openai.background", "tokenmeter: metering a background response failed")


def retrieve(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``wrapt`` wrapper of ``Responses.retrieve`` (non-streamed): the caller's result unchanged."""
    result = wrapped(*args, **kwargs)
    if not kwargs.get("stream"):
        _meter(result)
    return result


async def aretrieve(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``wrapt`` wrapper of ``AsyncResponses.retrieve``."""
    result = await wrapped(*args, **kwargs)
    if not kwargs.get("stream"):
        _meter(result)
    return result
