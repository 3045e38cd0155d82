"""OpenAI usage objects -> :class:`Usage`, and local estimates for whatever the provider did not report.

OpenAI's counts overlap: ``prompt_tokens`` / ``input_tokens`` INCLUDE cached (and, on some compatible
servers, cache-write) tokens, and ``completion_tokens`` / ``output_tokens`` INCLUDE reasoning tokens.
They are split back into tokenmeter's disjoint classes here. Usage may be a pydantic model or a plain
dict (raw responses, compatible servers); a malformed count (negative, string, null) is treated as
missing, never raised on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from tokenmeter import Request, Usage, count_tokens
from tokenmeter._usage import add_classes, with_details, with_service_tier, with_units

from ._fields import count, field


@dataclass
class OpenAIRequest(Request):
    """A :class:`Request` plus what the OpenAI endpoints decide before sending it."""

    inject_usage: bool = False  # add stream_options.include_usage, then hide the usage-only chunk it adds
    raw: str | None = None  # "true" for with_raw_response, "stream" for with_streaming_response
    estimate_input: Any = None  # what to count locally when the provider reports no prompt tokens


@dataclass(frozen=True, slots=True)
class Reported:
    """A provider usage record read half by half: ``None`` where the provider gave no valid count."""

    prompt: Usage | None
    completion: Usage | None


_CHAT_KEYS = ("prompt_tokens", "prompt_tokens_details", "completion_tokens", "completion_tokens_details")
_RESPONSES_KEYS = ("input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details")


def read(usage: Any, keys: tuple[str, str, str, str] = _CHAT_KEYS) -> Reported | None:
    """Split an OpenAI usage record into disjoint classes; None when there is no usage at all."""
    if usage is None:
        return None
    prompt_key, prompt_details_key, completion_key, completion_details_key = keys
    prompt_total = count(field(usage, prompt_key))
    completion_total = count(field(usage, completion_key))
    if prompt_total is None and completion_total is None:
        return None
    prompt = None
    if prompt_total is not None:
        details = field(usage, prompt_details_key)
        cached = min(count(field(details, "cached_tokens")) or 0, prompt_total)
        written = min(count(field(details, "cache_write_tokens")) or 0, prompt_total - cached)
        prompt = Usage(input=prompt_total - cached - written, cache_read=cached, cache_write=written)
        # Audio / image prompt tokens pay their own rates: a part of the uncached input.
        audio, image = count(field(details, "audio_tokens")) or 0, count(field(details, "image_tokens")) or 0
        if audio or image:
            prompt = with_details(prompt, input_audio=audio, input_image=image)
    completion = None
    if completion_total is not None:
        completion_details = field(usage, completion_details_key)
        reasoning = count(field(completion_details, "reasoning_tokens")) or 0
        reasoning = min(reasoning, completion_total)
        completion = Usage(output=completion_total - reasoning, reasoning=reasoning)
        audio = count(field(completion_details, "audio_tokens")) or 0
        image = count(field(completion_details, "image_tokens")) or 0
        if audio or image:
            completion = with_details(completion, output_audio=audio, output_image=image)
    cost = provider_cost(field(usage, "cost"))
    if cost is not None:
        if prompt is not None:
            prompt = replace(prompt, cost_usd=cost)
        elif completion is not None:
            completion = replace(completion, cost_usd=cost)
    return Reported(prompt, completion)


def provider_cost(value: Any) -> Decimal | None:
    """A cost the provider reported (OpenRouter ``usage.cost``, USD), or ``None`` when absent or unusable."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        cost = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return cost if cost.is_finite() and cost >= 0 else None


def with_reported_cost(usage: Usage, cost: Any) -> Usage:
    """``usage`` carrying a cost reported beside the response (LiteLLM's ``response_cost``), unless it has one.

    Taken only for a usage the provider reported: a cost computed from counts tokenmeter had to
    estimate differently would not describe the metered tokens.
    """
    reported = provider_cost(cost)
    if reported is None or usage.cost_usd is not None or usage.estimated:
        return usage
    return replace(usage, cost_usd=reported)


# Responses output items billed per call of a built-in tool: item type -> tokenmeter unit.
_TOOL_ITEMS = {"web_search_call": "web_search", "file_search_call": "file_search"}


def tool_units(output: Any) -> dict[str, int]:
    """Built-in tool calls of a Responses ``output`` list, by unit: each ``web_search_call`` /
    ``file_search_call`` item is one billed tool call (OpenAI prices them per 1,000 calls)."""
    found: dict[str, int] = {}
    if isinstance(output, (list, tuple)):
        for item in output:
            unit = _TOOL_ITEMS.get(field(item, "type"))
            if unit is not None and field(item, "status") != "failed":
                found[unit] = found.get(unit, 0) + 1
    return found


