"""tokenmeter's output side: the durable ledger, the report model and its readers, forecast and FOCUS export."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._memory import MemoryReader
    from ._promapi import PrometheusSourceError
    from ._rows import Granularity, Reader, RunRow, UsageRow
    from ._sources import reader_for
    from ._sqlite import LedgerFileError, SQLiteReader
    from .chargeback import Chargeback
    from .prometheus import PrometheusReader, RunStats
    from .report import Report, build_report

_LAZY = {  # the ledger's writer (configure()) needs none of these: each loads on first use
    "Granularity": "._rows",
    "Reader": "._rows",
    "RunRow": "._rows",
    "UsageRow": "._rows",
    "Chargeback": ".chargeback",
    "MemoryReader": "._memory",
    "LedgerFileError": "._sqlite",
    "SQLiteReader": "._sqlite",
    "Report": ".report",
    "build_report": ".report",
    "PrometheusReader": ".prometheus",
    "PrometheusSourceError": "._promapi",
    "RunStats": ".prometheus",
    "reader_for": "._sources",
}


def __getattr__(name: str) -> Any:  # the readers and the report load on first use (configure() needs none)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenmeter.finops' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)


__all__ = [
    "Chargeback",
    "Granularity",
    "LedgerFileError",
    "MemoryReader",
    "PrometheusReader",
    "PrometheusSourceError",
    "Reader",
    "Report",
    "RunRow",
    "RunStats",
    "SQLiteReader",
    "UsageRow",
    "build_report",
    "reader_for",
]
