"""LiteLLM's ``response_cost`` (``response._hidden_params``) is the call's cost, the table's estimate beside it."""

from __future__ import annotations

import pytest

from . import NEEDS_LITELLM

litellm = pytest.importorskip("litellm", reason=NEEDS_LITELLM)

from tests.integration.checks import only_call_span  # noqa: E402
from tokenmeter.testing import Capture  # noqa: E402
from tokenmeter.testing.fakes import FakeProvider, Reply  # noqa: E402

from .drivers import MESSAGES, OPENAI  # noqa: E402

pytestmark = pytest.mark.usefixtures("instrumented")


def test_response_cost_is_recorded_as_the_provider_cost(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(input_tokens=1000, output_tokens=100))
    response = litellm.completion(model="openai/gpt-4o", messages=MESSAGES, **OPENAI.client(fp.url))
    reported = response._hidden_params["response_cost"]
    assert isinstance(reported, float) and reported > 0
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["tokenmeter.cost.source"] == "provider"
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(reported, rel=1e-12)
    assert "tokenmeter.cost.table_usd" in attrs
    assert cap.counter("tokenmeter.cost") == pytest.approx(reported, rel=1e-9)
