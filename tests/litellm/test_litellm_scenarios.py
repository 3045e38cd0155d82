"""The shared scenario suite (tests/integration/test_scenarios.py), run through LiteLLM with its drivers.

The scenario functions are imported, not copied: pytest collects them here, parametrized by the LiteLLM
drivers of ``drivers.py`` (see ``conftest.py``), with the ``litellm`` integration instrumented.
"""

from __future__ import annotations

import pytest

from . import NEEDS_LITELLM

pytest.importorskip("litellm", reason=NEEDS_LITELLM)

from tests.integration.test_scenarios import *  # noqa: F403
from tests.integration.test_scenarios import pytestmark  # noqa: F401
