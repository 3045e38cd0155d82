"""Model tiers: explicit globs first, else derived from the input price (documented thresholds)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from decimal import Decimal

from . import _safe

# Default tier thresholds on the input price in USD per million tokens:
#   price < 0.50            -> "small"     (gpt-4o-mini, claude-haiku, nova-lite, gemini-flash)
#   0.50 <= price < 5.00    -> "standard"  (gpt-4o, claude-sonnet, gemini-pro, o3)
#   price >= 5.00           -> "frontier"  (claude-opus, o1, gpt-4.5)
# Models with no price and no glob are "unknown" (or the tier declared by the enclosing scope).
SMALL_BELOW = Decimal("0.50")
FRONTIER_FROM = Decimal("5.00")
UNKNOWN = "unknown"


class TierResolver:
    """Maps a model to its tier; results are cached per (provider, model)."""

    def __init__(self, globs: Mapping[str, str] | None, price_of: Callable[[str, str], Decimal | None]) -> None:
        self._globs = list((globs or {}).items())
        self._price_of = price_of
        self._cache: dict[tuple[str, str], str] = {}

    def tier(self, provider: str, model: str) -> str:
        """The tier of ``model`` (``"unknown"`` when neither a glob nor a price says)."""
        key = (provider, model)
        found = self._cache.get(key)
        if found is None:
            found = self._resolve(provider, model)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = found
        return found

    def _resolve(self, provider: str, model: str) -> str:
        for pattern, tier in self._globs:
            if fnmatch.fnmatchcase(model, pattern):
                return tier
        try:
            price = self._price_of(provider, model)
        except Exception:
            _safe.log_once("tier.price", "tokenmeter: looking up a price for the model tier failed")
            return UNKNOWN
        if price is None:
            return UNKNOWN
        if price < SMALL_BELOW:
            return "small"
        if price < FRONTIER_FROM:
            return "standard"
        return "frontier"
