"""Wire-format builders of the hostile corpus: OpenAI chat bodies and SSE streams, raw bytes."""

from __future__ import annotations

import json
from typing import Any

from ._raw import Raw, Seen

SSE = {"content-type": "text/event-stream"}
TEXT = ["Hello", " from", " a", " hostile", " server."]


def dumps(obj: Any) -> bytes:
    """JSON as a lax server writes it (NaN / Infinity allowed)."""
    return json.dumps(obj, allow_nan=True).encode()


def chat_body(usage: Any = None, *, text: str = "Hi there.", **extra: Any) -> dict[str, Any]:
    """A chat.completion body (``usage`` as given; omitted when ``...``)."""
    body: dict[str, Any] = {
        "id": "chatcmpl-h",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }
    if usage is not ...:
        body["usage"] = usage
    body.update(extra)
    return body


def chunk(content: str | None = None, *, finish: str | None = None, usage: Any = ..., choices: Any = ...) -> bytes:
    """One ``data:`` line of a chat.completion.chunk stream."""
    obj: dict[str, Any] = {"id": "chatcmpl-h", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o"}
    if choices is ...:
        delta = {} if content is None else {"content": content}
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}]
    obj["choices"] = choices
    if usage is not ...:
        obj["usage"] = usage
    return b"data: " + dumps(obj) + b"\n\n"


DONE = b"data: [DONE]\n\n"


def asked_usage(seen: Seen) -> bool:
    """Whether the request asked for ``stream_options.include_usage``."""
    try:
        body = json.loads(seen.body)
    except ValueError:
        return False
    options = body.get("stream_options") if isinstance(body, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


def chat_stream(final_usage: Any = ..., *, cut: bool = False, done: bool = True) -> Any:
    """A chat stream answer that adds the usage-only chunk only when the request asked for it, as servers do.

    ``final_usage``: the ``usage`` of that last chunk (``None`` for ``"usage": null``; ``...`` for none).
    """

    def respond(seen: Seen) -> Raw:
        pieces = [chunk(t) for t in TEXT] + [chunk(finish="stop")]
        if asked_usage(seen) and final_usage is not ...:
            pieces.append(chunk(choices=[], usage=final_usage))
        if done:
            pieces.append(DONE)
        return Raw(body=pieces, headers=SSE, cut=cut)

    return respond


def rejects_stream_options(then: Any) -> Any:
    """A server that answers 400 to any request naming ``stream_options``, else ``then``."""
    error = {
        "error": {
            "message": "Unrecognized request argument supplied: stream_options",
            "type": "invalid_request_error",
            "param": "stream_options",
            "code": None,
        }
    }

    def respond(seen: Seen) -> Raw:
        if b"stream_options" in seen.body:
            return Raw(status=400, body=dumps(error))
        return then(seen) if callable(then) else then

    return respond
