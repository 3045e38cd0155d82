"""Policy: allowed tiers per team / workflow, the downgrade map, the approval gate for premium tiers."""

from __future__ import annotations

from typing import Any

import pytest

import tokenmeter
from tokenmeter import ConfigError, PolicyViolation, Request
from tokenmeter.governance import Budget, Policy
from tokenmeter.testing import capture

from .helpers import complete, decisions, events, start

ROUTES = {"o1": "gpt-4o", "gpt-4o": "gpt-4o-mini", "claude-3-opus*": "gpt-4o-mini"}


def test_a_tier_the_team_may_not_use_is_routed_down_the_map() -> None:
    policy = Policy(team_tiers={"support": ["small"]}, downgrade=ROUTES)
    with capture(policy=policy) as cap, tokenmeter.attributes(team="support"):
        call = complete("o1", max_tokens=10)  # o1 (frontier) -> gpt-4o (standard) -> gpt-4o-mini (small)
        assert call.model == "gpt-4o-mini"
        span = cap.spans[-1]
        assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert span.attributes["tokenmeter.request.original_model"] == "o1"
        assert span.attributes["tokenmeter.model.tier"] == "small"
        [event] = events(span)
        assert event["tokenmeter.policy.decision"] == "downgrade"
        assert "not allowed" in event["tokenmeter.policy.reason"]
        assert decisions(cap, "downgrade", **{"tokenmeter.team.name": "support"}) == 1
        assert cap.counter("tokenmeter.tokens", **{"gen_ai.request.model": "gpt-4o-mini"}) == 10


def test_globs_in_the_downgrade_map() -> None:
    policy = Policy(workflow_tiers={"triage": ["small"]}, downgrade=ROUTES)
    with capture(policy=policy), tokenmeter.attributes(workflow="triage"):
        assert complete("claude-3-opus-20240229", provider="anthropic").model == "gpt-4o-mini"


def test_a_tier_with_no_allowed_route_is_blocked_and_not_sent() -> None:
    policy = Policy(team_tiers={"support": ["small"]}, downgrade={"o1": "gpt-4o"})
    with capture(policy=policy) as cap, tokenmeter.attributes(team="support"):
        with pytest.raises(PolicyViolation) as info:
            start("o1")
        assert info.value.decision == "block" and not isinstance(info.value, tokenmeter.BudgetExceeded)
        assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 1
        assert decisions(cap, "block") == 1
        with tokenmeter.attributes(team="research"):
            assert complete("o1").model == "o1"  # an unnamed team is unrestricted


def test_team_and_workflow_rules_both_apply() -> None:
    policy = Policy(team_tiers={"support": ["small", "standard"]}, workflow_tiers={"bulk": ["small"]})
    with capture(policy=policy), tokenmeter.attributes(team="support"):
        assert complete("gpt-4o").model == "gpt-4o"
        with tokenmeter.attributes(workflow="bulk"), pytest.raises(PolicyViolation):
            start("gpt-4o")


def test_a_downgrade_cycle_is_no_route() -> None:
    policy = Policy(team_tiers={"t": ["small"]}, downgrade={"o1": "gpt-4o", "gpt-4o": "o1"})
    with capture(policy=policy), tokenmeter.attributes(team="t"), pytest.raises(PolicyViolation):
        start("o1")


def test_the_approval_hook_gates_premium_calls() -> None:
    asked: list[Request] = []

    def approve(request: Request) -> bool:
        asked.append(request)
        return request.max_tokens is not None and request.max_tokens <= 1000

    with capture(policy=Policy(approve=approve)) as cap:
        complete("o1", max_tokens=500)
        with pytest.raises(PolicyViolation) as info:
            start("o1", max_tokens=5000)
        complete("gpt-4o", max_tokens=5000)  # not a premium tier: the hook is not asked
    assert [(r.model, r.max_tokens) for r in asked] == [("o1", 500), ("o1", 5000)]
    assert info.value.decision == "deny"
    assert decisions(cap, "approve", **{"tokenmeter.model.tier": "frontier"}) == 1
    assert decisions(cap, "deny", **{"tokenmeter.model.tier": "frontier"}) == 1
    assert decisions(cap, "allow", **{"tokenmeter.model.tier": "standard"}) == 1
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 1
    approved = next(s for s in cap.spans if s.name == "chat o1")
    assert [e["tokenmeter.policy.decision"] for e in events(approved)] == ["approve"]


def test_a_raising_approval_hook_denies() -> None:
    def approve(_: Any) -> bool:
        raise RuntimeError("approval service down")

    with capture(policy=Policy(approve=approve, approval_tiers=["standard"])), pytest.raises(PolicyViolation) as info:
        start("gpt-4o")
    assert info.value.decision == "deny"


def test_routing_happens_before_approval() -> None:
    policy = Policy(team_tiers={"t": ["small", "standard"]}, downgrade=ROUTES, approve=lambda r: False)
    with capture(policy=policy) as cap, tokenmeter.attributes(team="t"):
        assert complete("o1").model == "gpt-4o"  # routed out of the premium tier: no approval needed
    assert decisions(cap, "deny") == 0


def test_a_downgrade_budget_without_a_target_uses_the_policy_map() -> None:
    budget = Budget("std", scope={"tier": "standard"}, limit_tokens=100, window="1d", action="downgrade")
    with capture(budgets=[budget], policy=Policy(downgrade=ROUTES)):
        complete("gpt-4o", max_tokens=100)
        assert complete("gpt-4o", max_tokens=100).model == "gpt-4o-mini"


def test_a_budget_downgrade_into_a_forbidden_tier_blocks() -> None:
    budget = Budget("std", scope={}, limit_tokens=100, window="1d", action="downgrade", downgrade_to="gpt-4o-mini")
    policy = Policy(team_tiers={"t": ["standard"]})
    with capture(budgets=[budget], policy=policy), tokenmeter.attributes(team="t"):
        complete("gpt-4o", max_tokens=100)
        with pytest.raises(tokenmeter.BudgetExceeded):
            start("gpt-4o", max_tokens=1)


def test_policy_and_budget_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="team_tiers"):
        Policy(team_tiers={"t": "small"})
    with pytest.raises(ConfigError, match="downgrade"):
        Policy(downgrade={"gpt-4o": 3})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="approve"):
        Policy(approve="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="policy must be"):
        with capture(policy={"team_tiers": {}}):
            pass
    with pytest.raises(ConfigError, match="unique"):
        with capture(budgets=[Budget("a", scope={}, limit_tokens=1, window="1d")] * 2):
            pass
    with pytest.raises(ConfigError, match="Budget objects"):
        with capture(budgets=[{"name": "a"}]):
            pass
