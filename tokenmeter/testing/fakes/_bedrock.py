"""AWS Bedrock Runtime wire format: Converse, ConverseStream, InvokeModel (+ stream).

Converse usage follows the real service: ``inputTokens`` excludes cache reads
and writes (``cacheReadInputTokens`` / ``cacheWriteInputTokens``), and
``outputTokens`` includes reasoning.  InvokeModel bodies depend on the model
family (Anthropic, Amazon Nova, Meta Llama, Cohere Command R); invoke responses
always carry the ``x-amzn-bedrock-*-token-count`` headers, like the real
service, so usage is available even for bodies without it (Cohere).
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

from . import _anthropic, _eventstream
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
    stream_response,
    text_of,
)

EVENTSTREAM = "application/vnd.amazon.eventstream"
_OPS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream")
_ERRORS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
}
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use"}


def route(path: str) -> Route | None:
    """Match ``/model/{modelId}/{operation}`` (the model id may be URL-encoded, e.g. an ARN)."""
    parts = path.split("/")
    if len(parts) == 4 and parts[0] == "" and parts[1] == "model" and parts[3] in _OPS:
        return Route("bedrock", parts[3], urllib.parse.unquote(parts[2]))
    return None


def family(model_id: str, body: dict[str, Any]) -> str:
    """Which invoke body family a model id (or, failing that, the body) belongs to."""
    for marker, name in (("anthropic.", "anthropic"), ("amazon.nova", "nova"), ("meta.llama", "llama")):
        if marker in model_id:
            return name
    if "cohere.command" in model_id:
        return "cohere"
    if "anthropic_version" in body:
        return "anthropic"
    if "prompt" in body:
        return "llama"
    return "cohere" if "message" in body else "nova"


def error(status: int) -> HttpResponse:
    """A Bedrock error: the code travels in ``x-amzn-ErrorType``; the body has ``message``."""
    code = _ERRORS.get(status, "InternalServerException")
    headers = {
        "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        **retry_headers(status),
    }
    return json_response(status, {"message": f"Fake provider error {status}."}, headers)


def respond(req: ReceivedRequest, reply: Reply) -> HttpResponse:
    """Build the response for one Bedrock Runtime request."""
    body = as_dict(req.json)
    model = req.model or ""
    kind = "converse" if req.operation.startswith("converse") else family(model, body)
    texts, max_tokens = _request_texts(kind, body)
    plan = resolve(reply, texts=texts, max_tokens=max_tokens, model=model, stream=req.stream)
    if plan.status >= 400:
        return error(plan.status)
    headers = {"x-amzn-requestid": plan.rid}
    if req.operation == "converse":
        return json_response(200, _converse(plan), headers)
    if req.operation == "converse-stream":
        return stream_response(_converse_stream(plan), EVENTSTREAM, headers)
    if req.operation == "invoke":
        headers.update(_count_headers(plan))
        return json_response(200, _INVOKE[kind](plan), headers)
    chunks = (_eventstream.event("chunk", {"bytes": base64.b64encode(_json(c)).decode()}) for c in _STREAM[kind](plan))
    return stream_response(chunks, EVENTSTREAM, headers)


def _request_texts(kind: str, body: dict[str, Any]) -> tuple[list[str], Any]:
    if kind == "llama":
        return [str(body.get("prompt", ""))], body.get("max_gen_len")
    if kind == "cohere":
        history = [text_of(m.get("message")) for m in body.get("chat_history") or [] if isinstance(m, dict)]
        texts = ([str(body["preamble"])] if body.get("preamble") else []) + history + [text_of(body.get("message"))]
        return texts, body.get("max_tokens")
    texts = [text_of(body["system"])] if body.get("system") else []
    texts += [text_of(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict)]
    config = as_dict(body.get("inferenceConfig"))
    return texts, config.get("maxTokens") or config.get("max_new_tokens") or body.get("max_tokens")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _out(plan: Plan) -> int:
    return plan.output_tokens + plan.reasoning_tokens


def _total(plan: Plan) -> int:
    return plan.input_tokens + plan.cached_tokens + plan.cache_write_tokens + _out(plan)


def converse_usage(plan: Plan) -> dict[str, Any]:
    """Converse ``TokenUsage``; cache fields appear only when non-zero, as on the real service."""
    usage = {
        "inputTokens": plan.num(plan.input_tokens, 0),
        "outputTokens": plan.num(_out(plan), 1),
        "totalTokens": plan.num(_total(plan), 2),
    }
    if plan.cached_tokens:
        usage["cacheReadInputTokens"] = plan.num(plan.cached_tokens, 1)
    if plan.cache_write_tokens:
        usage["cacheWriteInputTokens"] = plan.num(plan.cache_write_tokens, 2)
    return usage


def _converse(plan: Plan) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if plan.reasoning_tokens:
        content.append({"reasoningContent": {"reasoningText": {"text": REASONING_TEXT, "signature": "sig"}}})
    if plan.text or plan.tool_call is None:
        content.append({"text": plan.text})
    if plan.tool_call is not None:
        name, args = plan.tool_call
        content.append({"toolUse": {"toolUseId": "tooluse_" + plan.rid, "name": name, "input": args}})
    out: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": _STOP[plan.finish],
        "metrics": {"latencyMs": 1},
    }
    if plan.has_usage:
        out["usage"] = converse_usage(plan)
    return out


def _converse_stream(plan: Plan) -> Iterator[bytes]:
    ev = _eventstream.event
    yield ev("messageStart", {"role": "assistant"})
    index = 0
    if plan.reasoning_tokens:
        for piece in plan.pieces(REASONING_TEXT):
            yield ev("contentBlockDelta", {"contentBlockIndex": index, "delta": {"reasoningContent": {"text": piece}}})
        yield ev("contentBlockDelta", {"contentBlockIndex": index, "delta": {"reasoningContent": {"signature": "sig"}}})
        yield ev("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    if plan.text or plan.tool_call is None:
        for piece in plan.pieces():
            yield ev("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}})
        yield ev("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    if plan.tool_call is not None:
        start = {"toolUse": {"toolUseId": "tooluse_" + plan.rid, "name": plan.tool_call[0]}}
        yield ev("contentBlockStart", {"contentBlockIndex": index, "start": start})
        delta = {"toolUse": {"input": plan.tool_args_json}}
        yield ev("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})
        yield ev("contentBlockStop", {"contentBlockIndex": index})
    yield ev("messageStop", {"stopReason": _STOP[plan.finish]})
    metadata: dict[str, Any] = {"metrics": {"latencyMs": 1}}
    if plan.has_usage:
        metadata["usage"] = converse_usage(plan)
    yield ev("metadata", metadata)


def _count_headers(plan: Plan) -> dict[str, str]:
    if not plan.has_usage:
        return {}
    values = {
        "x-amzn-bedrock-input-token-count": plan.num(plan.input_tokens, 0),
        "x-amzn-bedrock-output-token-count": plan.num(_out(plan), 1),
    }
    if plan.cached_tokens:
        values["x-amzn-bedrock-cache-read-input-token-count"] = plan.num(plan.cached_tokens, 1)
    if plan.cache_write_tokens:
        values["x-amzn-bedrock-cache-write-input-token-count"] = plan.num(plan.cache_write_tokens, 2)
    values["x-amzn-bedrock-invocation-latency"] = 1
    return {k: "" if v is None else str(v) for k, v in values.items()}


def _metrics(plan: Plan) -> dict[str, Any]:
    if not plan.has_usage:
        return {}
    metrics: dict[str, Any] = {
        "inputTokenCount": plan.num(plan.input_tokens, 0),
        "outputTokenCount": plan.num(_out(plan), 1),
        "invocationLatency": 1,
        "firstByteLatency": 1,
    }
    if plan.cached_tokens:
        metrics["cacheReadInputTokenCount"] = plan.num(plan.cached_tokens, 1)
    if plan.cache_write_tokens:
        metrics["cacheWriteInputTokenCount"] = plan.num(plan.cache_write_tokens, 2)
    return {"amazon-bedrock-invocationMetrics": metrics}


def _nova_usage(plan: Plan) -> dict[str, Any]:
    return {
        "inputTokens": plan.num(plan.input_tokens, 0),
        "outputTokens": plan.num(_out(plan), 1),
        "totalTokens": plan.num(_total(plan), 2),
        "cacheReadInputTokenCount": plan.num(plan.cached_tokens, 1),
        "cacheWriteInputTokenCount": plan.num(plan.cache_write_tokens, 2),
    }


def _nova(plan: Plan) -> dict[str, Any]:
    out = _converse(plan)
    out.pop("metrics")
    if plan.has_usage:
        out["usage"] = _nova_usage(plan)
    return out


def _nova_stream(plan: Plan) -> Iterator[dict[str, Any]]:
    yield {"messageStart": {"role": "assistant"}}
    for piece in plan.pieces():
        yield {"contentBlockDelta": {"delta": {"text": piece}, "contentBlockIndex": 0}}
    yield {"contentBlockStop": {"contentBlockIndex": 0}}
    yield {"messageStop": {"stopReason": _STOP[plan.finish]}}
    metadata: dict[str, Any] = {"metrics": {}, "trace": {}}
    if plan.has_usage:
        metadata["usage"] = _nova_usage(plan)
    yield {"metadata": metadata, **_metrics(plan)}


def _llama_stop(plan: Plan) -> str:
    return "length" if plan.truncated else "stop"


def _llama(plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {"generation": plan.text, "stop_reason": _llama_stop(plan)}
    if plan.has_usage:
        prompt = plan.input_tokens + plan.cached_tokens + plan.cache_write_tokens
        out["prompt_token_count"] = plan.num(prompt, 0)
        out["generation_token_count"] = plan.num(_out(plan), 1)
    return out


def _llama_stream(plan: Plan) -> Iterator[dict[str, Any]]:
    full = _llama(plan)
    for i, piece in enumerate(plan.pieces()):
        chunk: dict[str, Any] = {"generation": piece, "stop_reason": None}
        if plan.has_usage:
            chunk["prompt_token_count"] = full["prompt_token_count"] if i == 0 else None
            chunk["generation_token_count"] = i + 1
        yield chunk
    last = {**full, "generation": ""}
    if plan.has_usage:
        last["prompt_token_count"] = None
    yield {**last, **_metrics(plan)}


def _cohere(plan: Plan) -> dict[str, Any]:
    return {
        "response_id": plan.rid,
        "generation_id": "gen_" + plan.rid,
        "text": plan.text,
        "chat_history": [{"role": "CHATBOT", "message": plan.text}],
        "finish_reason": "MAX_TOKENS" if plan.truncated else "COMPLETE",
    }


def _cohere_stream(plan: Plan) -> Iterator[dict[str, Any]]:
    yield {"is_finished": False, "event_type": "stream-start", "generation_id": "gen_" + plan.rid}
    for piece in plan.pieces():
        yield {"is_finished": False, "event_type": "text-generation", "text": piece}
    done = _cohere(plan)
    yield {
        "is_finished": True,
        "event_type": "stream-end",
        "finish_reason": done["finish_reason"],
        "response": done,
        **_metrics(plan),
    }


def _anthropic_stream(plan: Plan) -> Iterator[dict[str, Any]]:
    for event in _anthropic.stream_events(plan):
        if event["type"] == "message_stop":
            event = {**event, **_metrics(plan)}
        if event["type"] != "ping":
            yield event


_INVOKE = {"anthropic": _anthropic.message, "nova": _nova, "llama": _llama, "cohere": _cohere}
_STREAM = {"anthropic": _anthropic_stream, "nova": _nova_stream, "llama": _llama_stream, "cohere": _cohere_stream}
