"""Types and helpers shared by the fake provider's wire-format modules.

Every wire-format module turns a :class:`ReceivedRequest` plus a :class:`Reply`
into an :class:`HttpResponse`.  The token classes on :class:`Reply` are disjoint
(the same split the metering core uses); each module composes them into the
provider's own, sometimes overlapping, usage fields.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

Provider = Literal["openai", "anthropic", "bedrock", "gemini"]
UsageMode = Literal["normal", "missing", "malformed"]
Finish = Literal["stop", "length", "tool"]

DEFAULT_WORDS = 4
_FILLER = (
    "Hello from the fake. This is a deterministic reply streamed in small pieces so that "
    "clients and meters see realistic chunking."
).split()
REASONING_TEXT = "Let me think this through step by step."
_WORD = re.compile(r"\S+\s*")


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A scripted reply; every field is optional and ``None`` means "compute a default".

    Token fields are disjoint classes, whatever the provider reports:
    ``input_tokens`` is uncached input (neither cache read nor cache write),
    ``output_tokens`` is visible output (reasoning excluded).  Each wire format
    then composes them the way the real provider does (e.g. OpenAI's
    ``prompt_tokens`` = input + cached + cache-write; Gemini's
    ``candidatesTokenCount`` excludes thoughts; Anthropic's and Bedrock's
    ``output_tokens`` include thinking).

    Fields:
        text: reply text (default "Hello from the fake.", or a schema-shaped JSON
            object when OpenAI structured output is requested).
        input_tokens: default = words in all message texts + 4 per message.
        output_tokens: default = words in the reply (+ the tool call), capped
            by the request's max tokens (the text is then cut, finish = length).
        cached_tokens / cache_write_tokens / reasoning_tokens: default 0.
        tool_call: ``(name, arguments)`` -> a tool call in the provider's format,
            with the matching finish/stop reason.
        status: >= 400 returns the provider's error shape (429/503 also carry
            ``retry-after: 0`` and ``retry-after-ms: 1`` so SDK retries are instant).
        usage: ``"missing"`` omits usage everywhere it would appear (bodies,
            stream events, Bedrock's token-count headers) -- note that the
            ``anthropic`` SDK's ``messages.stream()`` helper itself fails on a
            stream without usage; ``"malformed"`` replaces the numbers by a
            numeric string, a negative number or ``null``.
        chunks: number of content pieces in a stream (default up to 4); with no
            scripted text, the default text grows to that many words.
        delay_s: sleep before answering (for timeout tests).
        model: response model name (default: echo the request's model).
        body: a recorded response served verbatim instead of the computed one (a JSON object, or
            the list of a stream's events, framed as the provider streams them).
        headers: extra response headers (with ``body``).
    """

    text: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    tool_call: tuple[str, dict[str, Any]] | None = None
    status: int = 200
    usage: UsageMode = "normal"
    chunks: int | None = None
    delay_s: float = 0.0
    model: str | None = None
    body: Any = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the fake received it.

    ``path`` excludes the query string (parsed into ``query``); header names are
    lower-cased; ``json`` is the parsed body (``None`` if empty or not JSON);
    ``operation`` is e.g. ``chat``, ``responses``, ``embeddings``, ``messages``,
    ``converse``, ``invoke-with-response-stream``, ``generateContent``;
    ``model`` comes from the URL (Azure deployment, Bedrock model id, Gemini
    model) or else from the body's ``model``.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    provider: Provider
    operation: str
    model: str | None
    stream: bool = False


class Route(NamedTuple):
    """Where a URL path leads: provider, operation and the model named in the URL (if any)."""

    provider: Provider
    operation: str
    model: str | None


@dataclass
class HttpResponse:
    """A response for the server to write; an iterator body is sent chunked, piece by piece."""

    status: int
    headers: dict[str, str]
    body: bytes | Iterator[bytes]


@dataclass(frozen=True)
class Plan:
    """A :class:`Reply` resolved against one request: concrete text, tokens and finish."""

    text: str
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    tool_call: tuple[str, dict[str, Any]] | None
    truncated: bool
    status: int
    usage: UsageMode
    chunks: int
    model: str
    stream: bool
    rid: str = field(default_factory=lambda: uuid.uuid4().hex[:24])

    @property
    def finish(self) -> Finish:
        """Why generation stopped."""
        if self.tool_call is not None:
            return "tool"
        return "length" if self.truncated else "stop"

    @property
    def has_usage(self) -> bool:
        """False when the reply asked for usage to be left out."""
        return self.usage != "missing"

    @property
    def tool_args_json(self) -> str:
        """The tool call's arguments as a JSON string ("{}" without a tool call)."""
        return json.dumps(self.tool_call[1] if self.tool_call else {})

    def num(self, value: int, slot: int = 0) -> Any:
        """``value``, or in malformed mode a numeric string / negative / null chosen by ``slot``."""
        if self.usage != "malformed":
            return value
        return (str(value), -value - 1, None)[slot % 3]

    def pieces(self, text: str | None = None) -> list[str]:
        """Split ``text`` (default: the reply text) into ``chunks`` stream pieces."""
        return split_text(self.text if text is None else text, self.chunks)


