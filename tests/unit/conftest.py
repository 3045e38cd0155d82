from __future__ import annotations

from collections.abc import Iterator

import pytest

from tokenmeter.testing import Capture, capture


@pytest.fixture
def cap() -> Iterator[Capture]:
    with capture() as c:
        yield c
