"""Never break the host: faults inside tokenmeter are logged once per site and swallowed."""

from __future__ import annotations

import logging

from . import _lifecycle

_log = logging.getLogger("tokenmeter")
_seen: set[str] = set()
_lock = _lifecycle.lock()


def log_once(site: str, message: str) -> None:
    """Log the exception being handled: a warning the first time for ``site``, debug afterwards."""
    with _lock:
        first = site not in _seen
        _seen.add(site)
    if first:
        _log.warning("%s (logged once; later occurrences at debug level)", message, exc_info=True)
    else:
        _log.debug(message, exc_info=True)


def warn_once(site: str, message: str) -> None:
    """Log ``message`` (no exception) as a warning the first time for ``site``, debug afterwards."""
    with _lock:
        first = site not in _seen
        _seen.add(site)
    if first:
        _log.warning("%s (logged once; later occurrences at debug level)", message)
    else:
        _log.debug(message)
