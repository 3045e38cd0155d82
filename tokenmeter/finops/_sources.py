"""``--source KIND=LOCATION``: which :class:`~tokenmeter.finops.Reader` a report reads."""

from __future__ import annotations

from ._promapi import PrometheusSourceError
from ._prometheus import PrometheusReader
from ._rows import Reader

# Every Prometheus-compatible TSDB answers the same query API; the other names are for the reader of the command.
PROMETHEUS_KINDS = ("prometheus", "victoriametrics", "mimir", "thanos")


def reader_for(source: str) -> Reader:
    """The reader of ``prometheus=http://host:9090`` (also ``victoriametrics=``, ``mimir=``, ``thanos=``).

    Raises :class:`PrometheusSourceError` naming the fix for anything else; the SQLite ledger and in-memory
    sources are the report command's own (``ledger=``, the default).
    """
    kind, sep, location = source.partition("=")
    kind = kind.strip().lower()
    if sep and kind in PROMETHEUS_KINDS:
        return PrometheusReader(location.strip())
    raise PrometheusSourceError(
        f"--source {source!r}: unknown source; use prometheus=http://host:9090 (or victoriametrics=, mimir=, "
        "thanos= with the query API's URL)"
    )
