"""Response content in the GenAI conventions' message shape, for ``capture_content`` only.

Each function reads one provider's response (or stream chunk); the integrations' endpoints expose them
as the optional ``output_messages`` / ``stream_text`` the core calls when capture is on (never
otherwise). Shapes are normalised by :mod:`tokenmeter._content`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tokenmeter._content import message, parts

from ._bedrock_bodies import text_of_body
from ._fields import field


def _assistant(msg: Any, finish: Any = None) -> dict[str, Any]:
    out = message(msg)
    out["role"] = "assistant"
    if finish is not None:
        out["finish_reason"] = str(getattr(finish, "value", finish)).lower()
    return out


# -- OpenAI-shaped (openai chat, litellm) -----------------------------------------------------------
def chat_output(response: Any) -> list[dict[str, Any]]:
    """One assistant message per choice."""
    return [_assistant(field(c, "message"), field(c, "finish_reason")) for c in field(response, "choices") or ()]


def chat_delta(chunk: Any) -> str | None:
    """The text of the first choice's delta."""
    choices = field(chunk, "choices")
    if not choices:
        return None
    text = field(field(choices[0], "delta"), "content")
    return text if isinstance(text, str) else None


def responses_output(response: Any) -> list[dict[str, Any]]:
    """The Responses API's output items as one assistant message (text and function calls)."""
    found: list[dict[str, Any]] = []
    for item in field(response, "output") or ():
        kind = field(item, "type")
        if kind == "message":
            found.extend(parts(field(item, "content")))
        elif kind == "function_call":
            found.append(
                {
                    "type": "tool_call",
                    "id": field(item, "call_id"),
                    "name": field(item, "name"),
                    "arguments": field(item, "arguments"),
                }
            )
    return [{"role": "assistant", "parts": found}]


def responses_delta(event: Any) -> str | None:
    """The text a ``response.output_text.delta`` event adds."""
    if field(event, "type") == "response.output_text.delta":
        delta = field(event, "delta")
        return delta if isinstance(delta, str) else None
    return None


# -- Anthropic ------------------------------------------------------------------------------------
def anthropic_output(response: Any) -> list[dict[str, Any]]:
    """The Message's content blocks (text, tool_use...)."""
    body = response
    if hasattr(response, "http_response"):  # with_raw_response: the body was read already
        body = json.loads(response.http_response.content)
    return [_assistant({"content": field(body, "content")}, field(body, "stop_reason"))]


def anthropic_delta(event: Any) -> str | None:
    """The text of a ``content_block_delta`` / ``text_delta`` event."""
    if field(event, "type") != "content_block_delta":
        return None
    delta = field(event, "delta")
    text = field(delta, "text") if field(delta, "type") == "text_delta" else None
    return text if isinstance(text, str) else None


# -- Bedrock --------------------------------------------------------------------------------------
def converse_output(response: Any) -> list[dict[str, Any]]:
    """``output.message`` of a Converse response."""
    return [_assistant(field(field(response, "output"), "message"), field(response, "stopReason"))]


def converse_delta(chunk: Any) -> str | None:
    """The text of a ConverseStream ``contentBlockDelta``."""
    text = field(field(field(chunk, "contentBlockDelta"), "delta"), "text")
    return text if isinstance(text, str) else None


def invoke_output(response: Any) -> list[dict[str, Any]]:
    """The text of an InvokeModel body of any family (re-read from the copy the caller reads too)."""
    raw = response["body"]._raw_stream.getvalue()  # a BytesIO: reading its value does not move it
    body = json.loads(raw)
    if isinstance(body, Mapping) and isinstance(body.get("content"), list):  # Anthropic Messages
        return [_assistant({"content": body["content"]}, body.get("stop_reason"))]
    return [{"role": "assistant", "parts": parts(text_of_body(body) or None)}]


def invoke_delta(chunk: Any) -> str | None:
    """The text one InvokeModelWithResponseStream chunk adds (any family)."""
    data = field(field(chunk, "chunk"), "bytes")
    if not isinstance(data, bytes | str):
        return None
    event = json.loads(data)
    if isinstance(event, Mapping) and event.get("type") == "content_block_delta":
        return anthropic_delta(event)
    return text_of_body(event) or None


# -- Gemini ---------------------------------------------------------------------------------------
def gemini_output(response: Any) -> list[dict[str, Any]]:
    """One assistant message per candidate."""
    return [
        _assistant({"parts": field(field(c, "content"), "parts")}, field(c, "finish_reason"))
        for c in field(response, "candidates") or ()
    ]


def gemini_delta(chunk: Any) -> str | None:
    """The (non-thought) text of the first candidate of a chunk."""
    candidates = field(chunk, "candidates")
    if not candidates:
        return None
    texts = [field(p, "text") for p in field(field(candidates[0], "content"), "parts") or () if not field(p, "thought")]
    return "".join(t for t in texts if isinstance(t, str)) or None
