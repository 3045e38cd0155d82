"""``--source KIND=LOCATION``: which :class:`~tokenmeter.finops.Reader` a report reads."""

from __future__ import annotations

from ._rows import Reader
from .prometheus import open_source


def reader_for(source: str) -> Reader:
    """The reader of ``prometheus=http://host:9090`` (also ``victoriametrics=``, ``mimir=``, ``thanos=``).

    Raises :class:`~tokenmeter.finops.PrometheusSourceError` naming the fix for anything else; the SQLite ledger
    is the report command's own source (``sqlite:///path``, the default).
    """
    return open_source(source)
