"""Ids of responses the provider integrations metered, so a framework's own usage report of the same
response is never counted a second time (bounded: the most recent 4096)."""

from __future__ import annotations

import threading
from collections import OrderedDict

_MAX = 4096
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
