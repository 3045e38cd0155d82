"""OpenAI (and Azure OpenAI) wire format: chat completions, Responses API, embeddings.

Usage semantics follow the real API: ``prompt_tokens`` / ``input_tokens``
include cached tokens, ``completion_tokens`` / ``output_tokens`` include
reasoning tokens.  Azure paths (``/openai/deployments/{name}/...``) use the same
bodies, with the deployment as the model.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

from ._common import (
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

_AZURE = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|embeddings|responses)$")
_PLAIN = re.compile(r"^(?:/openai)?(?:/v1)?/(chat/completions|embeddings|responses)$")
_OPS = {"chat/completions": "chat", "embeddings": "embeddings", "responses": "responses"}
_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_FINISH = {"stop": "stop", "length": "length", "tool": "tool_calls"}


def route(path: str) -> Route | None:
    """Match an OpenAI or Azure OpenAI path."""
    m = _AZURE.match(path)
    if m:
        return Route("openai", _OPS[m.group(2)], urllib.parse.unquote(m.group(1)))
    m = _PLAIN.match(path)
    return Route("openai", _OPS[m.group(1)], None) if m else None


def respond(req: ReceivedRequest, reply: Reply) -> HttpResponse:
    """Build the response for one OpenAI request."""
    body = as_dict(req.json)
    if req.operation == "embeddings":
        return _embeddings(req, reply, body)
    if req.operation == "responses":
        texts = [text_of(body["instructions"])] if body.get("instructions") else []
        raw_input = body.get("input")
        texts += [text_of(raw_input)] if isinstance(raw_input, str) else [text_of(i) for i in raw_input or []]
        schema = as_dict(as_dict(body.get("text")).get("format"))
        max_tokens = body.get("max_output_tokens")
    else:
        texts = [text_of(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict)]
        fmt = as_dict(body.get("response_format"))
        schema = {**as_dict(fmt.get("json_schema")), "type": fmt.get("type")}
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    json_text = None
    if schema.get("type") == "json_schema":
        json_text = json.dumps(sample(as_dict(schema.get("schema")), as_dict(schema.get("schema"))))
    elif schema.get("type") == "json_object":
        json_text = "{}"
    plan = resolve(reply, texts=texts, max_tokens=max_tokens, model=req.model, stream=req.stream, json_text=json_text)
    if plan.status >= 400:
        return error(plan.status)
    headers = {"x-request-id": "req_" + plan.rid, "openai-processing-ms": "1"}
    if req.operation == "responses":
        if req.stream:
            return stream_response(_responses_stream(plan), headers=headers)
        return json_response(200, _response_obj(plan, "completed", _output_items(plan)), headers)
    if req.stream:
        include = as_dict(body.get("stream_options")).get("include_usage") is True
        return stream_response(_chat_stream(plan, include), headers=headers)
    return json_response(200, _chat_completion(plan), headers)


def error(status: int) -> HttpResponse:
    """An OpenAI-shaped error body; the SDK maps the status to its exception class."""
    kind, code = _ERRORS.get(status, ("server_error", None))
    body = {"error": {"message": f"Fake provider error {status}.", "type": kind, "param": None, "code": code}}
    return json_response(status, body, {"x-request-id": "req_err", **retry_headers(status)})


def chat_usage(plan: Plan) -> dict[str, Any]:
    """Chat-completions usage: prompt includes cache reads and writes, completion includes reasoning."""
    prompt = plan.input_tokens + plan.cached_tokens + plan.cache_write_tokens
    completion = plan.output_tokens + plan.reasoning_tokens
    prompt_details: dict[str, Any] = {"cached_tokens": plan.num(plan.cached_tokens, 2), "audio_tokens": 0}
    if plan.cache_write_tokens:
        prompt_details["cache_write_tokens"] = plan.num(plan.cache_write_tokens, 0)
    return {
        "prompt_tokens": plan.num(prompt, 0),
        "completion_tokens": plan.num(completion, 1),
        "total_tokens": plan.num(prompt + completion, 2),
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": plan.num(plan.reasoning_tokens, 1),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_completion(plan: Plan) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": plan.text or None, "refusal": None, "annotations": []}
    if plan.tool_call is not None:
        message["tool_calls"] = [
            {
                "id": "call_" + plan.rid,
                "type": "function",
                "function": {"name": plan.tool_call[0], "arguments": plan.tool_args_json},
            }
        ]
    out = {
        **_chat_base(plan, "chat.completion"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _FINISH[plan.finish]}],
    }
    if plan.has_usage:
        out["usage"] = chat_usage(plan)
    return out


def _chat_base(plan: Plan, obj: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-" + plan.rid,
        "object": obj,
        "created": int(time.time()),
        "model": plan.model,
        "system_fingerprint": "fp_fake",
        "service_tier": "default",
    }


def _chat_stream(plan: Plan, include_usage: bool) -> Iterator[bytes]:
    base = _chat_base(plan, "chat.completion.chunk")
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**base, "choices": [choice]})

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in plan.pieces():
        yield chunk({"content": piece})
    if plan.tool_call is not None:
        call = {"index": 0, "id": "call_" + plan.rid, "type": "function"}
        yield chunk({"tool_calls": [{**call, "function": {"name": plan.tool_call[0], "arguments": ""}}]})
        yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": plan.tool_args_json}}]})
    yield chunk({}, _FINISH[plan.finish])
    if include_usage and plan.has_usage:
        yield sse({**base, "choices": [], "usage": chat_usage(plan)})
    yield b"data: [DONE]\n\n"


def _responses_usage(plan: Plan) -> dict[str, Any]:
    usage = chat_usage(plan)
    return {
        "input_tokens": usage["prompt_tokens"],
        "input_tokens_details": {
            "cached_tokens": usage["prompt_tokens_details"]["cached_tokens"],
            "cache_write_tokens": plan.num(plan.cache_write_tokens, 0),
        },
        "output_tokens": usage["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": usage["completion_tokens_details"]["reasoning_tokens"]},
        "total_tokens": usage["total_tokens"],
    }


def _response_obj(plan: Plan, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    done = status != "in_progress"
    incomplete = done and plan.truncated
    return {
        "id": "resp_" + plan.rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": plan.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _responses_usage(plan) if done and plan.has_usage else None,
        "user": None,
        "metadata": {},
    }


def _output_items(plan: Plan) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if plan.reasoning_tokens:
        items.append({"id": "rs_" + plan.rid, "type": "reasoning", "summary": []})
    if plan.text or plan.tool_call is None:
        part = {"type": "output_text", "text": plan.text, "annotations": [], "logprobs": []}
        items.append(
            {"id": "msg_" + plan.rid, "type": "message", "role": "assistant", "status": "completed", "content": [part]}
        )
    if plan.tool_call is not None:
        items.append(
            {
                "id": "fc_" + plan.rid,
                "type": "function_call",
                "call_id": "call_" + plan.rid,
                "name": plan.tool_call[0],
                "arguments": plan.tool_args_json,
                "status": "completed",
            }
        )
    return items


def _responses_stream(plan: Plan) -> Iterator[bytes]:
    seq = iter(range(1 << 30))

    def event(kind: str, **data: Any) -> bytes:
        return sse({"type": kind, "sequence_number": next(seq), **data}, event=kind)

    yield event("response.created", response=_response_obj(plan, "in_progress", []))
    yield event("response.in_progress", response=_response_obj(plan, "in_progress", []))
    items = _output_items(plan)
    for index, item in enumerate(items):
        ref = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            yield event("response.output_item.added", output_index=index, item={**item, "content": []})
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield event("response.content_part.added", **ref, content_index=0, part=empty)
            for piece in plan.pieces():
                yield event("response.output_text.delta", **ref, content_index=0, delta=piece, logprobs=[])
            yield event("response.output_text.done", **ref, content_index=0, text=plan.text, logprobs=[])
            yield event("response.content_part.done", **ref, content_index=0, part=item["content"][0])
        elif item["type"] == "function_call":
            yield event("response.output_item.added", output_index=index, item={**item, "arguments": ""})
            yield event("response.function_call_arguments.delta", **ref, delta=item["arguments"])
            yield event("response.function_call_arguments.done", **ref, arguments=item["arguments"], name=item["name"])
        else:
            yield event("response.output_item.added", output_index=index, item=item)
        yield event("response.output_item.done", output_index=index, item=item)
    final = _response_obj(plan, "completed", items)
    yield event("response.incomplete" if plan.truncated else "response.completed", response=final)


def _embeddings(req: ReceivedRequest, reply: Reply, body: dict[str, Any]) -> HttpResponse:
    raw = body.get("input")
    inputs: list[Any] = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else list(raw or [])
    tokens = sum(len(i) if isinstance(i, list) else len(str(i).split()) for i in inputs)
    plan = resolve(reply, texts=[], max_tokens=None, model=req.model, stream=False)
    if plan.status >= 400:
        return error(plan.status)
    count = reply.input_tokens if reply.input_tokens is not None else tokens
    dims = body["dimensions"] if isinstance(body.get("dimensions"), int) else 8
    data = []
    for index in range(len(inputs)):
        vector = [((index + 1) * (k + 1) % 7) / 7.0 for k in range(dims)]
        encoded: Any = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    out: dict[str, Any] = {"object": "list", "data": data, "model": plan.model}
    if plan.has_usage:
        out["usage"] = {"prompt_tokens": plan.num(count, 0), "total_tokens": plan.num(count, 2)}
    return json_response(200, out, {"x-request-id": "req_" + plan.rid})


def sample(schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> Any:
    """A minimal JSON value that satisfies a (simple) JSON schema, for structured outputs."""
    if depth > 8:
        return None
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        defs = as_dict(root.get("$defs")) or as_dict(root.get("definitions"))
        return sample(as_dict(defs.get(name)), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [as_dict(o) for o in schema.get(key) or [] if as_dict(o).get("type") != "null"]
        if options:
            return sample(options[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = as_dict(schema.get("properties"))
        return {name: sample(as_dict(sub), root, depth + 1) for name, sub in props.items()}
    simple: dict[Any, Any] = {"string": "fake", "integer": 0, "number": 0.0, "boolean": False, "array": []}
    return simple.get(kind)