def served_tier(response: Any) -> str | None:
    """The tier that served ``response`` (its ``service_tier``), or ``None`` when absent or not a short string."""
    tier = field(response, "service_tier")
    return tier if isinstance(tier, str) and tier and len(tier) <= 32 else None


def served(usage: Usage, response: Any) -> Usage:
    """``usage`` with the tier that served the response (its ``service_tier``: what was served, not asked)
    and the built-in tool calls its output items made (Responses ``web_search_call`` / ``file_search_call``)."""
    tier = served_tier(response)
    if tier is not None:
        usage = with_service_tier(usage, tier)
    units = tool_units(field(response, "output"))
    return with_units(usage, **units) if units else usage


def read_responses(usage: Any) -> Reported | None:
    """:func:`read` for the Responses API's ``input_tokens`` / ``output_tokens`` names."""
    return read(usage, _RESPONSES_KEYS)


def read_embeddings(usage: Any) -> Reported | None:
    """Embeddings report ``prompt_tokens`` only; there is no completion."""
    prompt = count(field(usage, "prompt_tokens"))
    return None if prompt is None else Reported(Usage(input=prompt), Usage())


def combine(reported: Reported | None) -> Usage | None:
    """One Usage from both halves; a missing half counts 0 and flags the result estimated."""
    if reported is None:
        return None
    prompt, completion = reported.prompt, reported.completion
    if prompt is None and completion is None:
        return None
    total = (prompt or Usage()) + (completion or Usage())
    if prompt is None or completion is None:
        return replace(total, estimated=True)
    return total


def settle_served(
    reported: Reported | None, request: OpenAIRequest, completion_text: str | Callable[[], str] | None, response: Any
) -> Usage:
    """``served(settle(reported, request, completion_text), response)``, building one :class:`Usage` instead of
    two when both halves were reported with nothing beyond the classes and no built-in tool ran (the common
    case: each ``Usage`` costs ≈ 23k instructions, see benchmarks/RESULTS.md)."""
    prompt = reported.prompt if reported is not None else None
    completion = reported.completion if reported is not None else None
    if (
        prompt is None
        or completion is None
        or prompt.has_extras
        or completion.has_extras
        or tool_units(field(response, "output"))
    ):
        return served(settle(reported, request, completion_text), response)
    return add_classes(prompt, completion, served_tier(response))


def settle(reported: Reported | None, request: OpenAIRequest, completion_text: str | Callable[[], str] | None) -> Usage:
    """The usage to meter: what the provider reported, with missing halves counted locally (flagged).

    ``completion_text`` is the reply text, or a function returning it (only called when the provider
    reported no completion tokens, so the common path never builds the text); ``None`` when the reply
    text is not known (e.g. a raw stream): the completion then counts 0, still flagged estimated.
    """
    prompt = reported.prompt if reported is not None else None
    completion = reported.completion if reported is not None else None
    if prompt is not None and completion is not None:
        return prompt + completion
    if prompt is None:
        prompt = Usage(input=estimate(request.estimate_input, request.model), estimated=True)
    if completion is None:
        text = completion_text() if callable(completion_text) else completion_text
        completion = Usage(output=estimate(text or "", request.model), estimated=True)
    return replace(prompt + completion, estimated=True)


def estimate(what: Any, model: str) -> int:
    """Tokens of a text, chat messages or Responses input items, counted offline."""
    if what is None:
        return 0
    if isinstance(what, str):
        return int(count_tokens(what, model)) if what else 0
    return int(count_tokens(what, model))


def text_inputs(value: Any) -> Any:
    """What to estimate for an embeddings ``input`` (a string, strings, or token arrays)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return None


def chat_text(choices: Iterable[Any] | None) -> str:
    """The generated text of non-streamed chat choices (content, refusals and tool-call arguments)."""
    parts: list[str] = []
    for choice in choices or ():
        message = field(choice, "message")
        for key in ("content", "refusal"):
            value = field(message, key)
            if isinstance(value, str):
                parts.append(value)
        for call in field(message, "tool_calls") or ():
            arguments = field(field(call, "function"), "arguments")
            if isinstance(arguments, str):
                parts.append(arguments)
        text = field(choice, "text")  # legacy completions
        if isinstance(text, str):
            parts.append(text)
    return "".join(parts)


def responses_text(output: Iterable[Any] | None) -> str:
    """The generated text of a Responses ``output`` list (message text and function-call arguments)."""
    parts: list[str] = []
    for item in output or ():
        kind = field(item, "type")
        if kind == "message":
            for content in field(item, "content") or ():
                text = field(content, "text")
                if isinstance(text, str):
                    parts.append(text)
        elif kind == "function_call":
            arguments = field(item, "arguments")
            if isinstance(arguments, str):
                parts.append(arguments)
    return "".join(parts)
