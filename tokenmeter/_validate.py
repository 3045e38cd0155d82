"""Small checks shared by the options parsed at ``configure()`` (prices, budgets)."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

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


def read_data_file(path: str | Path, what: str, option: str = "") -> Any:
    """The data of a TOML (by its ``.toml`` suffix) or JSON file, else a :class:`ConfigError`.

    ``what`` names the file in the messages, after the ``option`` it was given to (``"budgets file"``;
    ``"price file"``, ``"prices"``): "[option: ]cannot read <what> <path>: <why>" or "[option: ]<what> <path>
    is not valid TOML/JSON: <why>".
    """
    lead = f"{option}: " if option else ""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{lead}cannot read {what} {str(p)!r}: {exc}") from exc
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

            return tomllib.loads(text)
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"{lead}{what} {str(p)!r} is not valid {p.suffix.lstrip('.').upper() or 'JSON'}: {exc}"
        ) from exc
