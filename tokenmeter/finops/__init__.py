"""tokenmeter's output side: the durable ledger, the report model and its readers, forecast and FOCUS export."""

from __future__ import annotations

from ._rows import Granularity, Reader, RunRow, UsageRow

__all__ = ["Granularity", "Reader", "RunRow", "UsageRow"]
