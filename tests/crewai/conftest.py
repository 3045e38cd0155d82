"""The CrewAI tests run only in the separate ``.venv-crewai`` (crewai pins openai 2.x and pulls chromadb,
onnxruntime, lancedb...; the main venv has openai 3.x). Create it with ``bash scripts/crewai-venv.sh``
(``make crewai-venv``) and run ``.venv-crewai/bin/python -m pytest tests/crewai``. Elsewhere every module here
skips itself (on CI, where the venv is made first, a missing crewai fails instead).

FakeProvider, ``fp`` and ``cap`` come from ``tests/conftest.py``, the real small model from
``tests/real_llm/conftest.py``, and the span helpers from ``tests/frameworks/conftest.py``: nothing is copied.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import tokenmeter
from tests.real_llm.conftest import real_llm  # noqa: F401  (the real small model, same fixture)

# Before crewai is imported: no telemetry, no trace upload prompt, no first-run question, and the crews' own
# storage (task outputs, memory) kept apart from the user's projects.
os.environ.setdefault("CREWAI_TESTING", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_DISABLE_TRACKING", "true")
os.environ.setdefault("CREWAI_STORAGE_DIR", "tokenmeter-tests")  # a folder name under the user data dir

_HERE = Path(__file__).resolve().parent
# Noise from CrewAI's own code (its deprecated fields, read on every kickoff), not from tokenmeter;
# test_no_new_warnings still compares every warning with and without tokenmeter.
_CREWAI_WARNINGS = ("ignore::DeprecationWarning:crewai",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            for spec in _CREWAI_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    """The openai integration (CrewAI's native OpenAI provider meters through it) and the CrewAI adapter."""
    tokenmeter.instrument("openai", "crewai")
    try:
        yield
    finally:
        tokenmeter.uninstrument("openai", "crewai")
