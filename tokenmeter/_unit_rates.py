"""Rates of per-request units (web searches, cache storage): genai-prices' table first, then our own small table.

genai-prices prices a few units per model (``web_searches_kcount``, ``storage_searches_kcount``,
``code_executions_kcount``, ``requests_kcount``: USD per 1,000). What it does not know, and a provider
publishes, is listed below with the page and the day it was read; nothing here is estimated. A unit with
neither is *unpriced*: it is counted, its cost is left out of the call's cost and named on the span
(``tokenmeter.cost.unpriced_units``), never priced at $0.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from decimal import Decimal

# Unit -> genai-prices price key (USD per 1,000 units).
TABLE_KEYS: dict[str, str] = {
    "web_search": "web_searches_kcount",
    "file_search": "storage_searches_kcount",
    "code_execution": "code_executions_kcount",
}
REQUEST_KEY = "requests_kcount"
"""genai-prices' per-request fee (USD per 1,000 calls, e.g. Perplexity's Sonar request fee)."""


@dataclass(frozen=True, slots=True)
class PublishedRate:
    """One published rate: USD per priced quantity of the unit (see ``tokenmeter._usage.UNITS``)."""

    model_glob: str
    usd: Decimal
    source: str  # the page that publishes the rate
    read_on: str  # the day it was read (ISO)


_GEMINI_PRICING = "https://ai.google.dev/gemini-api/docs/pricing"
_ANTHROPIC_WEB_FETCH = "https://docs.claude.com/en/docs/agents-and-tools/tool-use/web-fetch-tool"

# (genai-prices provider id, unit) -> rates, first matching glob wins.
PUBLISHED: dict[tuple[str, str], tuple[PublishedRate, ...]] = {
    # Context caching storage, USD per 1,000,000 tokens per hour ("storage price"), Gemini Developer API.
    # Each figure re-checked on 2026-12-03 against the "Context caching price" row of the pricing page
    # (_GEMINI_PRICING) as recorded in public copies, since that page is not reachable from the build:
    # - 2.5 Pro $4.50 and 2.5 Flash-Lite $1.00: the page's own markup as fetched 2026-09-20 (an excerpt kept
    #   by a public price-table audit's tests);
    # - 2.5 Flash $1.00 ("$0.03 (text / image / video) $0.1 (audio) $1.00 / 1,000,000 tokens per hour
    #   (storage price)", quoted from the page) and 2.0 Flash $1.00 (a transcription of the page);
    # - 3 Pro Preview $4.50 (a January 2026 transcription of the page; its successor 3.1 Pro Preview shows
    #   the same $4.50 on the page itself).
    # None was wrong. 2.0 Flash is deprecated and 3 Pro Preview superseded: kept to price back-filled calls.
    # 2.0 Flash-Lite is absent on purpose: explicit caching is not offered for it (its storage stays unpriced).
    ("google", "cache_storage"): (
        # Exact ids (a glob would also catch -image / -lite siblings, which are priced apart).
        PublishedRate("gemini-2.5-pro", Decimal("4.50"), _GEMINI_PRICING, "2026-12-03"),
        PublishedRate("gemini-2.5-flash", Decimal("1.00"), _GEMINI_PRICING, "2026-12-03"),
        PublishedRate("gemini-2.5-flash-lite", Decimal("1.00"), _GEMINI_PRICING, "2026-12-03"),
        PublishedRate("gemini-2.0-flash", Decimal("1.00"), _GEMINI_PRICING, "2026-12-03"),
        PublishedRate("gemini-2.0-flash-001", Decimal("1.00"), _GEMINI_PRICING, "2026-12-03"),
        PublishedRate("gemini-3-pro-preview", Decimal("4.50"), _GEMINI_PRICING, "2026-12-03"),
    ),
    # "Web fetch is available at no additional cost": only the fetched content's tokens are billed.
    ("anthropic", "web_fetch"): (PublishedRate("*", Decimal(0), _ANTHROPIC_WEB_FETCH, "2026-12-03"),),
}


def published_rate(provider_id: str, unit: str, model: str) -> PublishedRate | None:
    """The published rate of ``unit`` for ``model`` at ``provider_id`` from our own table, if listed."""
    for rate in PUBLISHED.get((provider_id, unit), ()):
        if fnmatch.fnmatchcase(model, rate.model_glob):
            return rate
    return None