def split_text(text: str, n: int) -> list[str]:
    """Split into ``n`` pieces on word boundaries, or by characters when there are too few words."""
    if not text:
        return []
    n = max(1, n)
    words = _WORD.findall(text)
    if text[0].isspace():
        words.insert(0, text[: len(text) - len(text.lstrip())])
    if len(words) >= n:
        bounds = [len(words) * i // n for i in range(n + 1)]
        return ["".join(words[bounds[i] : bounds[i + 1]]) for i in range(n)]
    bounds = [len(text) * i // n for i in range(n + 1)]
    return [text[bounds[i] : bounds[i + 1]] for i in range(n)]


def word_count(text: str) -> int:
    """Whitespace-separated words in ``text``."""
    return len(text.split())


def default_text(words: int) -> str:
    """The default reply: "Hello from the fake." extended to ``words`` words."""
    return " ".join(_FILLER[i % len(_FILLER)] for i in range(max(1, words)))


def text_of(value: Any) -> str:
    """All human-readable text inside a message/content structure, joined by spaces."""
    if isinstance(value, str):
        return value
    out: list[str] = []
    _collect(value, out)
    return " ".join(out)


def _collect(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect(item, out)
    elif isinstance(value, dict):
        for key in ("text", "content", "parts", "output", "message"):
            if key in value:
                _collect(value[key], out)


def resolve(
    reply: Reply,
    *,
    texts: Iterable[str],
    max_tokens: Any,
    model: str | None,
    stream: bool,
    json_text: str | None = None,
    input_overhead: int = 4,
) -> Plan:
    """Turn a reply into a plan: defaults come from the request's message texts.

    Default input tokens = words in all texts + ``input_overhead`` per text;
    default output tokens = words in the reply (plus the tool call), capped by
    ``max_tokens`` (the text is then cut and the finish becomes "length").
    """
    texts = list(texts)
    input_tokens = reply.input_tokens
    if input_tokens is None:
        input_tokens = sum(word_count(t) for t in texts) + input_overhead * len(texts)
    chunks = reply.chunks if reply.chunks is not None else DEFAULT_WORDS
    if reply.text is not None:
        text = reply.text
    elif json_text is not None:
        text = json_text
    elif reply.tool_call is not None:
        text = ""
    else:
        text = default_text(max(chunks, DEFAULT_WORDS))
    if reply.chunks is None:
        chunks = max(1, min(DEFAULT_WORDS, word_count(text)))
    output = reply.output_tokens
    truncated = False
    if output is None:
        output = word_count(text)
        if reply.tool_call is not None:
            output += 1 + word_count(json.dumps(reply.tool_call[1]))
        cap = max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None
        if cap is not None and 0 < cap < output and reply.tool_call is None:
            output, truncated = cap, True
            text = "".join(_WORD.findall(text)[:cap]).rstrip()
    return Plan(
        text=text,
        input_tokens=input_tokens,
        cached_tokens=reply.cached_tokens,
        cache_write_tokens=reply.cache_write_tokens,
        output_tokens=output,
        reasoning_tokens=reply.reasoning_tokens,
        tool_call=reply.tool_call,
        truncated=truncated,
        status=reply.status,
        usage=reply.usage,
        chunks=chunks,
        model=reply.model or model or "fake-model",
        stream=stream,
    )


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(obj, separators=(",", ":")).encode()


def json_response(status: int, obj: Any, headers: Mapping[str, str] | None = None) -> HttpResponse:
    """A JSON response with a content-length."""
    return HttpResponse(status, {"content-type": "application/json", **(headers or {})}, dumps(obj))


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event (``event:`` line only when given)."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + dumps(data) + b"\n\n"


def stream_response(
    chunks: Iterator[bytes], content_type: str = "text/event-stream", headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """A 200 streaming response."""
    return HttpResponse(200, {"content-type": content_type, "cache-control": "no-cache", **(headers or {})}, chunks)


def retry_headers(status: int) -> dict[str, str]:
    """Headers that let SDKs retry a throttled/unavailable reply immediately."""
    if status in (429, 503, 529):
        return {"retry-after": "0", "retry-after-ms": "1"}
    return {}


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a dict, else an empty dict."""
    return value if isinstance(value, dict) else {}
