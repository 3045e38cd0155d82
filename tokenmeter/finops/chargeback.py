"""Chargeback / showback: a markup or discount per cost center turns the metered cost into a charge.

A definition names one **cost center** dimension the ledger keeps (``customer`` by default; or ``team``,
``workflow``, ``agent``, ``env``), a ``default`` rate and per-entity ``rates``::

    # chargeback.toml  ->  tokenmeter report --by customer --chargeback chargeback.toml
    cost_center = "customer"
    default = "+15%"            # every customer without a rule of its own (and usage without a customer)
    [rates]
    acme = "+25%"               # a markup
    globex = "-10%"             # a discount
    "initech-*" = "x1.05"       # a factor; a trailing * matches every id with that prefix

The charge of a row is ``cost x (1 + rate)`` in exact decimals; the raw cost is never changed, and unpriced
tokens have no charge (unknown, never $0). One dimension per definition, and at most one rule per entity, so
every row's rate is unambiguous: rules that could both match an entity are refused.

Bad definitions (an unknown key, a rate that is not ``+N%`` / ``-N%`` / ``xF``, a discount beyond -100 %,
overlapping rules) raise :class:`~tokenmeter.ConfigError` naming the option and the fix, once, when the
definition is built or loaded.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .._errors import ConfigError

COST_CENTERS = ("customer", "team", "workflow", "agent", "env")
ENV_VAR = "TOKENMETER_CHARGEBACK"
_KEYS = ("cost_center", "default", "rates")
_PERCENT = re.compile(r"^\s*([+-]?)\s*(\d+(?:\.\d+)?)\s*%\s*$")
_FACTOR = re.compile(r"^\s*[x*]\s*(\d+(?:\.\d+)?)\s*$")
_FIX = "write a markup as '+15%', a discount as '-10%' or a factor as 'x1.15'"
_HUNDRED = Decimal(100)
_ONE = Decimal(1)


def parse_rate(value: Any, option: str) -> Decimal:
    """``"+15%"`` -> ``0.15``, ``"-10%"`` -> ``-0.10``, ``"x1.15"`` -> ``0.15``; :class:`ConfigError` otherwise."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        raise ConfigError(f"{option} = {value!r}: a bare number is ambiguous (rate or factor?); {_FIX}")
    if not isinstance(value, str):
        raise ConfigError(f"{option} = {value!r} is not a rate; {_FIX}")
    m = _PERCENT.match(value)
    try:
        if m:
            rate = Decimal(m.group(2)) / _HUNDRED * (-1 if m.group(1) == "-" else 1)
        elif f := _FACTOR.match(value):
            rate = Decimal(f.group(1)) - _ONE
        else:
            raise ConfigError(f"{option} = {value!r} is not a rate; {_FIX}")
    except InvalidOperation:
        raise ConfigError(f"{option} = {value!r} is not a rate; {_FIX}") from None
    if rate < -_ONE:
        raise ConfigError(
            f"{option} = {value!r} is a discount beyond -100 % (a negative charge); use a rate from -100% up"
        )
    return rate


def format_rate(rate: Decimal) -> str:
    """``0.15`` -> ``"+15%"``, ``-0.1`` -> ``"-10%"``."""
    pct = (rate * _HUNDRED).normalize()
    text = f"{pct:f}"
    return ("+" if rate >= 0 else "") + text + "%"


@dataclass(frozen=True, slots=True)
class Rule:
    """One per-entity rate: ``pattern`` is an id, or a prefix followed by ``*``."""

    pattern: str
    rate: Decimal

    @property
    def prefix(self) -> str | None:
        """The prefix of a ``prefix*`` rule, ``None`` for an exact id."""
        return self.pattern[:-1] if self.pattern.endswith("*") else None


