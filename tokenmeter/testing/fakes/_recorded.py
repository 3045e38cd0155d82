"""Recorded responses: a :class:`Reply` whose ``body`` is served verbatim in the provider's framing.

A non-streamed body is one JSON object; a streamed body is the list of its events, framed as the
provider streams them (server-sent events for OpenAI, Anthropic and Gemini; AWS event-stream ``chunk``
messages carrying base64 JSON for Bedrock ``InvokeModelWithResponseStream``). ``Reply.headers`` adds
response headers (Bedrock's token-count headers, Gemini's ``x-gemini-service-tier``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from . import _eventstream
from ._common import HttpResponse, ReceivedRequest, Reply, json_response, sse, stream_response

_EVENTSTREAM = "application/vnd.amazon.eventstream"


def respond(req: ReceivedRequest, reply: Reply) -> HttpResponse:
    """Serve ``reply.body`` as the provider would."""
    headers = dict(reply.headers or {})
    body = reply.body
    if not req.stream or not isinstance(body, list):
        return json_response(reply.status, body, headers)
    if req.provider == "bedrock":
        chunks = (
            _eventstream.event("chunk", {"bytes": base64.b64encode(json.dumps(e).encode()).decode()}) for e in body
        )
        return stream_response(iter(list(chunks)), _EVENTSTREAM, headers)
    if req.provider == "anthropic":
        return stream_response(iter([sse(e, event=_kind(e)) for e in body]), headers=headers)
    if req.provider == "openai":
        return stream_response(iter([*(sse(e) for e in body), b"data: [DONE]\n\n"]), headers=headers)
    return stream_response(iter([sse(e) for e in body]), headers=headers)


def _kind(event: Any) -> str | None:
    kind = event.get("type") if isinstance(event, dict) else None
    return kind if isinstance(kind, str) else None


def respond_get(handler: Any, path: str, provider: Any) -> HttpResponse:
    """A GET (a batch, its JSONL results): the next queued reply's recorded ``body``, else 404.

    A list body is served as JSON Lines, one object per line.
    """
    request = ReceivedRequest(
        method="GET",
        path=path,
        query={},
        headers={k.lower(): v for k, v in handler.headers.items()},
        body=b"",
        json=None,
        provider="anthropic" if path.startswith("/v1/messages") else "openai",
        operation="get",
        model=None,
        stream=False,
    )
    reply: Reply = provider._take(request)
    if reply.body is None:
        return json_response(404, {"error": {"message": f"fake provider: nothing recorded for GET {path}"}})
    if isinstance(reply.body, list):
        lines = b"".join(json.dumps(item).encode() + b"\n" for item in reply.body)
        return HttpResponse(200, {"content-type": "application/binary", **dict(reply.headers or {})}, lines)
    return json_response(200, reply.body, dict(reply.headers or {}))
