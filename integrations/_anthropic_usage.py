"""Anthropic Messages usage: the pure mapping from the API's usage objects and stream events to ``Usage``.

Shared by the ``anthropic`` integration and Bedrock's Anthropic ``InvokeModel`` bodies. See
``tokenmeter.integrations.anthropic`` for the mapping rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tokenmeter._call import Request
from tokenmeter._tokens import count_tokens
from tokenmeter._usage import Usage, with_details, with_units
from tokenmeter._wrap import Result

from ._fields import count, field, nonempty


@dataclass
class Counts:
    """Token counts as a provider reported them: ``None`` = not reported (or unusable).

    ``reasoning`` is the part of ``output`` spent thinking. ``malformed`` is set when a reported value
    was unusable (a string, a negative number, a float, a count above ``MAX_TOKENS``...): that field then
    counts as not reported.
    """

    input: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None
    output: int | None = None
    reasoning: int | None = None
    malformed: bool = False
    cache_write_1h: int | None = None  # the part of cache_write written with a 1-hour TTL
    web_search: int | None = None  # server_tool_use.web_search_requests (billed per 1,000)
    web_fetch: int | None = None  # server_tool_use.web_fetch_requests
    processing: str | None = None  # "batch" when the usage says the Message Batches API served it
    # Sub-inferences outside the top-level counts: (model or "" for the call's own model, Usage).
    iterations: tuple[tuple[str, Usage], ...] = ()
    # Counts another source reported differently from the metered ones (kept visible, not metered).
    model_reported: tuple[tuple[str, int], ...] = ()

    def set(self, name: str, value: Any) -> None:
        """Take a reported value: a later report replaces an earlier one; ``None`` changes nothing."""
        if value is None:
            return
        if count(value) is not None:
            setattr(self, name, value)
        else:
            self.malformed = True

    @property
    def reported(self) -> bool:
        """Whether the input or the output count is usable."""
        return self.input is not None or self.output is not None

    def usage(
        self, prompt: Callable[[], int] | None = None, completion: Callable[[], int] | None = None
    ) -> Usage | None:
        """The disjoint :class:`Usage`; a missing input/output is estimated with ``prompt`` / ``completion``.

        Without estimators a missing count is 0, and ``None`` is returned when neither input nor output
        was reported. Anything missing or malformed flags the usage ``estimated``.
        """
        if not self.reported and (prompt is None or completion is None):
            return None
        estimated = self.malformed
        input_ = self.input
        if input_ is None:
            input_, estimated = (prompt() if prompt else 0), True
        output = self.output
        if output is None:
            output, estimated = (completion() if completion else 0), True
        reasoning = self.reasoning if self.reasoning is not None and self.reasoning <= output else 0
        usage = Usage(
            input=input_,
            cache_read=self.cache_read or 0,
            cache_write=self.cache_write or 0,
            output=output - reasoning,
            reasoning=reasoning,
            estimated=estimated,
        )
        if self.cache_write_1h:
            usage = with_details(usage, cache_write_1h=self.cache_write_1h)
        if self.web_search or self.web_fetch:
            usage = with_units(usage, web_search=self.web_search or 0, web_fetch=self.web_fetch or 0)
        if self.processing is not None:
            usage = replace(usage, processing=self.processing)
        if self.iterations:
            usage = with_iterations(usage, self.iterations)
        if self.model_reported:
            usage = replace(usage, model_reported=self.model_reported)
        return usage


def read_usage(counts: Counts, usage: Any) -> None:
    """Fold one Anthropic ``usage`` object or dict (of a Message, ``message_start`` or ``message_delta``)."""
    if usage is None:
        return
    counts.set("input", field(usage, "input_tokens"))
    counts.set("cache_read", field(usage, "cache_read_input_tokens"))
    counts.set("cache_write", field(usage, "cache_creation_input_tokens"))
    counts.set("output", field(usage, "output_tokens"))
    counts.set("reasoning", field(field(usage, "output_tokens_details"), "thinking_tokens"))
    counts.set("cache_write_1h", field(field(usage, "cache_creation"), "ephemeral_1h_input_tokens"))
    server_tools = field(usage, "server_tool_use")
    if server_tools is not None:
        # A malformed unit count is left out (not billed as a guess); it does not make the tokens estimated.
        searches = count(field(server_tools, "web_search_requests"))
        fetches = count(field(server_tools, "web_fetch_requests"))
        counts.web_search = searches if searches is not None else counts.web_search
        counts.web_fetch = fetches if fetches is not None else counts.web_fetch
    if field(usage, "service_tier") == "batch":
        counts.processing = "batch"
    iterations = field(usage, "iterations")
    if isinstance(iterations, (list, tuple)):
        counts.iterations = outside_iterations(iterations)


def outside_iterations(iterations: Any) -> tuple[tuple[str, Usage], ...]:
    """The ``usage.iterations`` entries whose tokens the top-level counts leave out.

    ``message`` (and ``fallback_message``) entries are the turns of the call itself, already summed in
    the top-level counts; ``compaction`` runs (at the call's model) and ``advisor_message``
    sub-inferences (at their own ``model``) are not, and are billed: they are metered as parts.
    """
    found: list[tuple[str, Usage]] = []
    for item in iterations:
        kind = field(item, "type")
        if kind not in ("compaction", "advisor_message"):
            continue
        part = Counts()
        part.set("input", field(item, "input_tokens"))
        part.set("cache_read", field(item, "cache_read_input_tokens"))
        part.set("cache_write", field(item, "cache_creation_input_tokens"))
        part.set("output", field(item, "output_tokens"))
        part.set("cache_write_1h", field(field(item, "cache_creation"), "ephemeral_1h_input_tokens"))
        usage = part.usage()
        if usage is None:
            continue
        model = field(item, "model") if kind == "advisor_message" else ""
        found.append((model if isinstance(model, str) else "", usage))
    return tuple(found)


def with_iterations(usage: Usage, parts: tuple[tuple[str, Usage], ...]) -> Usage:
    """``usage`` plus sub-inference parts: their tokens are added to the classes and kept as ``parts``."""
    total = usage
    for _, part in parts:
        total = total + replace(part, estimated=False)
    return replace(total, parts=usage.parts + parts)


def usage_from_message(message: Any) -> Usage | None:
    """The :class:`Usage` of a ``Message`` (SDK object or dict) or of its ``usage``.

    ``None`` when no usable input or output count was reported; a malformed field (string, negative,
    ``None``) counts as missing and flags the usage estimated. Never raises.
    """
    try:
        usage = field(message, "usage") if field(message, "input_tokens") is None else message
        counts = Counts()
        read_usage(counts, usage)
        return counts.usage()
    except Exception:
        return None


def usage_from_events(events: Any) -> Usage | None:
    """The :class:`Usage` of a stream's events (SDK objects or dicts); see :func:`usage_from_message`.

    A stream without its final ``message_delta`` count gives the last reported counts, flagged estimated.
    """
    try:
        folded = MessageEvents()
        for event in events:
            folded.add(event)
        usage = folded.counts.usage()
        return usage if usage is None or folded.final else replace(usage, estimated=True)
    except Exception:
        return None


def estimate_prompt(request: Request) -> int:
    """Locally counted prompt tokens of a request (0 when its messages are unknown)."""
    source: Any = request.messages if request.messages is not None else request.prompt
    return int(count_tokens(source, request.model)) if source else 0


def estimate_text(text: str, request: Request) -> int:
    """Locally counted tokens of generated text."""
    return int(count_tokens(text, request.model)) if text else 0


def _text_of_content(content: Any) -> str:
    parts: list[str] = []
    for block in content if isinstance(content, list) else []:
        for key in ("text", "thinking"):
            value = field(block, key)
            if isinstance(value, str):
                parts.append(value)
        tool_input = field(block, "input")
        if tool_input is not None:
            parts.append(json.dumps(tool_input, default=str))
    return "".join(parts)


def message_result(message: Any, request: Request) -> Result:
    """The :class:`Result` of a complete ``Message`` (object or dict); missing counts are estimated."""
    counts = Counts()
    read_usage(counts, field(message, "usage"))
    usage = counts.usage(
        lambda: estimate_prompt(request),
        lambda: estimate_text(_text_of_content(field(message, "content")), request),
    )
    return Result(
        usage,
        response_model=nonempty(field(message, "model")),
        response_id=nonempty(field(message, "id")),
        finish_reasons=_reasons(field(message, "stop_reason")),
    )


class MessageEvents:
    """Folds Anthropic stream events (SDK objects or dicts) into counts, generated text and response facts."""

    def __init__(self) -> None:
        self.counts = Counts()
        self.final = False
        self.model: str | None = None
        self.id: str | None = None
        self.stop_reason: str | None = None
        self.text: list[str] = []

    def add(self, event: Any) -> None:
        """Take one event."""
        kind = field(event, "type")
        if kind == "content_block_delta":
            delta = field(event, "delta")
            for key in ("text", "thinking", "partial_json"):
                piece = field(delta, key)
                if isinstance(piece, str):
                    self.text.append(piece)
        elif kind == "message_start":
            message = field(event, "message")
            self.model = nonempty(field(message, "model")) or self.model
            self.id = nonempty(field(message, "id")) or self.id
            read_usage(self.counts, field(message, "usage"))
        elif kind == "message_delta":
            usage = field(event, "usage")
            read_usage(self.counts, usage)
            output = field(usage, "output_tokens")
            if count(output) is not None:
                self.final = True
            self.stop_reason = nonempty(field(field(event, "delta"), "stop_reason")) or self.stop_reason

    def result(self, request: Request) -> Result:
        """The stream's :class:`Result`; counts the stream did not (finally) report are estimated."""
        counts = self.counts
        provisional = counts.output
        if not self.final:
            counts.output = None
        usage = counts.usage(
            lambda: estimate_prompt(request),
            lambda: max(provisional or 0, estimate_text("".join(self.text), request)),
        )
        return Result(usage, response_model=self.model, response_id=self.id, finish_reasons=_reasons(self.stop_reason))


def _reasons(stop_reason: Any) -> list[str] | None:
    return [stop_reason] if isinstance(stop_reason, str) and stop_reason else None
