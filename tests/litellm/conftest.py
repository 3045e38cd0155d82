"""The LiteLLM tests run only in the separate ``.venv-litellm`` (LiteLLM pins openai<3; the main venv has 3.x).

Create it with ``bash scripts/litellm-venv.sh`` and run ``.venv-litellm/bin/python -m pytest tests/litellm``.
Anywhere LiteLLM is not importable, every test module here skips itself (``pytest.importorskip``) with
:data:`NEEDS_LITELLM` as the reason, and nothing in this conftest imports LiteLLM. FakeProvider, ``fp`` and ``cap``
come from ``tests/conftest.py`` (this venv imports what it imports).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import tokenmeter

# LiteLLM fetches its model price map from the network at import time unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Async tests each run their own event loop; LiteLLM's cached aiohttp sessions would outlive them unclosed.
os.environ.setdefault("DISABLE_AIOHTTP_TRANSPORT", "True")


_HERE = Path(__file__).resolve().parent
# Noise from LiteLLM's own use of pydantic, not from tokenmeter.
_LITELLM_WARNINGS = (
    "ignore:Accessing the 'model_:DeprecationWarning",
    "ignore:Item 'summary' on TypedDict:UserWarning",
    "ignore:Pydantic serializer warnings:UserWarning",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            for spec in _LITELLM_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "driver" in metafunc.fixturenames:
        from .drivers import DRIVERS  # only reached once a test module found LiteLLM importable

        metafunc.parametrize("driver", [pytest.param(d, id=name) for name, d in DRIVERS.items()])


@pytest.fixture
def instrumented() -> Iterator[None]:
    """The LiteLLM integration patched for the test, restored after."""
    tokenmeter.instrument("litellm")
    try:
        yield
    finally:
        tokenmeter.uninstrument("litellm")
