"""tokenmeter's output side: the durable ledger, the report model and its readers, forecast and FOCUS export."""

from __future__ import annotations

from ._memory import MemoryReader
from ._rows import Granularity, Reader, RunRow, UsageRow
from ._sqlite import LedgerFileError, SQLiteReader
from .report import Report, build_report

__all__ = ["Granularity", "LedgerFileError", "MemoryReader", "Reader", "Report", "RunRow", "SQLiteReader", "UsageRow",
           "build_report"]