class Chargeback:
    """A chargeback definition: ``cost_center`` dimension, ``default`` rate and per-entity ``rates``.

    ``Chargeback(default="+15%", rates={"acme": "+25%", "globex": "-10%"})``; rates are strings (``"+15%"``,
    ``"-10%"``, ``"x1.15"``). ``source`` names where the definition came from in error messages.
    """

    __slots__ = ("_exact", "_prefixes", "cost_center", "default", "rules", "source")

    def __init__(
        self,
        rates: Mapping[str, str] | None = None,
        *,
        default: str = "+0%",
        cost_center: str = "customer",
        source: str = "Chargeback",
    ) -> None:
        self.source = source
        if cost_center not in COST_CENTERS:
            raise ConfigError(
                f"{source}: cost_center = {cost_center!r} is not a dimension the ledger keeps per row; "
                f"use one of {', '.join(COST_CENTERS)}"
            )
        self.cost_center = cost_center
        self.default = parse_rate(default, f"{source}: default")
        if rates is not None and not isinstance(rates, Mapping):
            raise ConfigError(f'{source}: rates must be a table of id = rate, e.g. acme = "+25%"')
        rules: list[Rule] = []
        for key, value in (rates or {}).items():
            if not isinstance(key, str):
                raise ConfigError(f"{source}: rates key {key!r} must be a string id")
            option = f"{source}: rates.{key!r}" if not key.isidentifier() else f"{source}: rates.{key}"
            if "*" in key[:-1] or key == "*":
                raise ConfigError(
                    f"{option}: '*' is only allowed at the end of an id (a prefix such as 'acme-*'); "
                    "for everyone else use default"
                )
            rules.append(Rule(key, parse_rate(value, option)))
        _check_overlaps(rules, source)
        self.rules = tuple(rules)
        self._exact = {r.pattern: r.rate for r in rules if r.prefix is None}
        self._prefixes = tuple((r.prefix, r.rate) for r in rules if r.prefix is not None)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, option: str = "--chargeback") -> Chargeback:
        """Read a TOML definition (see the module docstring); :class:`ConfigError` names the problem."""
        where = f"{option} {os.fspath(path)}"
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(
                f"{where}: cannot read it ({exc.strerror or exc}); give the path of a TOML file"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: not valid TOML ({exc}); fix the file (docs: README 'Chargeback')") from None
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key {', '.join(unknown)}; the keys are {', '.join(_KEYS)}")
        return cls(
            data.get("rates"),
            default=data.get("default", "+0%"),
            cost_center=data.get("cost_center", "customer"),
            source=where,
        )

    @classmethod
    def from_option(cls, value: str | None, environ: Mapping[str, str] | None = None) -> Chargeback | None:
        """The definition of ``--chargeback FILE``, else of ``$TOKENMETER_CHARGEBACK``; ``None`` when neither
        is set or the value is ``none`` / ``off``."""
        if value is not None:
            option = "--chargeback"
        else:
            value, option = (os.environ if environ is None else environ).get(ENV_VAR), ENV_VAR
        if value is None or value.strip().lower() in ("", "none", "off"):
            return None
        return cls.load(value, option=option)

    def check_reader(self, reader: Any) -> None:
        """:class:`ConfigError` when ``reader`` never fills the cost-center dimension (its ``missing_dimensions``):
        every row would silently take the default rate."""
        if self.cost_center in getattr(reader, "missing_dimensions", ()):
            raise ConfigError(
                f"{self.source}: cost_center = {self.cost_center!r} needs a source that keeps it, and "
                f"{reader.describe()} has no per-{self.cost_center} series ({self.cost_center} ids are never metric "
                "labels): read the ledger (--source sqlite:///path) or charge by team, workflow, agent or env"
            )

    def rate(self, entity: str) -> Decimal:
        """The rate of ``entity`` (a value of the cost-center dimension; ``""``: usage without one)."""
        found = self._exact.get(entity)
        if found is not None:
            return found
        for prefix, rate in self._prefixes:
            if entity.startswith(prefix):
                return rate
        return self.default

    def factor(self, entity: str) -> Decimal:
        """``1 + rate(entity)``: what the cost is multiplied by."""
        return _ONE + self.rate(entity)

    def charge(self, cost: Decimal | None, entity: str) -> Decimal | None:
        """``cost x (1 + rate)``; ``None`` (unpriced) stays ``None``."""
        return None if cost is None else cost * self.factor(entity)

    def describe(self) -> str:
        """One line: the dimension, the default and how many rules."""
        n = len(self.rules)
        extra = f", {n} rule{'s' if n != 1 else ''}" if n else ""
        return f"by {self.cost_center}, default {format_rate(self.default)}{extra}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: rates as decimal strings (``"0.15"``) and as written (``"+15%"``)."""
        return {
            "cost_center": self.cost_center,
            "default": str(self.default),
            "rates": {r.pattern: str(r.rate) for r in self.rules},
            "source": self.source,
        }

    def __repr__(self) -> str:
        rates = {r.pattern: format_rate(r.rate) for r in self.rules}
        return f"Chargeback({rates!r}, default={format_rate(self.default)!r}, cost_center={self.cost_center!r})"


def _check_overlaps(rules: list[Rule], source: str) -> None:
    for i, a in enumerate(rules):
        for b in rules[i + 1 :]:
            pa, pb = a.prefix, b.prefix
            if pa is None and pb is None:
                continue  # two distinct ids (a mapping cannot hold one twice)
            overlap = (
                (pa is not None and pb is not None and (pa.startswith(pb) or pb.startswith(pa)))
                or (pa is not None and pb is None and b.pattern.startswith(pa))
                or (pb is not None and pa is None and a.pattern.startswith(pb))
            )
            if overlap:
                raise ConfigError(
                    f"{source}: rates {a.pattern!r} and {b.pattern!r} overlap (an id could match both); "
                    "give each id one rule: remove one, or narrow the prefix"
                )


def cli_help() -> str:
    """The help text of ``--chargeback`` (shared by ``tokenmeter report`` and ``tokenmeter export focus``)."""
    return (
        "a chargeback definition (TOML: cost_center, default, [rates]): show a charge = cost x (1 + rate) "
        f"beside the raw cost (default: ${ENV_VAR}; 'none' turns it off)"
    )


__all__ = ["COST_CENTERS", "ENV_VAR", "Chargeback", "Rule", "cli_help", "format_rate", "parse_rate"]
