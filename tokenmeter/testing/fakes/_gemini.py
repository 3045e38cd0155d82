"""Google Gemini API wire format: generateContent, streamGenerateContent (SSE), countTokens, cachedContents.

Usage semantics follow the real API: ``promptTokenCount`` includes
``cachedContentTokenCount``; ``candidatesTokenCount`` excludes
``thoughtsTokenCount``; ``totalTokenCount`` is prompt + candidates + thoughts.
Stream chunks carry a partial ``usageMetadata`` (prompt side only); the final
chunk carries the complete one.

``cachedContents`` (explicit context caching, ai.google.dev/api/caching) is served with state:
``POST .../cachedContents`` creates a ``CachedContent`` (``name``, ``model``, ``createTime``,
``updateTime``, ``expireTime`` from the request's ``ttl`` -- default 3600s -- or ``expireTime``, and
``usageMetadata.totalTokenCount``: the contents' tokens, or the reply's ``input_tokens``);
``PATCH .../cachedContents/{id}`` takes a new ``ttl`` / ``expireTime``; ``GET`` reads it; ``DELETE``
removes it (``{}``); an unknown name is a 404.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
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


_CACHES = re.compile(r"^/[^/]+/(?:.+/)?cachedContents(?:/([^/:]+))?$")


def route(path: str, method: str = "POST") -> Route | None:
    """Match ``/{version}/models/{model}:{method}`` (also Vertex-style publisher paths) and ``cachedContents``."""
    m = _PATH.match(path)
    if m:
        return Route("gemini", m.group(2), urllib.parse.unquote(m.group(1))) if method == "POST" else None
    c = _CACHES.match(path)
    if c is None or (c.group(1) is None) != (method == "POST"):
        return None
    return Route("gemini", f"cachedContents.{method.lower()}", c.group(1))


# The fake's context caches, by resource name (names are unique across fake servers).
_CACHE_LOCK = threading.Lock()
_CACHE_STORE: dict[str, dict[str, Any]] = {}


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _expiry(body: dict[str, Any], now: float, default: float | None) -> float | None:
    ttl = body.get("ttl")
    if isinstance(ttl, str) and ttl.endswith("s"):
        return now + float(ttl[:-1])
    expire = _get(body, "expireTime", "expire_time")
    if isinstance(expire, str):
        return datetime.fromisoformat(expire.replace("Z", "+00:00")).timestamp()
    return default


def _caches(req: ReceivedRequest, reply: Reply) -> HttpResponse:
    body = as_dict(req.json)
    now = time.time()
    if req.operation == "cachedContents.post":
        texts = [text_of(c) for c in body.get("contents") or []]
        system = _get(body, "systemInstruction", "system_instruction")
        if system:
            texts.append(text_of(system))
        plan = resolve(reply, texts=texts, max_tokens=None, model=None, stream=False)
        if plan.status >= 400:
            return error(plan.status)
        name = f"cachedContents/{uuid.uuid4().hex[:12]}"
        model = str(body.get("model") or "")
        record: dict[str, Any] = {
            "name": name,
            "model": model if model.startswith("models/") or "/" in model else f"models/{model}",
            "createTime": _stamp(now),
            "updateTime": _stamp(now),
            "expireTime": _stamp(_expiry(body, now, now + 3600) or now + 3600),
            "usageMetadata": {"totalTokenCount": plan.input_tokens},
        }
        if body.get("displayName"):
            record["displayName"] = body["displayName"]
        with _CACHE_LOCK:
            _CACHE_STORE[name] = record
        return json_response(200, record)
    name = f"cachedContents/{req.model}"
    with _CACHE_LOCK:
        found = _CACHE_STORE.get(name)
        if found is None:
            return error(404)
        record = found
        if req.operation == "cachedContents.delete":
            del _CACHE_STORE[name]
            return json_response(200, {})
        if req.operation == "cachedContents.patch":
            expire = _expiry(body, now, None)
            if expire is not None:
                record["expireTime"] = _stamp(expire)
                record["updateTime"] = _stamp(now)
        return json_response(200, dict(record))


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
    if req.operation.startswith("cachedContents."):
        return _caches(req, reply)
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
