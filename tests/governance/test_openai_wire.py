"""Governance seen from the wire: the real openai SDK against the loopback FakeProvider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import tokenmeter
from tokenmeter import BudgetExceeded, PolicyViolation
from tokenmeter.governance import Budget, Policy
from tokenmeter.testing import capture
from tokenmeter.testing.fakes import FakeProvider, Reply

openai = pytest.importorskip("openai")
pytest.importorskip("tokenmeter.integrations.openai")

MESSAGES = [{"role": "user", "content": "Refund order 1234?"}]


@pytest.fixture
def fp() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


@pytest.fixture
def client(fp: FakeProvider) -> Iterator[Any]:
    tokenmeter.instrument("openai")
    c = openai.OpenAI(base_url=fp.url + "/v1", api_key="test", max_retries=0)
    yield c
    c.close()
    tokenmeter.uninstrument("openai")


def test_a_downgrade_changes_the_model_sent_over_the_wire(fp: FakeProvider, client: Any) -> None:
    policy = Policy(team_tiers={"support": ["small"]}, downgrade={"gpt-4o": "gpt-4o-mini"})
    fp.enqueue(Reply(input_tokens=12, output_tokens=7))
    with capture(policy=policy) as cap, tokenmeter.attributes(team="support"):
        response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50)
    [received] = fp.requests
    assert received.json["model"] == "gpt-4o-mini" and received.model == "gpt-4o-mini"
    assert response.model == "gpt-4o-mini"
    span = cap.span("chat gpt-4o-mini")
    assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert span.attributes["tokenmeter.request.original_model"] == "gpt-4o"
    assert span.attributes["gen_ai.usage.input_tokens"] == 12


def test_a_budget_downgrade_changes_the_model_sent_over_the_wire(fp: FakeProvider, client: Any) -> None:
    budget = Budget(
        "std", scope={"tier": "standard"}, limit_tokens=100, window="1d", action="downgrade", downgrade_to="gpt-4o-mini"
    )
    fp.enqueue(Reply(input_tokens=10, output_tokens=5))
    with capture(budgets=[budget]):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=500)
    assert [r.json["model"] for r in fp.requests] == ["gpt-4o-mini"]


def test_an_approval_deny_sends_nothing(fp: FakeProvider, client: Any) -> None:
    asked: list[str] = []

    def approve(request: tokenmeter.Request) -> bool:
        asked.append(request.model)
        return False

    with capture(policy=Policy(approve=approve)) as cap:
        with pytest.raises(PolicyViolation) as info:
            client.chat.completions.create(model="o1", messages=MESSAGES)
        assert info.value.decision == "deny"
    assert asked == ["o1"]
    assert fp.requests == []
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 1
    assert cap.counter("tokenmeter.tokens") == 0


def test_a_run_over_its_limit_sends_nothing_more(fp: FakeProvider, client: Any) -> None:
    fp.enqueue(Reply(input_tokens=30, output_tokens=40), Reply(input_tokens=30, output_tokens=40))
    with capture(), tokenmeter.workflow("loop", max_tokens=200):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=60)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=60)
        with pytest.raises(BudgetExceeded):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=60)
    assert len(fp.requests) == 2
