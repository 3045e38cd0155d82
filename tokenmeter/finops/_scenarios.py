"""Price x demand scenarios from a measured baseline: ``price=-90% demand=10x tier-shift=frontier->small:30%``.

The baseline is the measured usage of a period, per workflow: tokens and priced cost by (tier, token class).
A scenario applies, in this order and in exact decimals:

1. ``tier-shift=A->B:F`` (repeatable): the fraction ``F`` of tier ``A``'s priced tokens of each token class moves
   to tier ``B`` at ``B``'s measured unit cost for that class (the same workflow's, else the whole baseline's);
   ``A``'s remaining cost scales by ``1 - F``. A shift to a tier with no measured unit cost is an error.
2. ``price=P%``: every unit cost changes by ``P`` percent (``-90%`` multiplies cost by 0.1).
3. ``demand=Nx``: every token class's volume is multiplied by ``N``.

Spend effect of the ratio ``scenario / baseline``: below 0.95 "down", up to 1.05 "flat", up to 1.5 "up",
above it "up materially" (the seeds' table: -90 % price at 1x / 10x / 30x demand is down / flat / up materially).
Unpriced tokens stay unpriced: they are counted and reported, never priced at $0.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from ._rows import UsageRow

Cell = tuple[str, str]  # (tier, token class)


class ScenarioError(ValueError):
    """An invalid ``--scenario`` term or one the baseline cannot price."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """Multipliers of one scenario (``price`` and ``demand``) and its tier shifts ``(from, to, fraction)``."""

    label: str
    price: Decimal = Decimal(1)
    demand: Decimal = Decimal(1)
    shifts: tuple[tuple[str, str, Decimal], ...] = ()


_PRICE = re.compile(r"^([+-]?\d+(?:\.\d+)?)%$")
_DEMAND = re.compile(r"^(\d+(?:\.\d+)?)x$")
_SHIFT = re.compile(r"^([\w.-]+)->([\w.-]+):(\d+(?:\.\d+)?)%$")
_HELP = "expected terms like price=-90% demand=10x tier-shift=frontier->small:30%"


def parse_scenario(terms: Sequence[str]) -> Scenario:
    """A :class:`Scenario` from ``--scenario`` terms; raises :class:`ScenarioError` naming the bad term."""
    price, demand, shifts = Decimal(1), Decimal(1), []
    words = [w for term in terms for w in term.split()]
    if not words:
        raise ScenarioError(f"empty --scenario; {_HELP}")
    for word in words:
        name, sep, value = word.partition("=")
        try:
            if not sep:
                raise ScenarioError(f"--scenario term {word!r} has no '='; {_HELP}")
            if name == "price" and (m := _PRICE.match(value)):
                price = 1 + Decimal(m.group(1)) / 100
                if price < 0:
                    raise ScenarioError(f"--scenario {word!r}: a price cannot fall by more than 100%")
            elif name == "demand" and (m := _DEMAND.match(value)):
                demand = Decimal(m.group(1))
            elif name == "tier-shift" and (m := _SHIFT.match(value)):
                fraction = Decimal(m.group(3)) / 100
                if fraction > 1 or m.group(1) == m.group(2):
                    raise ScenarioError(f"--scenario {word!r}: shift at most 100% to a different tier")
                shifts.append((m.group(1), m.group(2), fraction))
            else:
                raise ScenarioError(f"--scenario term {word!r} is not understood; {_HELP}")
        except InvalidOperation:
            raise ScenarioError(f"--scenario term {word!r} is not a number; {_HELP}") from None
    return Scenario(" ".join(words), price, demand, tuple(shifts))


@dataclass
class Baseline:
    """Measured tokens and priced cost of one workflow by (tier, token class)."""

    tokens: dict[Cell, int] = field(default_factory=lambda: defaultdict(int))
    priced_tokens: dict[Cell, int] = field(default_factory=lambda: defaultdict(int))
    cost: dict[Cell, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    @property
    def total_cost(self) -> Decimal:
        """Priced cost of every cell."""
        return sum(self.cost.values(), Decimal(0))

    @property
    def total_tokens(self) -> int:
        """Tokens of every cell, priced or not."""
        return sum(self.tokens.values())

    @property
    def unpriced_tokens(self) -> int:
        """Tokens without a price."""
        return self.total_tokens - sum(self.priced_tokens.values())


def baselines(rows: Iterable[UsageRow]) -> dict[str, Baseline]:
    """One :class:`Baseline` per workflow."""
    out: dict[str, Baseline] = defaultdict(Baseline)
    for row in rows:
        b, cell = out[row.workflow], (row.tier, row.token_class)
        b.tokens[cell] += row.tokens
        if row.cost_usd is not None:
            b.priced_tokens[cell] += row.tokens - row.unpriced_tokens
            b.cost[cell] += row.cost_usd
    return dict(out)


@dataclass(frozen=True, slots=True)
class ScenarioRow:
    """One workflow (or ``*`` for the total) under one scenario."""

    scenario: str
    workflow: str
    baseline_tokens: int
    baseline_cost: Decimal
    tokens: Decimal
    cost: Decimal
    unpriced_tokens: int

    @property
    def ratio(self) -> Decimal | None:
        """Scenario spend over baseline spend (``None`` when the baseline cost nothing priced)."""
        return self.cost / self.baseline_cost if self.baseline_cost else None

    @property
    def effect(self) -> str:
        """down / flat / up / up materially (see the module docstring)."""
        r = self.ratio
        if r is None:
            return "n/a (no priced baseline)"
        if r < Decimal("0.95"):
            return "down"
        if r <= Decimal("1.05"):
            return "flat"
        return "up" if r <= Decimal("1.5") else "up materially"


def _unit(b: Baseline, fleet: Baseline, cell: Cell) -> Decimal | None:
    for source in (b, fleet):
        if source.priced_tokens.get(cell):
            return source.cost[cell] / source.priced_tokens[cell]
    return None


def _apply(s: Scenario, workflow: str, b: Baseline, fleet: Baseline) -> ScenarioRow:
    cost = dict(b.cost)
    priced = {cell: Decimal(n) for cell, n in b.priced_tokens.items()}
    for src, dst, fraction in s.shifts:
        for (tier, klass), n in list(priced.items()):
            if tier != src or not n:
                continue
            unit = _unit(b, fleet, (dst, klass))
            if unit is None:
                raise ScenarioError(
                    f"--scenario {s.label!r}: no measured unit cost for tier {dst!r} token class "
                    f"{klass!r} in the baseline, so tokens cannot be shifted to it"
                )
            moved = n * fraction
            priced[(tier, klass)] = n - moved
            priced[(dst, klass)] = priced.get((dst, klass), Decimal(0)) + moved
            cost[(tier, klass)] = cost[(tier, klass)] * (1 - fraction)
            cost[(dst, klass)] = cost.get((dst, klass), Decimal(0)) + moved * unit
    total = sum(cost.values(), Decimal(0)) * s.price * s.demand
    return ScenarioRow(
        s.label, workflow, b.total_tokens, b.total_cost, b.total_tokens * s.demand, total, b.unpriced_tokens
    )


def apply_scenarios(scenarios: Sequence[Scenario], base: dict[str, Baseline]) -> list[ScenarioRow]:
    """Every scenario applied to every workflow's baseline, each scenario followed by its total row ``*``."""
    fleet = Baseline()
    for b in base.values():
        for cell in b.tokens:
            fleet.tokens[cell] += b.tokens[cell]
            fleet.priced_tokens[cell] += b.priced_tokens.get(cell, 0)
            fleet.cost[cell] += b.cost.get(cell, Decimal(0))
    out: list[ScenarioRow] = []
    for s in scenarios:
        rows = [_apply(s, wf, b, fleet) for wf, b in sorted(base.items())]
        out.extend(rows)
        out.append(
            ScenarioRow(
                s.label,
                "*",
                sum(r.baseline_tokens for r in rows),
                sum((r.baseline_cost for r in rows), Decimal(0)),
                sum((r.tokens for r in rows), Decimal(0)),
                sum((r.cost for r in rows), Decimal(0)),
                sum(r.unpriced_tokens for r in rows),
            )
        )
    return out
