"""Budget stores behind one interface: ``memory`` (default), ``sqlite:///path``, ``redis://host:port/db``.

SQLite and Redis URLs take two optional query parameters understood by tokenmeter (and removed before
the URL reaches the driver): ``lease_s`` -- how long a reservation holds budget if its call never
settles (default 900) -- and ``timeout_s`` -- the longest any store operation may block the calling
thread (default 2). Example: ``sqlite:////var/lib/app/budgets.db?timeout_s=0.5``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..._errors import ConfigError
from ._base import (
    Admission,
    BucketState,
    BudgetStore,
    Line,
    Settled,
    StoreUnavailable,
    from_nano,
    to_nano,
)

DEFAULT_LEASE_S = 60.0
DEFAULT_TIMEOUT_S = 2.0


def _split(url: str) -> tuple[str, str, float, float]:
    """``(url without our parameters, its path, lease_s, timeout_s)``."""
    parts = urlsplit(url)
    kept: list[tuple[str, str]] = []
    lease_s, timeout_s = DEFAULT_LEASE_S, DEFAULT_TIMEOUT_S
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ("lease_s", "timeout_s"):
            try:
                number = float(value)
            except ValueError:
                number = -1.0
            if not number > 0:
                raise ConfigError(f"store: {key} must be a number of seconds > 0, got {value!r}")
            if key == "lease_s":
                lease_s = number
            else:
                timeout_s = number
        else:
            kept.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), parts.path, lease_s, timeout_s


def open_store(url: str) -> BudgetStore:
    """The store a ``configure(store=...)`` URL names (SQLite opens its file now, Redis connects lazily)."""
    if url == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    base, path, lease_s, timeout_s = _split(url)
    if base.startswith("sqlite:"):
        import sqlite3

        from .sqlite import SQLiteStore

        if not url.startswith("sqlite:///") or path.rstrip("/") == "":
            raise ConfigError(f"store: expected sqlite:///absolute/path.db, got {url!r}")
        try:
            return SQLiteStore(path, timeout_s=timeout_s, lease_s=lease_s)
        except sqlite3.Error as exc:
            raise ConfigError(f"store: cannot open the SQLite budget store {path}: {exc}") from exc
    if base.startswith(("redis://", "rediss://")):
        from .redis import RedisStore

        try:
            return RedisStore(base, timeout_s=timeout_s, lease_s=lease_s)
        except ImportError as exc:
            raise ConfigError(str(exc)) from exc
        except ValueError as exc:
            raise ConfigError(f"store: invalid Redis URL {url!r}: {exc}") from exc
    raise ConfigError(f"store must be 'memory', 'sqlite:///path' or 'redis://host:port/db', got {url!r}")


__all__ = [
    "Admission",
    "BucketState",
    "BudgetStore",
    "Line",
    "Settled",
    "StoreUnavailable",
    "from_nano",
    "open_store",
    "to_nano",
]
