"""Small checks shared by the options parsed at ``configure()`` (prices, budgets)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ._errors import ConfigError


def amount(value: object, where: str, unit: str = "") -> Decimal:
    """``value`` as a finite ``Decimal >= 0``, else a :class:`ConfigError` naming ``where`` (and ``unit``).

    Accepts what ``Decimal(str(value))`` reads (ints, floats, numeric strings, Decimals); refuses bools,
    NaN, infinities and negative numbers.
    """
    try:
        result: Decimal | None = None if isinstance(value, bool) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        result = None
    if result is None or not result.is_finite() or result < 0:
        hint = f" ({unit})" if unit else ""
        raise ConfigError(f"{where} must be a finite number >= 0{hint}, got {value!r}")
    return result
