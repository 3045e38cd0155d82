"""The hostile corpus: malformed provider answers for every integration, as raw bytes on the wire.

Each :class:`Case` is one answer (non-stream or stream) of one wire format; ``tests/hostile/test_corpus.py``
sends the same call through the real SDK with and without tokenmeter and compares what the caller sees.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tokenmeter.testing.fakes import _eventstream

from ._raw import Answer, Raw, Seen
from ._wire import DONE, SSE, asked_usage, chunk, dumps

JSON = {"content-type": "application/json"}
HTML = {"content-type": "text/html; charset=utf-8"}
EVENTSTREAM = {"content-type": "application/vnd.amazon.eventstream"}
HTML_PAGE = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"

BAD_VALUES: dict[str, Any] = {
    "huge": 10**30,
    "int64+1": 2**63,
    "above-ceiling": 2**32 + 1,
    "negative": -7,
    "nan": float("nan"),
    "infinity": float("inf"),
    "float": 12.5,
    "integral-float": 12.0,
    "string": "12",
    "bool": True,
    "null": None,
    "list": [1, 2],
    "object": {"n": 1},
}


@dataclass(frozen=True)
class Case:
    """One hostile answer for one wire format."""

    wire: str  # openai-chat, openai-responses, anthropic, gemini, bedrock-converse, bedrock-invoke
    name: str
    stream: bool
    answer: Answer

    @property
    def id(self) -> str:
        return f"{self.wire}-{'stream' if self.stream else 'plain'}-{self.name}"


def _structural(ok_body: bytes, headers: dict[str, str] | None = None) -> dict[str, Raw]:
    """Faults that do not depend on the format: truncated, empty, HTML pages, wrong top-level types."""
    h = headers or JSON
    return {
        "truncated": Raw(body=ok_body[: len(ok_body) // 2], headers=h),
        "empty-body": Raw(body=b"", headers=h),
        "html-200": Raw(body=HTML_PAGE, headers=HTML),
        "html-502": Raw(status=502, body=HTML_PAGE, headers=HTML),
        "json-500": Raw(status=500, body=b'{"error": {"message": "boom", "type": "server_error"}}', headers=JSON),
        "json-400": Raw(status=400, body=b'{"error": {"message": "bad", "type": "invalid_request_error"}}'),
        "json-array": Raw(body=b"[1, 2, 3]", headers=h),
        "json-string": Raw(body=b'"hello"', headers=h),
        "json-null": Raw(body=b"null", headers=h),
        "not-json": Raw(body=b"this is not json", headers=h),
    }


def _sse_faults(pieces: list[bytes], headers: dict[str, str] = SSE) -> dict[str, Raw]:
    """Stream-level faults: cut mid-way, garbage lines, HTML instead of a stream."""
    half = max(1, len(pieces) // 2)
    return {
        "cut-mid-stream": Raw(body=pieces[:half], headers=headers, cut=True),
        "cut-mid-line": Raw(body=[*pieces[:half], pieces[half][: len(pieces[half]) // 2]], headers=headers, cut=True),
        "garbage-line": Raw(body=[*pieces[:half], b"data: {not json\n\n", *pieces[half:]], headers=headers),
        "html-instead-of-stream": Raw(body=HTML_PAGE, headers=HTML),
        "html-502-stream": Raw(status=502, body=HTML_PAGE, headers=HTML),
        "empty-stream": Raw(body=[], headers=headers),
    }


# -- OpenAI Chat Completions ---------------------------------------------------------------------------
def _openai_chat_body(usage: Any = ...) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-h",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there."}, "finish_reason": "stop"}],
    }
    if usage is not ...:
        body["usage"] = usage
    return dumps(body)


def _chat_usage(v: Any) -> dict[str, Any]:
    return {
        "prompt_tokens": v,
        "completion_tokens": v,
        "total_tokens": v,
        "prompt_tokens_details": {"cached_tokens": v},
        "completion_tokens_details": {"reasoning_tokens": v},
    }


def _chat_stream(usage: Any = ..., *, every_chunk: Any = ..., asked_only: bool = True) -> Callable[[Seen], Raw]:
    """A chat stream; the usage-only chunk is sent when asked (as servers do) unless ``asked_only`` is off."""

    def respond(seen: Seen) -> Raw:
        pieces = [chunk(t, usage=every_chunk) for t in ("Hello", " from", " here.")]
        pieces.append(chunk(finish="stop", usage=every_chunk))
        if usage is not ... and (asked_usage(seen) or not asked_only):
            pieces.append(chunk(choices=[], usage=usage))
        pieces.append(DONE)
        return Raw(body=pieces, headers=SSE)

    return respond


def openai_chat() -> Iterator[Case]:
    ok = _openai_chat_body({"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})
    for name, raw in _structural(ok).items():
        yield Case("openai-chat", name, False, raw)
    yield Case("openai-chat", "missing-usage", False, Raw(body=_openai_chat_body()))
    yield Case("openai-chat", "usage-is-string", False, Raw(body=_openai_chat_body("lots")))
    yield Case("openai-chat", "choices-is-null", False, Raw(body=dumps({"id": "x", "choices": None, "usage": {}})))
    yield Case("openai-chat", "error-body-200", False, Raw(body=b'{"error": {"message": "overloaded"}}'))
    for name, value in BAD_VALUES.items():
        yield Case("openai-chat", f"usage-{name}", False, Raw(body=_openai_chat_body(_chat_usage(value))))
        yield Case("openai-chat", f"usage-{name}", True, _chat_stream(_chat_usage(value)))
    pieces = [chunk(t) for t in ("Hello", " from", " here.")] + [chunk(finish="stop"), DONE]
    for name, raw in _sse_faults(pieces).items():
        yield Case("openai-chat", name, True, raw)
    yield Case("openai-chat", "missing-usage", True, _chat_stream())
    yield Case("openai-chat", "usage-chunk-null", True, _chat_stream(None))
    good = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    yield Case("openai-chat", "usage-on-every-chunk", True, _chat_stream(every_chunk=good))
    yield Case("openai-chat", "usage-chunk-unasked", True, _chat_stream(good, asked_only=False))
    yield Case("openai-chat", "no-done", True, Raw(body=pieces[:-1], headers=SSE))
    error = b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
    yield Case("openai-chat", "error-event", True, Raw(body=[*pieces[:2], error, DONE], headers=SSE))
    yield Case("openai-chat", "choices-null", True, Raw(body=[chunk(choices=None), DONE], headers=SSE))


# -- OpenAI Responses ------------------------------------------------------------------------------------
def _response_obj(usage: Any = ...) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "resp_h",
        "object": "response",
        "created_at": 0,
        "model": "gpt-4o",
        "status": "completed",
        "output": [
            {
                "type": "message",
                "id": "msg_h",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Hi there.", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    if usage is not ...:
        obj["usage"] = usage
    return obj


def _responses_usage(v: Any) -> dict[str, Any]:
    return {
        "input_tokens": v,
        "output_tokens": v,
        "total_tokens": v,
        "input_tokens_details": {"cached_tokens": v},
        "output_tokens_details": {"reasoning_tokens": v},
    }


def _responses_events(usage: Any = ...) -> list[bytes]:
    def ev(kind: str, **data: Any) -> bytes:
        return f"event: {kind}\n".encode() + b"data: " + dumps({"type": kind, **data}) + b"\n\n"

    created = {**_response_obj(), "status": "in_progress", "output": []}
    _at = {"item_id": "msg_h", "output_index": 0, "content_index": 0}
    return [
        ev("response.created", response=created, sequence_number=0),
        ev(
            "response.output_text.delta",
            item_id="msg_h",
            output_index=0,
            content_index=0,
            delta="Hi",
            sequence_number=1,
        ),
        ev(
            "response.output_text.delta",
            item_id="msg_h",
            output_index=0,
            content_index=0,
            delta=" there.",
            sequence_number=2,
        ),
        ev("response.completed", response=_response_obj(usage), sequence_number=3),
    ]


def openai_responses() -> Iterator[Case]:
    ok = dumps(_response_obj({"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}))
    for name, raw in _structural(ok).items():
        yield Case("openai-responses", name, False, raw)
    yield Case("openai-responses", "missing-usage", False, Raw(body=dumps(_response_obj())))
    for name, value in BAD_VALUES.items():
        yield Case("openai-responses", f"usage-{name}", False, Raw(body=dumps(_response_obj(_responses_usage(value)))))
        yield Case(
            "openai-responses", f"usage-{name}", True, Raw(body=_responses_events(_responses_usage(value)), headers=SSE)
        )
    events = _responses_events({"input_tokens": 9, "output_tokens": 3, "total_tokens": 12})
    for name, raw in _sse_faults(events).items():
        yield Case("openai-responses", name, True, raw)
    yield Case("openai-responses", "missing-usage", True, Raw(body=_responses_events(), headers=SSE))
    yield Case("openai-responses", "no-completed-event", True, Raw(body=events[:-1], headers=SSE))
    failed = (
        b'event: error\ndata: {"type": "error", "code": "server_error", "message": "boom", "sequence_number": 3}\n\n'
    )
    yield Case("openai-responses", "error-event", True, Raw(body=[*events[:-1], failed], headers=SSE))


# -- Anthropic Messages ------------------------------------------------------------------------------------
def _message(usage: Any = ...) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "msg_h",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hi there."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
    }
    if usage is not ...:
        obj["usage"] = usage
    return obj


def _anthropic_usage(v: Any) -> dict[str, Any]:
    return {
        "input_tokens": v,
        "output_tokens": v,
        "cache_read_input_tokens": v,
        "cache_creation_input_tokens": v,
    }


def _anthropic_events(start_usage: Any = ..., delta_usage: Any = ...) -> list[bytes]:
    def ev(kind: str, **data: Any) -> bytes:
        return f"event: {kind}\n".encode() + b"data: " + dumps({"type": kind, **data}) + b"\n\n"

    start = {**_message(start_usage), "content": [], "stop_reason": None}
    delta: dict[str, Any] = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}}
    if delta_usage is not ...:
        delta["usage"] = delta_usage
    return [
        ev("message_start", message=start),
        ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"}),
        ev("content_block_delta", index=0, delta={"type": "text_delta", "text": " there."}),
        ev("content_block_stop", index=0),
        b"event: message_delta\ndata: " + dumps(delta) + b"\n\n",
        ev("message_stop"),
    ]


def anthropic() -> Iterator[Case]:
    good = {"input_tokens": 9, "output_tokens": 3}
    ok = dumps(_message(good))
    for name, raw in _structural(ok).items():
        yield Case("anthropic", name, False, raw)
    yield Case("anthropic", "missing-usage", False, Raw(body=dumps(_message())))
    for name, value in BAD_VALUES.items():
        yield Case("anthropic", f"usage-{name}", False, Raw(body=dumps(_message(_anthropic_usage(value)))))
        events = _anthropic_events(_anthropic_usage(value), {"output_tokens": value})
        yield Case("anthropic", f"usage-{name}", True, Raw(body=events, headers=SSE))
    events = _anthropic_events(good, {"output_tokens": 3})
    for name, raw in _sse_faults(events).items():
        yield Case("anthropic", name, True, raw)
    yield Case("anthropic", "missing-usage", True, Raw(body=_anthropic_events(), headers=SSE))
    overloaded = (
        b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n'
    )
    yield Case("anthropic", "error-event", True, Raw(body=[*events[:3], overloaded], headers=SSE))
    yield Case("anthropic", "no-message-delta", True, Raw(body=[*events[:5], events[6]], headers=SSE))


# -- Gemini ----------------------------------------------------------------------------------------------------
def _gemini(usage: Any = ..., text: str = "Hi there.", finish: bool = True) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    obj: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash", "responseId": "r_h"}
    if usage is not ...:
        obj["usageMetadata"] = usage
    return obj


def _gemini_usage(v: Any) -> dict[str, Any]:
    return {
        "promptTokenCount": v,
        "candidatesTokenCount": v,
        "cachedContentTokenCount": v,
        "thoughtsTokenCount": v,
        "totalTokenCount": v,
    }


def _gemini_stream(usage: Any = ...) -> list[bytes]:
    partial = {"promptTokenCount": 9}
    return [
        b"data: " + dumps(_gemini(partial, "Hi", finish=False)) + b"\r\n\r\n",
        b"data: " + dumps(_gemini(usage, " there.")) + b"\r\n\r\n",
    ]


def gemini() -> Iterator[Case]:
    good = {"promptTokenCount": 9, "candidatesTokenCount": 3, "totalTokenCount": 12}
    for name, raw in _structural(dumps(_gemini(good))).items():
        yield Case("gemini", name, False, raw)
    yield Case("gemini", "missing-usage", False, Raw(body=dumps(_gemini())))
    for name, value in BAD_VALUES.items():
        yield Case("gemini", f"usage-{name}", False, Raw(body=dumps(_gemini(_gemini_usage(value)))))
        yield Case("gemini", f"usage-{name}", True, Raw(body=_gemini_stream(_gemini_usage(value)), headers=SSE))
    for name, raw in _sse_faults(_gemini_stream(good) * 2).items():
        yield Case("gemini", name, True, raw)
    yield Case("gemini", "missing-usage", True, Raw(body=_gemini_stream(), headers=SSE))


# -- Bedrock -----------------------------------------------------------------------------------------------------
def _converse(usage: Any = ...) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hi there."}]}},
        "stopReason": "end_turn",
        "metrics": {"latencyMs": 1},
    }
    if usage is not ...:
        obj["usage"] = usage
    return obj


def _converse_usage(v: Any) -> dict[str, Any]:
    return {"inputTokens": v, "outputTokens": v, "totalTokens": v, "cacheReadInputTokens": v}


def _converse_events(usage: Any = ...) -> list[bytes]:
    ev = _eventstream.event
    metadata: dict[str, Any] = {"metrics": {"latencyMs": 1}}
    if usage is not ...:
        metadata["usage"] = usage
    return [
        ev("messageStart", {"role": "assistant"}),
        ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
        ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " there."}}),
        ev("contentBlockStop", {"contentBlockIndex": 0}),
        ev("messageStop", {"stopReason": "end_turn"}),
        ev("metadata", metadata),
    ]


def bedrock() -> Iterator[Case]:
    good = {"inputTokens": 9, "outputTokens": 3, "totalTokens": 12}
    for name, raw in _structural(dumps(_converse(good))).items():
        yield Case("bedrock-converse", name, False, raw)
    yield Case("bedrock-converse", "missing-usage", False, Raw(body=dumps(_converse())))
    for name, value in BAD_VALUES.items():
        yield Case("bedrock-converse", f"usage-{name}", False, Raw(body=dumps(_converse(_converse_usage(value)))))
        events = _converse_events(_converse_usage(value))
        yield Case("bedrock-converse", f"usage-{name}", True, Raw(body=events, headers=EVENTSTREAM))
        headers = {**JSON, "x-amzn-bedrock-input-token-count": str(value), "x-amzn-bedrock-output-token-count": "3"}
        body = dumps(_message(_anthropic_usage(value)))
        yield Case("bedrock-invoke", f"usage-{name}", False, Raw(body=body, headers=headers))
    events = _converse_events(good)
    throttled = _eventstream.exception("throttlingException", "slow down")
    faults = _sse_faults(events, EVENTSTREAM)
    faults.pop("garbage-line")
    faults["garbage-frame"] = Raw(
        body=[*events[:3], b"\x00\x00\x00\x10garbage-garbage", *events[3:]], headers=EVENTSTREAM
    )
    faults["exception-event"] = Raw(body=[*events[:3], throttled], headers=EVENTSTREAM)
    faults["missing-usage"] = Raw(body=_converse_events(), headers=EVENTSTREAM)
    for name, raw in faults.items():
        yield Case("bedrock-converse", name, True, raw)
    for name, raw in _structural(dumps(_message({"input_tokens": 9, "output_tokens": 3}))).items():
        yield Case("bedrock-invoke", name, False, raw)
    yield Case("bedrock-invoke", "missing-usage-and-headers", False, Raw(body=dumps(_message())))
    huge_header = {**JSON, "x-amzn-bedrock-input-token-count": "9" * 5000}
    yield Case("bedrock-invoke", "header-5000-digits", False, Raw(body=dumps(_message()), headers=huge_header))
    for label, value in (("plain", "12"), ("superscript-digit", "\u00b2"), ("spaces", " 12 "), ("empty", "")):
        header = {**JSON, "x-amzn-bedrock-input-token-count": value}
        yield Case("bedrock-invoke", f"header-{label}", False, Raw(body=dumps(_message()), headers=header))


def _invoke_chunks(events: list[bytes], metrics: Any = ...) -> list[bytes]:
    """InvokeModelWithResponseStream frames: each Anthropic event base64'd in a ``chunk``; metrics on the last."""
    frames = []
    for i, event in enumerate(events):
        data = json.loads(event.split(b"data: ", 1)[1])
        if i == len(events) - 1 and metrics is not ...:
            data["amazon-bedrock-invocationMetrics"] = metrics
        frames.append(_eventstream.event("chunk", {"bytes": base64.b64encode(dumps(data)).decode()}))
    return frames


