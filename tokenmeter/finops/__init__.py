"""tokenmeter's output side: the durable ledger, the report model and its readers, forecast and FOCUS export."""

from __future__ import annotations

from ._promapi import PrometheusSourceError
from ._rows import Granularity, Reader, RunRow, UsageRow
from ._sources import reader_for
from .prometheus import PrometheusReader, RunStats

__all__ = [
    "Granularity",
    "PrometheusReader",
    "PrometheusSourceError",
    "Reader",
    "RunRow",
    "RunStats",
    "UsageRow",
    "reader_for",
]
