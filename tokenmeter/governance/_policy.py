"""``Policy``: which model tiers a team or workflow may call, where to route instead, and who approves."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .._errors import ConfigError

_MAX_HOPS = 8  # a downgrade chain longer than this (or a cycle) is treated as "no cheaper model"


def _tier_sets(name: str, value: Mapping[str, Collection[str]] | None) -> dict[str, frozenset[str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"Policy: {name} must map a name to allowed tiers, got {value!r}")
    out: dict[str, frozenset[str]] = {}
    for key, tiers in value.items():
        if isinstance(tiers, str) or not all(isinstance(t, str) for t in tiers):
            raise ConfigError(f"Policy: {name}[{key!r}] must be a list of tier names, got {tiers!r}")
        out[key] = frozenset(tiers)
    return out


class Policy:
    """Routing and approval rules applied before every LLM call (``configure(policy=Policy(...))``).

    * ``team_tiers`` / ``workflow_tiers`` -- ``{"payments": ["small", "standard"]}``: the model tiers the
      calls of that team / workflow may use. A call must satisfy every rule that names its team or
      workflow; calls of unnamed teams and workflows are unrestricted.
    * ``downgrade`` -- ``{"gpt-4o": "gpt-4o-mini", "claude-3-opus*": "claude-3-5-haiku-latest"}``
      (exact names first, then globs): where a call goes when its tier is not allowed (the chain is
      followed until an allowed tier), and the target of ``Budget(action="downgrade")`` without
      ``downgrade_to``. A call that cannot be routed to an allowed tier raises
      :class:`~tokenmeter.PolicyViolation` (decision ``block``) and is not sent.
    * ``approve`` -- ``approve(request) -> bool`` asked before each call whose (final) tier is in
      ``approval_tiers`` (default ``("frontier",)``). ``True``: decision ``approve``; ``False`` or an
      exception: decision ``deny``, :class:`~tokenmeter.PolicyViolation`, nothing sent.
    """

    __slots__ = ("_globs", "approval_tiers", "approve", "downgrade", "team_tiers", "workflow_tiers")

    def __init__(
        self,
        *,
        team_tiers: Mapping[str, Collection[str]] | None = None,
        workflow_tiers: Mapping[str, Collection[str]] | None = None,
        downgrade: Mapping[str, str] | None = None,
        approve: Callable[[Any], bool] | None = None,
        approval_tiers: Collection[str] = ("frontier",),
    ) -> None:
        self.team_tiers = _tier_sets("team_tiers", team_tiers)
        self.workflow_tiers = _tier_sets("workflow_tiers", workflow_tiers)
        if downgrade is not None and (
            not isinstance(downgrade, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in downgrade.items())
        ):
            raise ConfigError(f"Policy: downgrade must map model names (or globs) to models, got {downgrade!r}")
        self.downgrade: dict[str, str] = dict(downgrade or {})
        self._globs = [(k, v) for k, v in self.downgrade.items() if any(c in k for c in "*?[")]
        if approve is not None and not callable(approve):
            raise ConfigError(f"Policy: approve must be a callable approve(request) -> bool, got {approve!r}")
        self.approve = approve
        if isinstance(approval_tiers, str):
            raise ConfigError(f"Policy: approval_tiers must be a list of tiers, got {approval_tiers!r}")
        self.approval_tiers = frozenset(approval_tiers)

    def __repr__(self) -> str:
        return (
            f"Policy(team_tiers={self.team_tiers!r}, workflow_tiers={self.workflow_tiers!r}, "
            f"downgrade={self.downgrade!r}, approval_tiers={sorted(self.approval_tiers)!r})"
        )

    def allows(self, team: str | None, workflow: str | None, tier: str) -> bool:
        """Whether the team's and the workflow's rules (where they exist) allow ``tier``."""
        for rules, name in ((self.team_tiers, team), (self.workflow_tiers, workflow)):
            if name is not None:
                allowed = rules.get(name)
                if allowed is not None and tier not in allowed:
                    return False
        return True

    def cheaper(self, model: str) -> str | None:
        """The model ``downgrade`` maps ``model`` to, if any."""
        found = self.downgrade.get(model)
        if found is not None:
            return found
        for pattern, target in self._globs:
            if fnmatch.fnmatchcase(model, pattern):
                return target
        return None

    def route(self, model: str, team: str | None, workflow: str | None, tier_of: Callable[[str], str]) -> str | None:
        """Follow the downgrade chain from ``model`` to the first model of an allowed tier (``None``: none)."""
        seen = {model}
        current = model
        for _ in range(_MAX_HOPS):
            nxt = self.cheaper(current)
            if nxt is None or nxt in seen:
                return None
            if self.allows(team, workflow, tier_of(nxt)):
                return nxt
            seen.add(nxt)
            current = nxt
        return None

    def needs_approval(self, tier: str) -> bool:
        """Whether calls to ``tier`` go through the ``approve`` hook."""
        return self.approve is not None and tier in self.approval_tiers
