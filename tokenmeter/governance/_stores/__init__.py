"""Budget stores behind one interface: ``memory`` (default), ``sqlite:///path``, ``redis://host:port/db``.

SQLite and Redis URLs take two optional query parameters understood by tokenmeter (and removed before
the URL reaches the driver): ``lease_s`` -- how long a reservation holds budget if its call never
settles (default 900) -- and ``timeout_s`` -- the longest any store operation may block the calling
thread (default 2). Example: ``sqlite:////var/lib/app/budgets.db?timeout_s=0.5``.
"""

from __future__ import annotations

import os
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
        elif parts.scheme.startswith("redis") and key in _redis_parameters():
            kept.append((key, value))
        else:
            redis = sorted(_redis_parameters()) if parts.scheme.startswith("redis") else []
            allowed = ["lease_s", "timeout_s", *redis]
            raise ConfigError(
                f"store: unknown URL parameter {key!r} in {url!r}; tokenmeter understands "
                f"{', '.join(allowed)} (e.g. ?timeout_s=0.5)"
            )
    if parts.scheme.startswith("redis"):
        db = parts.path.strip("/")
        if db and not (db.isdigit() and int(db) < 2**31):
            raise ConfigError(f"store: the Redis database in {url!r} must be a number such as /0, got {db!r}")
    return urlunsplit(parts._replace(query=urlencode(kept))), parts.path, lease_s, timeout_s


def _redis_parameters() -> frozenset[str]:
    """The URL parameters redis-py itself understands (passed through to it)."""
    try:
        from redis.connection import URL_QUERY_ARGUMENT_PARSERS
    except ImportError:
        return frozenset()
    # Not redis-py's "timeout" (a connection-pool wait): "?timeout=5" is nearly always meant as timeout_s.
    return frozenset(URL_QUERY_ARGUMENT_PARSERS) - {"timeout"} | {
        "db",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_check_hostname",
    }


def sqlite_path(url: str) -> str | None:
    """The file a ``sqlite:///`` URL names (``None`` when it names none)."""
    path = urlsplit(url).path
    return "/" + path.lstrip("/") if url.startswith("sqlite:///") and path.strip("/") else None


def check_url(url: str) -> None:
    """Raise :class:`ConfigError` for a store URL with unknown parameters or a bad Redis database."""
    _split(url)


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
        path = "/" + path.lstrip("/")  # sqlite:////var/x.db -> /var/x.db (not //var/x.db in messages)
        try:
            return SQLiteStore(path, timeout_s=timeout_s, lease_s=lease_s)
        except sqlite3.Error as exc:
            folder = os.path.dirname(path)
            hint = "" if os.path.isdir(folder) else f" (the directory {folder} does not exist)"
            raise ConfigError(f"store: cannot open the SQLite budget store {path}: {exc}{hint}") from exc
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
