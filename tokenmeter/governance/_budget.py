"""``Budget``: a spending limit (dollars and/or tokens) for the calls of a scope, per window."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from .._context import clean_id
from .._errors import ConfigError
from .._validate import amount, read_data_file
from ._stores import Line, to_nano
from ._stores._base import Level
from ._windows import WINDOWS, bounds

SCOPE_KEYS: tuple[str, ...] = ("team", "workflow", "tier", "env", "model", "customer", "user", "session", "feature")
ACTIONS: tuple[str, ...] = ("block", "warn", "downgrade")
EACH = "*"  # a scope value that makes the budget a template: one bucket per distinct value
REQUESTS = "#req"  # suffix of the store key of a budget's request-count bucket
_GLOB = frozenset("*?[")
_OVERRIDE_KEYS = ("limit_usd", "limit_tokens", "limit_requests")


class Budget:
    """A limit on what the LLM calls of a scope may spend per window, enforced before each call.

    ``scope`` selects the calls: a mapping over ``team``, ``workflow``, ``tier`` (the called model's
    tier) and ``env``; ``{}`` matches every call. All matching calls share one bucket per window.
    ``limit_usd`` and/or ``limit_tokens`` (at least one) cap the window's spend. ``window`` is
    ``"1m"`` (rate quotas), ``"1h"``, ``"1d"``, ``"7d"`` (ISO week), ``"30d"`` or ``"month"``
    (calendar month), all UTC. ``limit_requests`` caps the number of calls per window (with
    ``window="1m"``: requests per minute; ``limit_tokens`` with ``"1m"``: tokens per minute).

    Scope keys: ``team``, ``workflow``, ``tier``, ``env``, ``model`` (a name or a glob such as
    ``"gpt-4o*"``), the entities ``customer``, ``user``, ``session``, ``feature`` (see
    :func:`~tokenmeter.attributes`), and any extra attribute allow-listed in
    ``configure(metric_attributes=...)``. Values may be globs. The value ``"*"`` makes the budget a
    *template*: one bucket per distinct value (e.g. ``scope={"customer": "*"}`` gives every customer
    its own limit), created on first use and reset each window; calls without that value are not in
    scope. ``overrides`` give chosen entities their own limit: ``{"acme": 50}`` (the budget's dollar
    limit, else its token limit) or ``{"acme": {"limit_tokens": 10**7}}``; with several ``"*"`` keys
    an entity is the values joined by ``"/"`` in scope order.

    ``owner`` (a team, a person, an on-call rotation) is named in warnings, span events and the
    utilization gauge (hence alerts). ``downgrade_at`` escalates before the limit: past that fraction
    the call is sent as ``downgrade_to`` (or the policy's cheaper model), and ``action`` applies at the
    limit itself -- e.g. ``warn_at=(0.8,), downgrade_at=0.95, action="block"``.

    Before a call its cost is estimated and reserved; a call is admitted iff the spend plus live
    reservations plus its estimate stays at or under the limit (landing exactly on the limit is
    allowed; a used-up budget admits nothing). When it is not, ``action`` decides:
    ``"block"`` raises :class:`~tokenmeter.BudgetExceeded` and nothing is sent; ``"warn"`` lets the
    call through and records a ``warn`` decision; ``"downgrade"`` resends it as ``downgrade_to`` (or
    the model the :class:`Policy` downgrade map names) if that fits, else blocks.

    ``warn_at`` are fractions of the limit; crossing each fires once per window (span event, log
    record and the ``on_budget_warning`` callback). Models without a price still count against
    ``limit_tokens``; they cannot count against ``limit_usd``.

    Exactness: after each call the estimate is replaced by the actual usage, so the settled spend of a
    window never exceeds ``limit + sum(max(0, actual - estimate))`` over its calls. Estimates are upper
    bounds when ``max_tokens`` is set and the prompt is counted with the model's own tokenizer, and
    the limit then holds exactly. Calls metered with ``record()`` (never blocked: they already
    happened) and calls let through while the store was down (``fail_open``) count with an estimate
    of zero in that bound.

    The bound holds however late a settle lands: with the Redis store a call's settle is sent after the
    call returns (by a background thread, or with the process's next reserve, in the same round trip),
    and until it lands the call's reservation stays in the store, its lease renewed, so it counts with
    its estimate. A settle not yet landed can only make admission stricter (an estimate above the
    actual) or be one of the under-estimates the bound already sums. Spend read from the store
    (``tokenmeter budgets``, the utilization gauge) lags the calls of the last few milliseconds;
    ``meter.force_flush()`` and shutdown send what is queued.
    """

    __slots__ = (
        "_derived",
        "_each",
        "_limits",
        "_scope_items",
        "action",
        "downgrade_at",
        "downgrade_to",
        "limit_requests",
        "limit_tokens",
        "limit_usd",
        "name",
        "overrides",
        "owner",
        "scope",
        "warn_at",
        "window",
    )

    def __init__(
        self,
        name: str,
        *,
        scope: Mapping[str, str],
        limit_usd: Decimal | float | int | str | None = None,
        limit_tokens: int | None = None,
        limit_requests: int | None = None,
        window: str | None = None,
        action: str = "block",
        warn_at: Iterable[float] = (0.5, 0.8),
        downgrade_to: str | None = None,
        downgrade_at: float | None = None,
        owner: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"Budget name must be a non-empty string, got {name!r}")
        where = f"Budget {name!r}"
        if not isinstance(scope, Mapping):
            raise ConfigError(f"{where}: scope must be a mapping such as {{'team': 'payments'}}, got {scope!r}")
        for key, value in scope.items():
            if not isinstance(key, str) or not key.replace("_", "").replace(".", "").isalnum():
                raise ConfigError(
                    f"{where}: scope keys are {', '.join(SCOPE_KEYS)} or an attribute allow-listed "
                    f"in configure(metric_attributes=...); got {key!r}"
                )
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: scope[{key!r}] must be a non-empty string, got {value!r}")
        if limit_usd is None and limit_tokens is None and limit_requests is None:
            raise ConfigError(f"{where}: give limit_usd, limit_tokens, limit_requests or several")
        usd = _usd(where, "limit_usd", limit_usd)
        _count(where, "limit_tokens", limit_tokens)
        _count(where, "limit_requests", limit_requests)
        if window is None:
            raise ConfigError(f"{where}: give a window ({', '.join(WINDOWS)}); a budget resets at each window")
        if window not in WINDOWS:
            raise ConfigError(f"{where}: window must be one of {', '.join(WINDOWS)}, got {window!r}")
        if action not in ACTIONS:
            raise ConfigError(f"{where}: action must be one of {', '.join(ACTIONS)}, got {action!r}")
        try:
            thresholds = tuple(sorted({float(t) for t in warn_at}))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: warn_at must be fractions such as (0.5, 0.8), got {warn_at!r}") from None
        if any(not 0 < t <= 1 for t in thresholds):
            raise ConfigError(f"{where}: warn_at fractions must be in (0, 1], got {warn_at!r}")
        if downgrade_to is not None and (not isinstance(downgrade_to, str) or not downgrade_to):
            raise ConfigError(f"{where}: downgrade_to must be a model name, got {downgrade_to!r}")
        if downgrade_at is not None:
            if isinstance(downgrade_at, bool) or not isinstance(downgrade_at, int | float) or not 0 < downgrade_at < 1:
                raise ConfigError(
                    f"{where}: downgrade_at must be a fraction in (0, 1) such as 0.95, got {downgrade_at!r}"
                )
            if action == "warn":
                raise ConfigError(
                    f"{where}: downgrade_at escalates to action 'block' or 'downgrade' at the limit; "
                    "with action='warn' nothing is ever refused"
                )
        if owner is not None and (not isinstance(owner, str) or not owner):
            raise ConfigError(f"{where}: owner must be a non-empty string (a team or on-call name), got {owner!r}")
        self._each = tuple(k for k, v in scope.items() if v == EACH)
        self.overrides = _overrides(where, overrides, self._each, usd, limit_tokens, limit_requests)
        self.name = name
        self.scope: Mapping[str, str] = dict(scope)
        self.limit_usd = usd
        self.limit_tokens = limit_tokens
        self.limit_requests = limit_requests
        self.downgrade_at = None if downgrade_at is None else float(downgrade_at)
        self.owner = owner
        self._limits = (usd, limit_tokens, limit_requests)
        self._derived: dict[tuple[Any, ...], tuple[int | None, int | None, int | None, tuple[Level, ...]]] = {}
        self.window = window
        self.action = action
        self.warn_at = thresholds
        self.downgrade_to = downgrade_to
        self._scope_items = tuple((k, v, bool(_GLOB & set(v))) for k, v in scope.items() if v != EACH)

    def __repr__(self) -> str:
        limits = ", ".join(
            f"{k}={v}"
            for k, v in (
                ("limit_usd", self.limit_usd),
                ("limit_tokens", self.limit_tokens),
                ("limit_requests", self.limit_requests),
            )
            if v is not None
        )
        return (
            f"Budget({self.name!r}, scope={dict(self.scope)!r}, {limits}, window={self.window!r}, "
            f"action={self.action!r})"
        )

    # -- used by the gate ----------------------------------------------------------------------
    @property
    def template(self) -> bool:
        """Whether this budget keeps one bucket per entity (a ``"*"`` scope value)."""
        return bool(self._each)

    def entity(self, values: Mapping[str, str | None]) -> str | None:
        """The bucket this call falls in: ``""`` for a plain budget, the entity id for a template,
        ``None`` when the call is not in scope."""
        for key, want, glob in self._scope_items:
            value = values.get(key)
            if value is None or (value != want and not (glob and fnmatchcase(value, want))):
                return None
        if not self._each:
            return ""
        parts: list[str] = []
        for key in self._each:
            value = values.get(key)
            if not value:
                return None
            parts.append(value)
        return "/".join(parts)

    def matches(self, values: Mapping[str, str | None]) -> bool:
        """Whether a call with these attribution values (team, workflow, tier, env, model, ...) is in scope."""
        return self.entity(values) is not None

    def limits(self, entity: str = "") -> tuple[Decimal | None, int | None, int | None]:
        """``(limit_usd, limit_tokens, limit_requests)`` for ``entity`` (an override, else the budget's)."""
        return self.overrides.get(entity, self._limits) if entity else self._limits

    def lines(
        self, now: float, usd: int, tokens: int, lease_s: float, entity: str = "", fraction: float | None = None
    ) -> list[Line]:
        """This budget's buckets for ``entity`` in the window containing ``now``: the spend bucket (if it
        limits dollars or tokens) and the request-count bucket (if it limits requests), carrying the
        given amounts (one request). ``fraction`` scales the limits (the ``downgrade_at`` check)."""
        start, end = bounds(self.window, now)
        key = self.key(now, entity)
        expires = end + max(lease_s, min(3600.0, end - start))
        enforce = self.action != "warn" or fraction is not None
        limit_usd, limit_tokens, limit_requests, levels = self._derive(self.limits(entity))
        out: list[Line] = []
        if limit_usd is not None or limit_tokens is not None:
            if fraction is not None:
                f = Decimal(str(fraction))
                limit_usd = None if limit_usd is None else _ceil(f * limit_usd)
                limit_tokens = None if limit_tokens is None else _ceil(f * limit_tokens)
            out.append(Line(key, usd, tokens, limit_usd, limit_tokens, expires, enforce, levels))
        if limit_requests is not None:
            if fraction is not None:
                limit_requests = _ceil(Decimal(str(fraction)) * limit_requests)
            out.append(Line(key + REQUESTS, 0, 1, None, limit_requests, expires, enforce))
        return out

    def split_key(self, key: str) -> tuple[str, str]:
        """``(bucket label, entity)`` of a store key: ``("pc[acme]", "acme")``, ``("team-daily", "")``."""
        label = key.removesuffix(REQUESTS)
        label = label[: label.rindex(f":{self.window}:")] if f":{self.window}:" in label else label
        if self._each and label.startswith(f"{self.name}[") and label.endswith("]"):
            return label, label[len(self.name) + 1 : -1]
        return label, ""

    def _derive(
        self, limits: tuple[Decimal | None, int | None, int | None]
    ) -> tuple[int | None, int | None, int | None, tuple[Level, ...]]:
        """Limits in store units and the warn levels, computed once per distinct set of limits."""
        found = self._derived.get(limits)
        if found is None:
            limit_usd = None if limits[0] is None else to_nano(limits[0])
            limit_tokens = limits[1]
            levels: list[Level] = []
            for t in self.warn_at:
                frac = Decimal(str(t))
                levels.append(
                    (
                        None if limit_usd is None else _ceil(frac * limit_usd),
                        None if limit_tokens is None else _ceil(frac * limit_tokens),
                    )
                )
            found = self._derived[limits] = (limit_usd, limit_tokens, limits[2], tuple(levels))
        return found

    def line(self, now: float, usd: int, tokens: int, lease_s: float) -> Line:
        """This (plain) budget's spend bucket for the window containing ``now``, carrying the given amounts."""
        return self.lines(now, usd, tokens, lease_s)[0]

    def key(self, now: float, entity: str = "") -> str:
        """The store key of this budget's bucket (of ``entity``, for a template) for the window containing ``now``."""
        start = bounds(self.window, now)[0]
        return f"{self.name}[{entity}]:{self.window}:{start}" if self._each else f"{self.name}:{self.window}:{start}"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Budget:
        """A budget from a mapping with the constructor's keyword names (as in a TOML/JSON file)."""
        if not isinstance(data, Mapping) or "name" not in data:
            raise ConfigError(f"a budget must be a table with a name, got {data!r}")
        fields = dict(data)
        name = fields.pop("name")
        fields.setdefault("scope", {})
        try:
            return cls(name, **fields)
        except TypeError as exc:
            raise ConfigError(f"Budget {name!r}: {exc}") from None


def _usd(where: str, name: str, value: Any) -> Decimal | None:
    return None if value is None else amount(value, f"{where}: {name}", "USD")


def _count(where: str, name: str, value: Any) -> None:
    if value is not None and (type(value) is not int or value < 0):
        raise ConfigError(f"{where}: {name} must be a whole number >= 0, got {value!r}")


def _overrides(
    where: str,
    overrides: Mapping[str, Any] | None,
    each: tuple[str, ...],
    usd: Decimal | None,
    tokens: int | None,
    requests: int | None,
) -> dict[str, tuple[Decimal | None, int | None, int | None]]:
    """Validated per-entity limits, keyed by the cleaned entity id."""
    if not overrides:
        return {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{where}: overrides must be a mapping such as {{'acme': 50}}, got {overrides!r}")
    if not each:
        raise ConfigError(f"{where}: overrides need a template scope such as {{'customer': '*'}}")
    out: dict[str, tuple[Decimal | None, int | None, int | None]] = {}
    for entity, value in overrides.items():
        if not isinstance(entity, str) or not entity:
            raise ConfigError(f"{where}: override keys must be non-empty entity ids, got {entity!r}")
        key = clean_id(entity)
        if key in out:
            raise ConfigError(f"{where}: overrides {entity!r} and another key name the same entity {key!r}")
        label = f"{where}: overrides[{entity!r}]"
        if isinstance(value, Mapping):
            unknown = set(value) - set(_OVERRIDE_KEYS)
            if unknown or not value:
                raise ConfigError(f"{label} takes {', '.join(_OVERRIDE_KEYS)}; got {dict(value)!r}")
            o_usd = _usd(label, "limit_usd", value.get("limit_usd", usd))
            o_tokens, o_requests = value.get("limit_tokens", tokens), value.get("limit_requests", requests)
            _count(label, "limit_tokens", o_tokens)
            _count(label, "limit_requests", o_requests)
            out[key] = (o_usd, o_tokens, o_requests)
        elif usd is not None:
            out[key] = (_usd(label, "limit", value), tokens, requests)
        elif tokens is not None:
            _count(label, "limit", value)
            out[key] = (usd, value, requests)
        else:
            raise ConfigError(f"{label}: this budget limits only requests; give {{'limit_requests': N}}")
    return out


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class BudgetWarning:
    """Passed to ``configure(on_budget_warning=...)`` when a budget crosses a ``warn_at`` threshold."""

    budget: Budget
    threshold: float
    utilization: float
    window_start: datetime
    window_end: datetime
    spent_usd: Decimal
    spent_tokens: int
    entity: str = ""  # the entity (customer, user...) whose bucket crossed it, for a template budget


def load_budgets(path: str | Path) -> list[Budget]:
    """Budgets from a TOML (``[[budget]]`` tables) or JSON (a list, or ``{"budgets": [...]}``) file."""
    data = read_data_file(path, "budgets file")
    if isinstance(data, Mapping):
        data = data.get("budget", data.get("budgets"))
    if not isinstance(data, list):
        raise ConfigError(f"budgets file {str(path)!r}: expected [[budget]] tables or a list of budgets")
    return [Budget.from_mapping(item) for item in data]
