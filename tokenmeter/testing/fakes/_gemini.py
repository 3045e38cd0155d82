"""Google Gemini API wire format: generateContent, streamGenerateContent (SSE), countTokens.

Usage semantics follow the real API: ``promptTokenCount`` includes
``cachedContentTokenCount``; ``candidatesTokenCount`` excludes
``thoughtsTokenCount``; ``totalTokenCount`` is prompt + candidates + thoughts.
Stream chunks carry a partial ``usageMetadata`` (prompt side only); the final
chunk carries the complete one.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

from ._common import (
    REASONING_TEXT,
    HttpResponse,
    Plan,
    ReceivedRequest,
    Reply,
    Route,
    as_dict,
    dumps,
    json_response,
    resolve,
    retry_headers,
    stream_response,
    text_of,
)

_PATH = re.compile(
    r"^/[^/]+/(?:.+/)?models/([^/:]+):(generateContent|streamGenerateContent|countTokens|embedContent|batchEmbedContents)$"
)
_ERRORS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def route(path: str) -> Route | None:
    """Match ``/{version}/models/{model}:{method}`` (also Vertex-style publisher paths)."""
    m = _PATH.match(path)
    return Route("gemini", m.group(2), urllib.parse.unquote(m.group(1))) if m else None


def error(status: int) -> HttpResponse:
    """A Google-API-shaped error body."""
    body = {
        "error": {
            "code": status,
            "message": f"Fake provider error {status}.",
            "status": _ERRORS.get(status, "INTERNAL"),
        }
    }
    return json_response(status, body, retry_headers(status))


def _get(body: dict[str, Any], camel: str, snake: str) -> Any:
    return body.get(camel, body.get(snake))


def respond(req: ReceivedRequest, reply: Reply) -> HttpResponse:
    """Build the response for one Gemini request."""
    body = as_dict(req.json)
    system = _get(body, "systemInstruction", "system_instruction")
    texts = [text_of(system)] if system else []
    texts += [text_of(c) for c in body.get("contents") or []]
    config = as_dict(_get(body, "generationConfig", "generation_config"))
    thinking = as_dict(_get(config, "thinkingConfig", "thinking_config"))
    max_tokens = _get(config, "maxOutputTokens", "max_output_tokens")
    plan = resolve(reply, texts=texts, max_tokens=max_tokens, model=req.model, stream=req.stream)
    if plan.status >= 400:
        return error(plan.status)
    if req.operation == "countTokens":
        return json_response(200, {"totalTokens": plan.input_tokens + plan.cached_tokens})
    thoughts = bool(_get(thinking, "includeThoughts", "include_thoughts"))
    if req.stream and req.query.get("alt") != "sse":  # without alt=sse the API streams one JSON array
        return json_response(200, [json.loads(c[len(b"data: ") :]) for c in _stream(plan, thoughts)])
    if req.stream:
        return stream_response(_stream(plan, thoughts))
    return json_response(200, _chunk(plan, _parts(plan, thoughts), final=True, usage=usage_metadata(plan)))


def usage_metadata(plan: Plan) -> dict[str, Any]:
    """Complete ``usageMetadata``; zero cache/thought counts are omitted, as on the real API."""
    prompt = plan.input_tokens + plan.cached_tokens + plan.cache_write_tokens
    meta: dict[str, Any] = {
        "promptTokenCount": plan.num(prompt, 0),
        "candidatesTokenCount": plan.num(plan.output_tokens, 1),
        "totalTokenCount": plan.num(prompt + plan.output_tokens + plan.reasoning_tokens, 2),
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if plan.cached_tokens:
        meta["cachedContentTokenCount"] = plan.num(plan.cached_tokens, 2)
        meta["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.cached_tokens}]
    if plan.reasoning_tokens:
        meta["thoughtsTokenCount"] = plan.num(plan.reasoning_tokens, 1)
    return meta


def _partial_usage(plan: Plan) -> dict[str, Any]:
    prompt = plan.input_tokens + plan.cached_tokens + plan.cache_write_tokens
    meta: dict[str, Any] = {"promptTokenCount": plan.num(prompt, 0), "totalTokenCount": plan.num(prompt, 2)}
    if plan.cached_tokens:
        meta["cachedContentTokenCount"] = plan.num(plan.cached_tokens, 2)
    return meta


def _parts(plan: Plan, thoughts: bool) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if thoughts and plan.reasoning_tokens:
        parts.append({"text": REASONING_TEXT, "thought": True})
    if plan.text or plan.tool_call is None:
        parts.append({"text": plan.text})
    if plan.tool_call is not None:
        parts.append({"functionCall": {"name": plan.tool_call[0], "args": plan.tool_call[1]}})
    return parts


def _chunk(plan: Plan, parts: list[dict[str, Any]], *, final: bool, usage: dict[str, Any]) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if final:
        candidate["finishReason"] = "MAX_TOKENS" if plan.truncated else "STOP"
    out: dict[str, Any] = {"candidates": [candidate]}
    if plan.has_usage:
        out["usageMetadata"] = usage
    out["modelVersion"] = plan.model
    out["responseId"] = plan.rid
    return out


def _stream(plan: Plan, thoughts: bool) -> Iterator[bytes]:
    groups: list[list[dict[str, Any]]] = []
    if thoughts and plan.reasoning_tokens:
        groups.append([{"text": REASONING_TEXT, "thought": True}])
    groups += [[{"text": piece}] for piece in plan.pieces()]
    if plan.tool_call is not None:
        groups.append([{"functionCall": {"name": plan.tool_call[0], "args": plan.tool_call[1]}}])
    if not groups:
        groups.append([{"text": ""}])
    last = len(groups) - 1
    for i, parts in enumerate(groups):
        usage = usage_metadata(plan) if i == last else _partial_usage(plan)
        yield b"data: " + dumps(_chunk(plan, parts, final=i == last, usage=usage)) + b"\r\n\r\n"
