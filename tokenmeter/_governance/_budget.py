"""``Budget``: a spending limit (dollars and/or tokens) for the calls of a scope, per window."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ._stores import Line, to_nano
from ._stores._base import Level
from ._windows import WINDOWS, bounds

SCOPE_KEYS: tuple[str, ...] = ("team", "workflow", "tier", "env")
ACTIONS: tuple[str, ...] = ("block", "warn", "downgrade")


class Budget:
    """A limit on what the LLM calls of a scope may spend per window, enforced before each call.

    ``scope`` selects the calls: a mapping over ``team``, ``workflow``, ``tier`` (the called model's
    tier) and ``env``; ``{}`` matches every call. All matching calls share one bucket per window.
    ``limit_usd`` and/or ``limit_tokens`` (at least one) cap the window's spend. ``window`` is
    ``"1h"``, ``"1d"``, ``"7d"`` (ISO week), ``"30d"`` or ``"month"`` (calendar month), all UTC.

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
    """

    __slots__ = (
        "_scope_items",
        "action",
        "downgrade_to",
        "limit_tokens",
        "limit_usd",
        "name",
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
        window: str,
        action: str = "block",
        warn_at: Iterable[float] = (0.5, 0.8),
        downgrade_to: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"Budget name must be a non-empty string, got {name!r}")
        where = f"Budget {name!r}"
        if not isinstance(scope, Mapping):
            raise ConfigError(f"{where}: scope must be a mapping such as {{'team': 'payments'}}, got {scope!r}")
        for key, value in scope.items():
            if key not in SCOPE_KEYS:
                raise ConfigError(f"{where}: scope keys are {', '.join(SCOPE_KEYS)}; got {key!r}")
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: scope[{key!r}] must be a non-empty string, got {value!r}")
        if limit_usd is None and limit_tokens is None:
            raise ConfigError(f"{where}: give limit_usd, limit_tokens or both")
        usd: Decimal | None = None
        if limit_usd is not None:
            try:
                usd = Decimal(str(limit_usd))
            except (InvalidOperation, ValueError):
                usd = None
            if isinstance(limit_usd, bool) or usd is None or not usd.is_finite() or usd < 0:
                raise ConfigError(f"{where}: limit_usd must be a number >= 0, got {limit_usd!r}")
        if limit_tokens is not None and (type(limit_tokens) is not int or limit_tokens < 0):
            raise ConfigError(f"{where}: limit_tokens must be a whole number >= 0, got {limit_tokens!r}")
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
        self.name = name
        self.scope: Mapping[str, str] = dict(scope)
        self.limit_usd = usd
        self.limit_tokens = limit_tokens
        self.window = window
        self.action = action
        self.warn_at = thresholds
        self.downgrade_to = downgrade_to
        self._scope_items = tuple(scope.items())

    def __repr__(self) -> str:
        limits = ", ".join(
            f"{k}={v}" for k, v in (("limit_usd", self.limit_usd), ("limit_tokens", self.limit_tokens)) if v is not None
        )
        return (f"Budget({self.name!r}, scope={dict(self.scope)!r}, {limits}, window={self.window!r}, "
                f"action={self.action!r})")

    # -- used by the gate ----------------------------------------------------------------------
    def matches(self, values: Mapping[str, str | None]) -> bool:
        """Whether a call with these team / workflow / tier / env values is in this budget's scope."""
        return all(values.get(k) == v for k, v in self._scope_items)

    def line(self, now: float, usd: int, tokens: int, lease_s: float) -> Line:
        """This budget's bucket for the window containing ``now``, carrying the given amounts."""
        end = bounds(self.window, now)[1]
        limit_usd = None if self.limit_usd is None else to_nano(self.limit_usd)
        levels: list[Level] = []
        for t in self.warn_at:
            frac = Decimal(str(t))
            levels.append((
                None if limit_usd is None else _ceil(frac * limit_usd),
                None if self.limit_tokens is None else _ceil(frac * self.limit_tokens),
            ))
        return Line(self.key(now), usd, tokens, limit_usd, self.limit_tokens, end + max(lease_s, 3600.0),
                    self.action != "warn", tuple(levels))

    def key(self, now: float) -> str:
        """The store key of this budget's bucket for the window containing ``now``."""
        return f"{self.name}:{self.window}:{bounds(self.window, now)[0]}"

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


def load_budgets(path: str | Path) -> list[Budget]:
    """Budgets from a TOML (``[[budget]]`` tables) or JSON (a list, or ``{"budgets": [...]}``) file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read budgets file {p}: {exc}") from exc
    try:
        if p.suffix.lower() == ".toml":
            import tomllib
            data: Any = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"budgets file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
    if isinstance(data, Mapping):
        data = data.get("budget", data.get("budgets"))
    if not isinstance(data, list):
        raise ConfigError(f"budgets file {p}: expected [[budget]] tables or a list of budgets")
    return [Budget.from_mapping(item) for item in data]
