"""``--source``: which :class:`~tokenmeter.finops.Reader` the FinOps commands read."""

from __future__ import annotations

from ._rows import Reader


def reader_for(source: str | None) -> Reader:
    """The reader of a ``--source`` value.

    ``KIND=URL`` is a Prometheus-compatible TSDB (``prometheus=http://host:9090``, also ``victoriametrics=``,
    ``mimir=``, ``thanos=``; anything else raises :class:`~tokenmeter.finops.PrometheusSourceError` naming the
    fix). Otherwise the SQLite ledger: ``sqlite:///path/ledger.db``, or ``None`` / ``"default"`` for
    ``TOKENMETER_LEDGER`` or the user data directory's ledger. A reader never creates a ledger.
    """
    if source and "=" in source and not source.startswith("sqlite:"):
        from .prometheus import open_source

        return open_source(source)
    from ._cli_report import open_source as ledger_source

    reader: Reader = ledger_source(source)
    return reader
