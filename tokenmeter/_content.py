"""Opt-in content capture (``configure(capture_content=True)``) in the GenAI semantic conventions' shape.

``gen_ai.input.messages``, ``gen_ai.output.messages`` and ``gen_ai.system_instructions`` are span
attributes holding JSON: a list of ``{"role", "parts": [...]}`` messages (output messages add
``finish_reason``); parts are ``{"type": "text", "content"}``, ``{"type": "tool_call", "id", "name",
"arguments"}``, ``{"type": "tool_call_response", "id", "response"}``, or ``{"type": <kind>}`` for
media (never the bytes). Each attribute is cut to ``capture_content_max_chars`` characters (the JSON is
then no longer parseable, and ``tokenmeter.content.truncated`` says so).

The input side reads the chat-shaped messages every integration already gives the core
(:class:`~tokenmeter.Request` ``messages`` / ``prompt``): OpenAI, Anthropic, Bedrock Converse and Gemini
shapes are all understood here. The output side asks the integration's endpoint (optional
``output_messages(response)`` for a whole response, ``stream_text(chunk)`` for one stream chunk's text);
nothing of this runs unless capture is on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# Providers whose system instructions are a separate request parameter (the integrations put them
# first, as a "system" message, for estimating): they go to gen_ai.system_instructions.
_SEPARATE_SYSTEM = frozenset({"anthropic", "aws.bedrock", "gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai"})
_ROLES = {"model": "assistant", "developer": "system", "human": "user", "ai": "assistant"}


def env_enabled(value: str | None) -> bool | None:
    """The conventions' variable: ``true`` / ``span_only`` / ``span_and_event`` capture on spans."""
    if value is None or not value.strip():
        return None
    return value.strip().lower() in ("true", "1", "span_only", "span_and_event")


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        if isinstance(obj, Mapping):
            if name in obj:
                return obj[name]
        else:
            value = getattr(obj, name, None)
            if value is not None:
                return value
    return None


def _json_value(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return _json_value(dump())
        except Exception:
            pass
    return str(value)


def part(item: Any) -> dict[str, Any] | None:
    """One content part (any provider's shape) in the conventions' shape."""
    if isinstance(item, str):
        return {"type": "text", "content": item}
    kind = _get(item, "type")
    text = _get(item, "text")
    if isinstance(text, str) and kind in (None, "text", "input_text", "output_text"):
        return {"type": "text", "content": text}
    if kind == "tool_use" or _get(item, "toolUse") is not None or _get(item, "function_call", "functionCall"):
        use = _get(item, "toolUse") or _get(item, "function_call", "functionCall") or item
        return {
            "type": "tool_call",
            "id": _get(use, "id", "toolUseId"),
            "name": _get(use, "name"),
            "arguments": _json_value(_get(use, "input", "args", "arguments")),
        }
    if (
        kind == "tool_result"
        or _get(item, "toolResult") is not None
        or _get(item, "function_response", "functionResponse")
    ):
        res = _get(item, "toolResult") or _get(item, "function_response", "functionResponse") or item
        return {
            "type": "tool_call_response",
            "id": _get(res, "tool_use_id", "toolUseId", "id"),
            "response": _json_value(_get(res, "content", "response")),
        }
    if kind is not None:
        return {"type": str(kind)}
    for media in ("image", "document", "video", "audio", "inline_data", "inlineData", "file_data", "fileData"):
        if _get(item, media) is not None:
            return {"type": media}
    return None


def parts(content: Any) -> list[dict[str, Any]]:
    """The parts of a message's content: a string, or a list of parts in any provider's shape."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    items = content if isinstance(content, list | tuple) else [content]
    return [p for p in (part(i) for i in items) if p is not None]


def message(msg: Any) -> dict[str, Any]:
    """One chat message (OpenAI, Anthropic, Bedrock Converse or Gemini shape) in the conventions' shape."""
    if isinstance(msg, str):
        return {"role": "user", "parts": [{"type": "text", "content": msg}]}
    role = _get(msg, "role")
    role = _ROLES.get(role, role) if isinstance(role, str) else "user"
    found = parts(_get(msg, "content", "parts"))
    for call in _get(msg, "tool_calls") or []:
        fn = _get(call, "function")
        found.append(
            {
                "type": "tool_call",
                "id": _get(call, "id"),
                "name": _get(fn, "name"),
                "arguments": _json_value(_get(fn, "arguments")),
            }
        )
    call_id = _get(msg, "tool_call_id")
    if role == "tool" and call_id is not None:
        found = [
            {
                "type": "tool_call_response",
                "id": call_id,
                "response": " ".join(p.get("content", "") for p in found if p.get("type") == "text"),
            }
        ]
    return {"role": role, "parts": found}


def inputs(provider: str, messages: Sequence[Any] | None, prompt: str | None) -> tuple[list[Any], list[Any]]:
    """``(system instruction parts, input messages)`` of a request."""
    if messages is None:
        return [], ([] if prompt is None else [message(prompt)])
    converted = [message(m) for m in messages]
    system: list[Any] = []
    if provider in _SEPARATE_SYSTEM:
        while converted and converted[0]["role"] == "system":
            system.extend(converted.pop(0)["parts"])
    return system, converted


def output_text(texts: Iterable[str], finish_reasons: Sequence[str] | None) -> list[dict[str, Any]]:
    """The output message of a stream: its text deltas joined."""
    text = "".join(texts)
    return [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": text}] if text else [],
            "finish_reason": finish_reasons[0] if finish_reasons else "",
        }
    ]


def attribute(value: Any, max_chars: int) -> tuple[str, bool]:
    """The JSON of ``value`` cut to ``max_chars`` characters, and whether it was cut."""
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    if len(text) > max_chars:
        return text[:max_chars], True
    return text, False


def add_inputs(
    attrs: dict[str, Any], provider: str, messages: Sequence[Any] | None, prompt: str | None, max_chars: int
) -> None:
    """Put the input attributes of a request into ``attrs`` (span start attributes)."""
    system, converted = inputs(provider, messages, prompt)
    truncated = False
    if system:
        attrs["gen_ai.system_instructions"], cut = attribute(system, max_chars)
        truncated |= cut
    if converted:
        attrs["gen_ai.input.messages"], cut = attribute(converted, max_chars)
        truncated |= cut
    if truncated:
        attrs["tokenmeter.content.truncated"] = True
