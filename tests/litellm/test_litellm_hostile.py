"""The hostile corpus through LiteLLM (issue 10's standing proof for the litellm integration).

The OpenAI chat answers of ``tests/hostile`` are served to ``litellm.completion`` (``openai/`` provider, sync,
plain and stream), once without tokenmeter and once with it: the caller must see the same thing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import tokenmeter
from tests.hostile import TALLY
from tests.hostile._corpus import KNOWN_LITELLM, Case, all_cases, as_json
from tests.hostile._raw import RawServer
from tokenmeter.testing import capture

from . import NEEDS_LITELLM

litellm = pytest.importorskip("litellm", reason=NEEDS_LITELLM)

CASES = [case for case in all_cases() if case.wire == "openai-chat"]
_VOLATILE = {"created", "system_fingerprint", "_response_ms", "id"}  # LiteLLM makes up ids it lacks


def _dump(obj: Any) -> Any:
    data = obj.model_dump() if hasattr(obj, "model_dump") else obj
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in _VOLATILE}
    return data


def _call(url: str, stream: bool) -> tuple[Any, ...]:
    seen: list[Any] = []
    try:
        got = litellm.completion(
            model="openai/gpt-4o",
            api_base=url + "/v1",
            api_key="x",
            stream=stream,
            max_retries=0,
            num_retries=0,
            messages=[{"role": "user", "content": "Say hello to the hostile server"}],
        )
        if stream:
            for chunk in got:
                seen.append(_dump(chunk))
            return ("ok", None, as_json(seen))
        return ("ok", as_json(_dump(got)), as_json(seen))
    except Exception as exc:
        return ("raise", type(exc).__name__, as_json(seen))


@pytest.fixture(scope="module")
def srv() -> Iterator[RawServer]:
    with RawServer() as server:
        yield server


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c, marks=[pytest.mark.xfail(reason=KNOWN_LITELLM[c.id], strict=True)] if c.id in KNOWN_LITELLM else []
        )
        for c in CASES
    ],
    ids=[c.id for c in CASES],
)
def test_litellm_caller_sees_the_same(srv: RawServer, case: Case) -> None:
    tokenmeter.uninstrument()
    srv.reset()
    srv.enqueue(case.answer)
    without = _call(srv.url, case.stream)
    tokenmeter.instrument("litellm")
    try:
        with capture():
            srv.reset()
            srv.enqueue(case.answer)
            with_tm = _call(srv.url, case.stream)
    finally:
        tokenmeter.uninstrument("litellm")
    TALLY["cases"] += 1
    if with_tm != without:
        TALLY["known" if case.id in KNOWN_LITELLM else "differences"] += 1
    assert with_tm == without
