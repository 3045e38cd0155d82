"""Fixtures of the hostile-response suite: a raw loopback server and instrumentation toggles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._raw import RawServer


@pytest.fixture(scope="session")
def raw_server() -> Iterator[RawServer]:
    """One scripted-bytes server for the session."""
    with RawServer() as server:
        yield server


@pytest.fixture
def srv(raw_server: RawServer) -> Iterator[RawServer]:
    """The scripted-bytes server, with an empty queue and request log."""
    raw_server.reset()
    yield raw_server
    raw_server.reset()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report the counts the README's Reliability table quotes."""
    from . import TALLY

    if TALLY["cases"] or TALLY["examples"]:
        terminalreporter.write_line(
            f"hostile corpus: {TALLY['cases']} fixed cases + {TALLY['examples']} generated usage payloads compared "
            f"with and without tokenmeter; host-visible differences: {TALLY['differences']} "
            f"(+ {TALLY['known']} known, documented); "
            f"internal faults logged and swallowed: {TALLY['swallowed']}"
        )
