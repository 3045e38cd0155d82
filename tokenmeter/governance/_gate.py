"""The gate the core calls around every LLM call: ``before`` (route, approve, reserve) and ``after`` (settle).

Order of ``before``: policy routing (tier not allowed -> downgrade map or block), approval hook for
premium tiers, budgets (estimate, reserve atomically in the store; ``downgrade`` budgets retry once
with the cheaper model), then the run guard. Anything refused raises before the call is sent, after
releasing what was already reserved. With no budgets, no policy and no run limits ``before`` returns
at once: it is on the hot path of every call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import _pacing, _safe
from .._context import Run, clean_id
from .._errors import BudgetExceeded, ConfigError, PolicyViolation
from .._ids import new_id
from .._prices import Cost
from .._usage import Usage
from . import _signals
from ._bounds import Bounds, Estimate
from ._budget import REQUESTS, SCOPE_KEYS, Budget
from ._journal import Journal, Leases
from ._policy import Policy
from ._runguard import RunGuard
from ._settler import Pending, Settler, near_warn
from ._storelink import StoreLink
from ._stores import BucketState, BudgetStore, Line, StoreUnavailable, open_store, to_nano

_log = logging.getLogger("tokenmeter")


class Ticket:
    """What ``before`` reserved for one call and decided about it (kept in ``MeteredCall.reservation``)."""

    __slots__ = ("bound", "budgets", "estimate", "events", "lines", "rid", "run", "states")

    def __init__(self) -> None:
        self.rid: str | None = None
        self.lines: Sequence[Line] = ()
        self.budgets: Sequence[Budget] = ()
        self.run: Run | None = None
        self.estimate = Estimate(0, None)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.states: Sequence[BucketState] = ()  # of ``lines`` right after the reserve
        self.bound = False  # ``lines`` carry an upper-bound estimate (trimmed once the tokenizer is loaded)


class Gate(StoreLink, Bounds):
    """Budgets, policy and the per-run guard of one configured meter."""

    def __init__(
        self,
        meter: Any,
        options: Any,
        otel_meter: Any,
        *,
        clock: Callable[[], float] = time.time,
        store: BudgetStore | None = None,
    ) -> None:
        budgets = tuple(options.budgets)
        names: set[str] = set()
        for budget in budgets:
            if not isinstance(budget, Budget):
                raise ConfigError(f"budgets must be tokenmeter.Budget objects, got {budget!r}")
            if budget.name in names:
                raise ConfigError(f"two budgets are named {budget.name!r}; budget names must be unique")
            names.add(budget.name)
            for key in budget.scope:
                if key not in SCOPE_KEYS and key not in options.metric_attributes:
                    raise ConfigError(
                        f"Budget {budget.name!r}: scope key {key!r} is not one of the scope keys "
                        f"{', '.join(SCOPE_KEYS)}; to scope by an extra attribute, allow-list it with "
                        f"configure(metric_attributes=[{key!r}])"
                    )
        if options.policy is not None and not isinstance(options.policy, Policy):
            raise ConfigError(f"policy must be a tokenmeter.Policy, got {options.policy!r}")
        if options.on_budget_warning is not None and not callable(options.on_budget_warning):
            raise ConfigError("on_budget_warning must be a callable taking a BudgetWarning")
        self.meter = meter
        self.budgets = budgets
        self._escalates = any(b.downgrade_at is not None for b in budgets)
        self._by_name: dict[str | None, Budget] = {b.name: b for b in budgets}
        self._attr_keys = frozenset(k for b in budgets for k in b.scope if k not in SCOPE_KEYS)
        self.policy: Policy | None = options.policy
        self.fail_open: bool = options.fail_open
        self.on_budget_warning: Callable[[Any], Any] | None = options.on_budget_warning
        self.expected_output_tokens: int = options.expected_output_tokens
        self.clock = clock  # replaceable (tests): windows, leases and the outage cooldown follow it
        # ``store``: a forked child's stand-in that opens the store at first use (see _reopen)
        self.store: BudgetStore | None = (store or open_store(options.store)) if budgets else None
        self.lease_s = self.store.lease_s if self.store is not None else 0.0
        self._active = bool(budgets) or self.policy is not None
        self._decisions = _signals.Decisions(meter.instruments)
        self._runs = RunGuard()
        self._down_until: float | None = None
        # How each pre-call reservation counted its input: an exact tokenizer, or a heuristic estimate.
        self._estimates = otel_meter.create_counter(
            "tokenmeter.budget.estimates",
            unit="{call}",
            description="Pre-call budget estimates, by whether the input tokens were counted exactly.",
        )
        self.journal = Journal()
        self._init_bounds()
        # Budgeted calls in flight while the tokenizer loads: its heavy steps wait for a pause (_pacing).
        self._flight: _pacing.Flight | None = _pacing.Flight() if budgets else None
        self._replaying = threading.Lock()
        self.leases = Leases(self.lease_s, self._renew, lambda: self.clock(), self._replay)
        # Redis: settles leave the caller's path (queued, sent by a thread or with the next reserve).
        self.settler: Settler | None = None
        if self.store is not None and self.store.defers_settles:
            self.settler = Settler(self._send_settles, getattr(self.store, "timeout_s", 2.0))
        if self.store is not None:
            _signals.register_gauge(meter.instruments, budgets, self.store, lambda: self.clock())

    # -- before --------------------------------------------------------------------------------
    def before(self, call: Any) -> None:
        """Route, approve and reserve for ``call``; raise :class:`PolicyViolation` to stop it being sent."""
        run = call.scope.run
        if run is not None and run.max_tokens is None and run.max_cost_usd is None:
            run = None
        if run is None and not self._active:
            return
        ticket = Ticket()
        call.reservation = ticket
        flight = self._flight
        if flight is not None:
            flight.calls.add(id(call))
        try:
            self._admit(call, ticket, run)
        except PolicyViolation as refusal:
            if flight is not None:
                flight.calls.discard(id(call))
            self._release(ticket)
            name = getattr(refusal, "budget", None)
            self._decide(call, ticket, refusal.decision, str(refusal), budget=self._by_name.get(name, name))
            _signals.add_events(_signals.current_span(), ticket.events)
            raise
        except Exception:
            _safe.log_once("gate.before", "tokenmeter: the budget/policy gate failed; the call goes ahead")

    def _admit(self, call: Any, ticket: Ticket, run: Run | None) -> None:
        if self.policy is not None:
            self._apply_policy(call, ticket, self.policy)
        estimate = self._reserve_budgets(call, ticket) if self.budgets else None
        if run is not None:
            if estimate is None:
                estimate = self._estimate(call)
            why = self._runs.reserve(run, estimate.tokens, estimate.usd)
            if why is not None and (estimate.bound or self._bounds):  # decide again with exact counts
                self._exactify()
                estimate = self._estimate(call, wait=True)
                why = self._runs.reserve(run, estimate.tokens, estimate.usd)
            if why is not None:
                raise BudgetExceeded(why, model=call.request.model)
            ticket.run, ticket.estimate = run, estimate
        if ticket.bound or ticket.estimate.bound:
            self._hold_bound(ticket, call)
        if not ticket.events:
            self._decide(call, ticket, "allow", "within policy and budgets")

    def _apply_policy(self, call: Any, ticket: Ticket, policy: Policy) -> None:
        req, scope = call.request, call.scope
        if not policy.allows(scope.team, scope.workflow, call.tier):
            target = policy.route(req.model, scope.team, scope.workflow, self._tier_of(req.provider))
            if target is None:
                who = " / ".join(f"{k} {v!r}" for k, v in (("team", scope.team), ("workflow", scope.workflow)) if v)
                raise PolicyViolation(
                    f"model {req.model!r} (tier {call.tier!r}) is not allowed for {who} and the "
                    "policy has no allowed cheaper model",
                    decision="block",
                    model=req.model,
                )
            self._rewrite(call, ticket, target, f"tier {call.tier!r} not allowed")
        if policy.needs_approval(call.tier):
            try:
                approved = bool(policy.approve(req))  # type: ignore[misc]
            except Exception:
                _safe.log_once("policy.approve", "tokenmeter: the approval hook raised; the call is denied")
                approved = False
            if not approved:
                raise PolicyViolation(
                    f"approval denied for {req.model!r} (tier {call.tier!r})", decision="deny", model=req.model
                )
            self._decide(call, ticket, "approve", f"approved for tier {call.tier!r}")

    def _values(self, call: Any) -> dict[str, str | None]:
        """What budget scopes match on for ``call``."""
        scope = call.scope
        values: dict[str, str | None] = {
            "team": scope.team,
            "workflow": scope.workflow,
            "tier": call.tier,
            "env": scope.env,
            "model": call.request.model,
            "customer": scope.customer or None,
            "user": scope.user or None,
            "session": scope.session or None,
            "feature": scope.feature or None,
        }
        if self._attr_keys:
            for key, value in scope.extra:
                if key in self._attr_keys:
                    values[key] = clean_id(value)
        return values

    def _lines(
        self, values: dict[str, str | None], now: float, usd: int, tokens: int, escalate: bool = False
    ) -> tuple[list[Line], list[Budget]]:
        """The buckets a call with ``values`` touches, and the budget of each."""
        lines: list[Line] = []
        owners: list[Budget] = []
        for budget in self.budgets:
            entity = budget.entity(values)
            if entity is None:
                continue
            fraction = budget.downgrade_at if escalate else None
            for line in budget.lines(now, usd, tokens, self.lease_s, entity, fraction):
                lines.append(line)
                owners.append(budget)
        return lines, owners

    def _reserve_budgets(self, call: Any, ticket: Ticket) -> Estimate | None:
        assert self.store is not None
        req = call.request
        attempt, exact = 0, False
        while attempt < 2:
            values = self._values(call)
            if not any(b.matches(values) for b in self.budgets):
                return None
            estimate = self._estimate(call, wait=exact)
            now = self.clock()
            lines, matched = self._lines(values, now, estimate.usd or 0, estimate.tokens, escalate=attempt == 0)
            rid = new_id()
            try:
                if self._down_until is not None and now < self._down_until:
                    raise StoreUnavailable("in outage cooldown")
                admission = self._exchange(self._queued(), (rid, lines, now, now + self.lease_s))[1]
                assert admission is not None
            except StoreUnavailable as exc:
                self._store_failed(call, ticket, matched, lines, exc, now)
                ticket.bound = estimate.bound
                return estimate
            self._store_ok()
            if admission.admitted:
                if attempt == 0 and self._escalates:  # keep the full limits (warnings and utilization use them)
                    lines = self._lines(values, now, estimate.usd or 0, estimate.tokens)[0]
                ticket.rid, ticket.lines, ticket.budgets, ticket.states = rid, lines, matched, admission.states
                ticket.bound = estimate.bound
                self.leases.hold(rid, [line.key for line in lines])
                for budget, line, state in zip(matched, lines, admission.states, strict=True):
                    if not line.enforce and _signals.over(line, state):
                        self._decide(call, ticket, "warn", f"budget {budget.name!r} is over its limit", budget=budget)
                return estimate
            assert admission.refused is not None
            if not exact and (estimate.bound or self._bounds):  # a bound took part: decide again, exactly
                exact = True
                self._exactify()
                continue
            budget = matched[admission.refused]
            if attempt == 0:
                target = self._budget_downgrade(call, budget)
                if target is not None:
                    why = (
                        f"budget {budget.name!r} passed {budget.downgrade_at:.0%} of its limit"
                        if budget.downgrade_at is not None
                        else f"budget {budget.name!r} would be exceeded"
                    )
                    self._rewrite(call, ticket, target, why, budget=budget)
                    attempt += 1
                    continue
                if budget.downgrade_at is not None:
                    attempt += 1
                    continue  # nothing cheaper to escalate to: the full limit decides
            line, state = lines[admission.refused], admission.states[admission.refused]
            raise BudgetExceeded(_signals.explain(budget, line, state), budget=budget.name, model=req.model)
        return None  # pragma: no cover - the loop always returns or raises

    def _budget_downgrade(self, call: Any, budget: Budget) -> str | None:
        if budget.action != "downgrade" and budget.downgrade_at is None:
            return None
        req, scope, policy = call.request, call.scope, self.policy
        target = budget.downgrade_to or (policy.cheaper(req.model) if policy is not None else None)
        if target is None or target == req.model:
            return None
        if policy is not None and not policy.allows(scope.team, scope.workflow, self._tier_of(req.provider)(target)):
            return None
        return target

    # -- after ---------------------------------------------------------------------------------
    def after(self, call: Any, usage: Usage | None, cost: Cost, error: BaseException | None) -> None:
        """Settle the call's reservation with its actual usage (release it when nothing was used)."""
        ticket = call.reservation
        flight = self._flight
        if flight is not None:
            flight.calls.discard(id(call))
            if "o200k_base" in self.meter.tokenizer._encodings:
                self._flight = None  # loaded: nothing left to pace
        if not isinstance(ticket, Ticket):
            if not self.budgets:
                return
            ticket = None
        try:
            if ticket is not None and (ticket.bound or ticket.estimate.bound):  # waits for a trim in progress
                self._unbound(ticket, exact=usage is None and error is None)
            if ticket is not None and ticket.run is not None:
                self._runs.release(ticket.run, ticket.estimate.tokens, ticket.estimate.usd)
            if self.store is not None:
                self._settle(call, ticket, usage, cost, error)
        finally:
            if ticket is not None and ticket.events:
                _signals.add_events(call.span, ticket.events)

    def _settle(
        self, call: Any, ticket: Ticket | None, usage: Usage | None, cost: Cost, error: BaseException | None
    ) -> None:
        assert self.store is not None
        now = self.clock()
        if ticket is None:  # a call metered with record(): charge what it used to the budgets in scope now
            lines: Sequence[Line]
            budgets: Sequence[Budget]
            lines, budgets = self._lines(self._values(call), now, 0, 0)
            rid = None
        else:
            budgets, lines, rid = ticket.budgets, ticket.lines, ticket.rid
        if not lines:
            return
        if usage is not None:
            usd, tokens = (to_nano(cost.usd) if cost.usd is not None else 0), usage.total
            actual = [
                line.with_amounts(0, 1) if line.key.endswith(REQUESTS) else line.with_amounts(usd, tokens)
                for line in lines
            ]
        elif error is not None:  # failed before using anything: release (a request was still made)
            actual = [
                line.with_amounts(0, 1) if line.key.endswith(REQUESTS) else line.with_amounts(0, 0) for line in lines
            ]
        else:
            actual = list(lines)  # the provider reported no usage: charge the estimate
        if rid is None and not any(line.usd or line.tokens for line in actual):
            return
        down = self._down_until is not None and now < self._down_until
        item = Pending(rid, actual, budgets, now, call.span)
        if self.settler is not None and rid is not None and not down:
            if not near_warn(ticket.states if ticket is not None else (), lines, actual):
                item.span = None  # it lands after the call's span ended
                self.settler.add(item)  # the lease is renewed until it lands: it counts as reserved till then
                return
        if down:
            if rid is not None:
                self.leases.drop(rid)
            self.journal.add(rid, actual, budgets)  # charged when the store answers again
            self.leases.start()
            return
        try:
            self._exchange([*self._queued(), item])
        except StoreUnavailable as exc:
            self._settle_failed(exc, now)

    # -- helpers -------------------------------------------------------------------------------
    def _tier_of(self, provider: str) -> Callable[[str], str]:
        tiers = self.meter.tiers
        return lambda model: str(tiers.tier(provider, model))

    def _rewrite(self, call: Any, ticket: Ticket, model: str, reason: str, budget: Budget | None = None) -> None:
        req = call.request
        original = req.model
        req.model = model
        call.tier = self._tier_of(req.provider)(model)
        self._decide(
            call,
            ticket,
            "downgrade",
            f"{reason}: {original} -> {model}",
            budget=budget,
            **{"tokenmeter.request.original_model": original},
        )

    def _decide(
        self, call: Any, ticket: Ticket, decision: str, reason: str, budget: Budget | str | None = None, **extra: Any
    ) -> None:
        scope = call.scope
        self._decisions.count(decision, scope.team, scope.workflow, call.tier)
        if isinstance(budget, Budget):
            extra["tokenmeter.budget.owner"] = budget.owner
            budget = budget.name
        attrs = _signals.event_attributes(decision, reason, **{"tokenmeter.budget.name": budget}, **extra)
        attrs["gen_ai.request.model"] = call.request.model
        ticket.events.append((_signals.DECISION_EVENT, attrs))

    def _release(self, ticket: Ticket) -> None:
        self._unbound(ticket)
        if ticket.run is not None:
            self._runs.release(ticket.run, ticket.estimate.tokens, ticket.estimate.usd)
            ticket.run = None
        if ticket.rid is not None and ticket.lines and self.store is not None:
            zero = [line.with_amounts(0, 0) for line in ticket.lines]
            if self.settler is not None:
                self.settler.add(Pending(ticket.rid, zero, ticket.budgets, self.clock(), None))
            else:
                self.leases.drop(ticket.rid)
                try:
                    self.store.settle(ticket.rid, zero, self.clock())
                except StoreUnavailable:
                    self.journal.add(ticket.rid, zero, ticket.budgets)  # released when the store answers again
            ticket.rid, ticket.lines = None, ()

    def flush(self, timeout_millis: int) -> bool:
        """Send the queued settles (Redis) within ``timeout_millis``; False if some did not land in time."""
        return True if self.settler is None else self.settler.flush(timeout_millis / 1000)

    def close(self) -> None:
        """Send queued settles, stop renewing leases, write what the journal holds if the store answers, close."""
        if self.settler is not None:
            self.settler.close()
        self.leases.close()
        if self.store is not None:
            if len(self.journal):
                self._down_until = None
                self._replay()
            self.store.close()
