"""The LlamaIndex tests run only in the separate ``.venv-llamaindex`` (llama-index-llms-openai pins openai<3;
the main venv has 3.x). Create it with ``bash scripts/llamaindex-venv.sh`` (``make llamaindex-venv``) and run
``.venv-llamaindex/bin/python -m pytest tests/llamaindex``. Elsewhere every module here skips itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tokenmeter
from tokenmeter.testing import Capture, capture
from tokenmeter.testing.fakes import FakeProvider


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


@pytest.fixture
def fp(fake_server: FakeProvider) -> Iterator[FakeProvider]:
    fake_server.clear()
    yield fake_server
    fake_server.clear()


@pytest.fixture
def cap() -> Iterator[Capture]:
    with capture() as c:
        yield c


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    tokenmeter.instrument("openai", "llama_index")
    try:
        yield
    finally:
        tokenmeter.uninstrument("openai", "llama_index")
