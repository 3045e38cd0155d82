"""The LlamaIndex tests run only in the separate ``.venv-llamaindex`` (llama-index-llms-openai pins openai<3;
the main venv has 3.x). Create it with ``bash scripts/llamaindex-venv.sh`` (``make llamaindex-venv``) and run
``.venv-llamaindex/bin/python -m pytest tests/llamaindex``. Elsewhere every module here skips itself.
FakeProvider, ``fp`` and ``cap`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tokenmeter


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    tokenmeter.instrument("openai", "llama_index")
    try:
        yield
    finally:
        tokenmeter.uninstrument("openai", "llama_index")
