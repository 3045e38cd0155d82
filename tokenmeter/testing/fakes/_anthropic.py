"""Anthropic Messages wire format (also reused by Bedrock's Anthropic invoke bodies).

Usage semantics follow the real API: ``input_tokens`` excludes cache reads and
writes, which are reported beside it; ``output_tokens`` includes thinking.  In
a stream, ``message_start`` carries the input side (and a small output count)
and the last ``message_delta`` carries the final output total.
"""

from __future__ import annotations

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
    json_response,
    resolve,
    retry_headers,
    sse,
    stream_response,
    text_of,
)

_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use"}


def route(path: str) -> Route | None:
    """Match an Anthropic Messages path."""
    if path == "/v1/messages":
        return Route("anthropic", "messages", None)
    if path == "/v1/messages/count_tokens":
        return Route("anthropic", "count_tokens", None)
    return None


def plan_for(body: dict[str, Any], reply: Reply, model: str | None, stream: bool) -> Plan:
    """Resolve a reply against a Messages request body."""
    texts = [text_of(body["system"])] if body.get("system") else []
    texts += [text_of(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict)]
    return resolve(reply, texts=texts, max_tokens=body.get("max_tokens"), model=model, stream=stream)


def respond(req: ReceivedRequest, reply: Reply) -> HttpResponse:
    """Build the response for one Anthropic request."""
    plan = plan_for(as_dict(req.json), reply, req.model, req.stream)
    if plan.status >= 400:
        return error(plan.status)
    headers = {"request-id": "req_" + plan.rid}
    if req.operation == "count_tokens":
        return json_response(200, {"input_tokens": plan.input_tokens}, headers)
    if req.stream:
        return stream_response((sse(e, event=e["type"]) for e in stream_events(plan)), headers=headers)
    return json_response(200, message(plan), headers)


def error(status: int) -> HttpResponse:
    """An Anthropic-shaped error body."""
    kind = _ERRORS.get(status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": f"Fake provider error {status}."}}
    return json_response(status, body, {"request-id": "req_err", **retry_headers(status)})


def usage(plan: Plan, output_tokens: int | None = None) -> dict[str, Any]:
    """Messages usage: input excludes cache tokens; output includes thinking."""
    output = plan.output_tokens + plan.reasoning_tokens if output_tokens is None else output_tokens
    return {
        "input_tokens": plan.num(plan.input_tokens, 0),
        "cache_creation_input_tokens": plan.num(plan.cache_write_tokens, 2),
        "cache_read_input_tokens": plan.num(plan.cached_tokens, 1),
        "cache_creation": {"ephemeral_5m_input_tokens": plan.cache_write_tokens, "ephemeral_1h_input_tokens": 0},
        "output_tokens": plan.num(output, 1),
        "service_tier": "standard",
    }


def _blocks(plan: Plan) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if plan.reasoning_tokens:
        blocks.append({"type": "thinking", "thinking": REASONING_TEXT, "signature": "sig_" + plan.rid})
    if plan.text or plan.tool_call is None:
        blocks.append({"type": "text", "text": plan.text})
    if plan.tool_call is not None:
        name, args = plan.tool_call
        blocks.append({"type": "tool_use", "id": "toolu_" + plan.rid, "name": name, "input": args})
    return blocks


def message(plan: Plan) -> dict[str, Any]:
    """A complete (non-streamed) Message object."""
    out: dict[str, Any] = {
        "id": "msg_" + plan.rid,
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": _blocks(plan),
        "stop_reason": _STOP[plan.finish],
        "stop_sequence": None,
    }
    if plan.has_usage:
        out["usage"] = usage(plan)
    return out


def stream_events(plan: Plan) -> Iterator[dict[str, Any]]:
    """The stream's events as dicts (callers frame them as SSE or Bedrock chunks)."""
    start = {**message(plan), "content": [], "stop_reason": None}
    if plan.has_usage:
        start["usage"] = usage(plan, output_tokens=min(1, plan.output_tokens + plan.reasoning_tokens))
    yield {"type": "message_start", "message": start}
    yield {"type": "ping"}
    for index, block in enumerate(_blocks(plan)):
        if block["type"] == "thinking":
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {**block, "thinking": "", "signature": ""},
            }
            for piece in plan.pieces(REASONING_TEXT):
                yield _delta(index, {"type": "thinking_delta", "thinking": piece})
            yield _delta(index, {"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "text":
            yield {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            for piece in plan.pieces():
                yield _delta(index, {"type": "text_delta", "text": piece})
        else:
            yield {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}}
            yield _delta(index, {"type": "input_json_delta", "partial_json": plan.tool_args_json})
        yield {"type": "content_block_stop", "index": index}
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": _STOP[plan.finish], "stop_sequence": None},
    }
    if plan.has_usage:
        delta["usage"] = {"output_tokens": plan.num(plan.output_tokens + plan.reasoning_tokens, 1)}
    yield delta
    yield {"type": "message_stop"}


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}
