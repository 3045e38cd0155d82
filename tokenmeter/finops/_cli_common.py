"""What the FinOps command-line verbs share: resolving ``--source`` to a Reader, one-line failures, text tables."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._rows import Reader


class CommandError(Exception):
    """A failure the command reports in one line: ``status`` 2 for bad input, 1 when nothing could be produced."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def open_reader(source: str | None) -> Reader:
    """The :class:`Reader` for ``--source``: ``tokenmeter.finops.reader_for`` when a build provides it, else the
    ``tokenmeter report`` command's resolver (the SQLite ledger by default, ``prometheus=URL``)."""
    from .. import finops

    reader_for: Callable[[str | None], Reader] | None = getattr(finops, "reader_for", None)
    if reader_for is not None:
        try:
            return reader_for(source)
        except CommandError:
            raise
        except Exception as exc:  # the reader names what to fix; never a traceback
            raise CommandError(f"cannot open --source {source or '(default ledger)'}: {exc}") from None
    try:
        report_cli = importlib.import_module("tokenmeter.finops._cli_report")
    except ImportError:
        report_cli = None
    open_source: Callable[[str | None], Reader] | None = getattr(report_cli, "open_source", None)
    if open_source is None:
        raise CommandError("no usage reader is available in this build (tokenmeter.finops.reader_for is missing)")
    try:
        return open_source(source)
    except Exception as exc:  # ReportError and the readers' own errors say what to fix
        raise CommandError(str(exc)) from None


def run(prog: str, body: Callable[[], int]) -> int:
    """Run ``body``; a :class:`CommandError` becomes one line on stderr and its exit status."""
    try:
        return body()
    except CommandError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:  # e.g. piped into head
        return 0


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[int] = ()) -> str:
    """A plain aligned text table; columns whose index is in ``right`` are right-aligned."""
    cells = [[str(c) for c in header], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for r in cells:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def tokens(value: float) -> str:
    """A token count for a table: 1,234,567."""
    return f"{round(value):,}"


def usd(value: float | Any) -> str:
    """Dollars for a table: $1,234.57 (below a cent: four decimals)."""
    v = float(value)
    return f"${v:,.2f}" if abs(v) >= 0.01 or v == 0 else f"${v:,.4f}"
