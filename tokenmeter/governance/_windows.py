"""Budget windows: fixed (tumbling) UTC periods, computed from an injectable clock.

* ``"1m"`` -- each clock minute (rate quotas: tokens or requests per minute);
* ``"1h"`` -- each clock hour; ``"1d"`` -- each UTC day (midnight to midnight);
* ``"7d"`` -- ISO weeks, Monday 00:00 UTC to the next Monday;
* ``"30d"`` -- consecutive 30-day periods counted from 1970-01-01 UTC;
* ``"month"`` -- calendar months in UTC (28 to 31 days).

Windows do not slide: when one ends, the next starts from zero spend and its warnings fire again.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

WINDOWS: tuple[str, ...] = ("1m", "1h", "1d", "7d", "30d", "month")

_HOUR = 3600
_DAY = 86400
_LENGTHS = {"1m": 60, "1h": _HOUR, "1d": _DAY, "7d": 7 * _DAY, "30d": 30 * _DAY}
# 1970-01-01 was a Thursday; 1970-01-05 is the first Monday.
_OFFSETS = {"7d": 4 * _DAY}


def bounds(window: str, now: float) -> tuple[int, int]:
    """``(start, end)`` in epoch seconds of the ``window`` containing ``now`` (start inclusive, end exclusive)."""
    if window == "month":
        t = datetime.fromtimestamp(math.floor(now), UTC)
        first = datetime(t.year, t.month, 1, tzinfo=UTC)
        after = datetime(t.year + t.month // 12, t.month % 12 + 1, 1, tzinfo=UTC)
        return int(first.timestamp()), int(after.timestamp())
    try:
        length = _LENGTHS[window]
    except KeyError:
        raise ValueError(f"unknown window {window!r}; choose from {', '.join(WINDOWS)}") from None
    offset = _OFFSETS.get(window, 0)
    start = math.floor((now - offset) / length) * length + offset
    return start, start + length


def label(epoch: int) -> str:
    """An epoch second as ISO-8601 UTC, e.g. ``2026-01-05T00:00Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%MZ")
