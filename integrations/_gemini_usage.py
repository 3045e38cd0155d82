"""Gemini ``usage_metadata`` beyond the five counts: omitted zero counts, modalities, the served tier.

* Gemini omits a count that is zero (``candidatesTokenCount`` is absent when a call with built-in tools
  produced only thoughts), but ``totalTokenCount`` is documented as prompt + candidates + tool-use prompt
  + thoughts. An absent count is derived from the total minus the reported parts: exact when the
  remainder is zero (every absent count was zero) or when only one count is absent. Only a remainder
  that several absent counts could share is split by a local estimate (flagged).
* ``*_tokens_details`` list tokens by modality (``TEXT``, ``AUDIO``, ``IMAGE``, ``VIDEO``): audio, image
  and video parts of the prompt, the cache and the candidates pay their own rates.
* The tier that served the call (``flex``, ``priority`` or ``standard``) is in the
  ``x-gemini-service-tier`` response header (a request above its priority limit is served at standard).
* Grounding with Google Search is billed per grounded prompt on Gemini 2.x models and per search query
  the model ran on Gemini 3 and later (ai.google.dev/gemini-api/docs/pricing): a candidate's
  ``grounding_metadata.web_search_queries`` says both, and is counted as the ``web_search`` unit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tokenmeter._usage import Usage, with_details

from ._fields import count

_PARTS = ("prompt", "candidates", "thoughts", "tool_use")


def _field(obj: Any, snake: str, camel: str) -> Any:
    if isinstance(obj, Mapping):
        value = obj.get(snake)
        return obj.get(camel) if value is None else value
    return getattr(obj, snake, None)


def derive_missing(counts: Any, estimate_candidates: Callable[[], int] | None = None) -> tuple[Any, bool] | None:
    """``(counts, exact)`` with absent counts derived from ``total``; ``None`` when the total cannot help.

    ``counts`` is a :class:`~tokenmeter.integrations.gemini.Counts` with a ``total``.
    """
    total = counts.total
    if total is None:
        return None
    missing = [name for name in _PARTS if getattr(counts, name) is None]
    if not missing:
        return None
    remainder = total - sum(getattr(counts, name) or 0 for name in _PARTS)
    if remainder < 0:
        return None  # inconsistent report: leave it to the local estimate
    if remainder == 0:
        return counts._replace(**dict.fromkeys(missing, 0)), True
    if len(missing) == 1:
        return counts._replace(**{missing[0]: remainder}), True
    if "prompt" in missing:
        return None
    # Several absent output-side counts share the remainder: the reply text's estimate goes to the
    # candidates, the rest to the first other absent count (thoughts before tool use).
    guess = min(estimate_candidates() if estimate_candidates is not None else remainder, remainder)
    filled = dict.fromkeys(missing, 0)
    if "candidates" in missing:
        filled["candidates"] = guess
        rest = remainder - guess
    else:
        rest = remainder
    others = [name for name in missing if name != "candidates"]
    if others:
        filled[others[0]] = rest
    else:
        filled["candidates"] = remainder
    return counts._replace(**filled), False


def _by_modality(details: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for item in details or ():
        modality = _field(item, "modality", "modality")
        name = str(getattr(modality, "value", modality) or "").upper()
        n = count(_field(item, "token_count", "tokenCount"))
        if name and n:
            found[name] = found.get(name, 0) + n
    return found


def with_modalities(usage: Usage, meta: Any) -> Usage:
    """``usage`` with the audio / image / video parts ``meta``'s token details report."""
    if meta is None:
        return usage
    prompt = _by_modality(_field(meta, "prompt_tokens_details", "promptTokensDetails"))
    cache = _by_modality(_field(meta, "cache_tokens_details", "cacheTokensDetails"))
    candidates = _by_modality(_field(meta, "candidates_tokens_details", "candidatesTokensDetails"))
    if not (set(prompt) | set(cache) | set(candidates)) - {"TEXT"}:
        return usage
    return with_details(
        usage,
        input_audio=prompt.get("AUDIO", 0) - cache.get("AUDIO", 0),
        input_image=prompt.get("IMAGE", 0) - cache.get("IMAGE", 0),
        input_video=prompt.get("VIDEO", 0) - cache.get("VIDEO", 0),
        cache_read_audio=cache.get("AUDIO", 0),
        cache_read_image=cache.get("IMAGE", 0),
        output_audio=candidates.get("AUDIO", 0),
        output_image=candidates.get("IMAGE", 0),
    )


def served_tier(response: Any) -> str | None:
    """The tier that served a response: its ``x-gemini-service-tier`` header (or a ``service_tier`` field)."""
    meta = getattr(response, "usage_metadata", None)
    tier = getattr(meta, "service_tier", None)
    if tier is None:
        headers = getattr(getattr(response, "sdk_http_response", None), "headers", None)
        if isinstance(headers, Mapping):
            tier = next((v for k, v in headers.items() if str(k).lower() == "x-gemini-service-tier"), None)
    tier = getattr(tier, "value", tier)
    if isinstance(tier, str) and tier and len(tier) <= 32:
        tier = tier.lower().removeprefix("service_tier_")
        return None if tier == "unspecified" else tier
    return None


_MAJOR = re.compile(r"gemini-(\d+)")


def search_queries(response: Any) -> dict[int, int]:
    """Google Search queries each candidate of a response (or stream chunk) ran: index -> count."""
    found: dict[int, int] = {}
    for i, candidate in enumerate(getattr(response, "candidates", None) or ()):
        queries = getattr(getattr(candidate, "grounding_metadata", None), "web_search_queries", None)
        if isinstance(queries, (list, tuple)):
            found[i] = sum(1 for q in queries if isinstance(q, str) and q)
    return found


def web_search_units(queries: Mapping[int, int], model: str) -> int:
    """The billed ``web_search`` units of a call: its queries (Gemini 3+), or 1 per grounded prompt (2.x)."""
    total = sum(queries.values())
    if not total:
        return 0
    match = _MAJOR.match(model)
    if match is not None and int(match.group(1)) < 3:
        return 1
    return total
