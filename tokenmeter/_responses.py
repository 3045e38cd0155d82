"""Ids of responses the provider integrations metered, so a framework's own usage report of the same
response is never counted a second time (bounded: the most recent 4096)."""

from __future__ import annotations

import contextvars
import threading
from collections import OrderedDict

_MAX = 4096
# Set by the framework adapters' instrument(): only then are response ids worth remembering.
TRACK = False
_seen: OrderedDict[str, None] = OrderedDict()
_lock = threading.Lock()


def note(response_id: str) -> None:
    """Remember that a provider integration metered the response ``response_id``."""
    with _lock:
        _seen[response_id] = None
        if len(_seen) > _MAX:
            _seen.popitem(last=False)


def was_metered(response_id: str | None) -> bool:
    """Whether a provider integration metered the response ``response_id``."""
    if not response_id:
        return False
    with _lock:
        return response_id in _seen


# A framework adapter watching one model call (its own start/end events): provider integrations that meter
# a call while it is watched count it here, so the framework's usage report of that call is never a second
# count even when the response id is unknown.
WATCH: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("tokenmeter.framework_watch", default=None)


def count_metered() -> None:
    """A provider integration started metering a call: count it for the framework watching (if any)."""
    watching = WATCH.get()
    if watching is not None:
        watching[0] += 1