def bedrock_invoke_stream() -> Iterator[Case]:
    good = {"inputTokenCount": 9, "outputTokenCount": 3}
    for name, value in BAD_VALUES.items():
        frames = _invoke_chunks(_anthropic_events(_anthropic_usage(value), {"output_tokens": value}))
        yield Case("bedrock-invoke", f"usage-{name}", True, Raw(body=frames, headers=EVENTSTREAM))
        metrics = {"inputTokenCount": value, "outputTokenCount": value}
        frames = _invoke_chunks(_anthropic_events(), metrics)
        yield Case("bedrock-invoke", f"metrics-{name}", True, Raw(body=frames, headers=EVENTSTREAM))
    frames = _invoke_chunks(_anthropic_events({"input_tokens": 9, "output_tokens": 1}, {"output_tokens": 3}), good)
    faults = _sse_faults(frames, EVENTSTREAM)
    faults.pop("garbage-line")
    faults["exception-event"] = Raw(
        body=[*frames[:3], _eventstream.exception("modelStreamErrorException", "boom")], headers=EVENTSTREAM
    )
    faults["missing-usage"] = Raw(body=_invoke_chunks(_anthropic_events()), headers=EVENTSTREAM)
    faults["chunk-not-base64"] = Raw(
        body=[*frames[:2], _eventstream.event("chunk", {"bytes": "%%%not-base64%%%"}), *frames[2:]],
        headers=EVENTSTREAM,
    )
    for name, raw in faults.items():
        yield Case("bedrock-invoke", name, True, raw)


_LITELLM_PARSER = (
    "LiteLLM's own stream parser raises (MidStreamFallbackError) on the malformed usage chunk the server sends "
    "because include_usage was injected (the server sends none otherwise); inject_stream_usage=False avoids it"
)
KNOWN_LITELLM: dict[str, str] = {
    **{f"openai-chat-stream-usage-{name}": _LITELLM_PARSER for name in ("nan", "infinity", "float", "list", "object")},
    "openai-chat-stream-choices-null": (
        "with include_usage set LiteLLM passes a `choices: null` chunk on as an empty-choices chunk before any "
        "finish; tokenmeter cannot tell it from a provider's own chunk, so it is not hidden"
    ),
}
"""Cases whose outcome through LiteLLM differs with tokenmeter, and why (README: Reliability)."""


def all_cases() -> list[Case]:
    """Every case of the corpus."""
    return [*openai_chat(), *openai_responses(), *anthropic(), *gemini(), *bedrock(), *bedrock_invoke_stream()]


def as_json(obj: Any) -> str:
    """A stable text of a normalised value (NaN compares equal to itself as text)."""
    return json.dumps(obj, sort_keys=True, default=repr)
