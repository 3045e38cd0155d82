"""Bedrock ``InvokeModel`` bodies: what each model family's request and response JSON says about tokens.

The body format depends on the model family; bodies are recognised by their shape (a model id may be
an ARN or an application inference profile that does not name the model):

* Anthropic -- a Messages body: ``usage`` as on the Anthropic API (cache tokens beside ``input_tokens``);
  stream chunks are Anthropic events;
* Amazon Nova -- ``usage`` ``inputTokens`` / ``outputTokens`` / ``cacheReadInputTokenCount`` /
  ``cacheWriteInputTokenCount``; the stream's ``metadata`` chunk carries the same;
* Meta Llama -- ``prompt_token_count`` / ``generation_token_count`` (cumulative in stream chunks);
* OpenAI-shaped bodies (``usage.prompt_tokens`` / ``completion_tokens``: gpt-oss, Jamba, DeepSeek);
* Cohere, Mistral and others report nothing in the body.

Whatever the body says, Bedrock also reports the counts outside it: the ``x-amzn-bedrock-*-token-count``
response headers of ``InvokeModel`` and the ``amazon-bedrock-invocationMetrics`` of the last stream
chunk. Those are Bedrock's own ``InputTokenCount`` / ``OutputTokenCount`` (the runtime metrics AWS
documents in "How tokens are counted in Amazon Bedrock", the counts it meters and bills), so where they
and the model's own count disagree (an Anthropic ``message_delta`` with tool use: 130 vs 98), Bedrock's
is metered and the model's is kept on the span as ``tokenmeter.usage.model_reported.*``. They fill in
whatever the body lacks; what neither reports is estimated locally.

Embedding models (Titan, Cohere, Nova multimodal embeddings, also behind an inference profile) are
recognised by their request body: an ``embeddings`` call, 0 output tokens by definition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tokenmeter._call import Request
from tokenmeter._usage import Usage
from tokenmeter._wrap import Result

from ._anthropic_usage import Counts, MessageEvents, estimate_prompt, estimate_text, message_result, read_usage
from ._fields import field

_HEADERS = (
    ("input", "x-amzn-bedrock-input-token-count"),
    ("output", "x-amzn-bedrock-output-token-count"),
    ("cache_read", "x-amzn-bedrock-cache-read-input-token-count"),
    ("cache_write", "x-amzn-bedrock-cache-write-input-token-count"),
)
_METRICS = (
    ("input", "inputTokenCount"),
    ("output", "outputTokenCount"),
    ("cache_read", "cacheReadInputTokenCount"),
    ("cache_write", "cacheWriteInputTokenCount"),
)
_FIELDS = ("input", "cache_read", "cache_write", "output")
METRICS_KEY = "amazon-bedrock-invocationMetrics"


# -- usage of the various shapes ----------------------------------------------------------------


def read_bedrock_usage(counts: Counts, usage: Any) -> None:
    """Fold a Converse ``TokenUsage`` or a Nova ``usage`` (input excludes cache reads and writes)."""
    if usage is None:
        return
    counts.set("input", field(usage, "inputTokens"))
    counts.set("output", field(usage, "outputTokens"))
    counts.set("cache_read", _first(usage, "cacheReadInputTokens", "cacheReadInputTokenCount"))
    counts.set("cache_write", _first(usage, "cacheWriteInputTokens", "cacheWriteInputTokenCount"))


def counts_from_headers(headers: Any) -> Counts:
    """The ``x-amzn-bedrock-*-token-count`` headers of an InvokeModel response (numeric strings)."""
    counts = Counts()
    if isinstance(headers, Mapping):
        lowered = {str(k).lower(): v for k, v in headers.items()}
        for name, header in _HEADERS:
            counts.set(name, _header_int(lowered.get(header)))
    return counts


def counts_from_metrics(metrics: Any) -> Counts:
    """The ``amazon-bedrock-invocationMetrics`` of a stream's last chunk."""
    counts = Counts()
    for name, key in _METRICS:
        counts.set(name, field(metrics, key))
    return counts


def counts_from_body(body: Any) -> Counts:
    """The counts a parsed InvokeModel response body reports, whatever its family (empty if none)."""
    counts = Counts()
    if not isinstance(body, Mapping):
        return counts
    usage = body.get("usage")
    if isinstance(usage, Mapping):
        if "input_tokens" in usage or "output_tokens" in usage:
            read_usage(counts, usage)
        elif "inputTokens" in usage or "outputTokens" in usage:
            read_bedrock_usage(counts, usage)
        else:
            counts.set("input", usage.get("prompt_tokens"))
            counts.set("output", usage.get("completion_tokens"))
    elif "prompt_token_count" in body or "generation_token_count" in body:
        counts.set("input", body.get("prompt_token_count"))
        counts.set("output", body.get("generation_token_count"))
    return counts


def usage_from_invoke(body: Any, headers: Any = None) -> Usage | None:
    """The :class:`~tokenmeter.Usage` of an InvokeModel response: its parsed body, completed by its headers.

    ``None`` when neither reports an input or output count. Never raises.
    """
    try:
        return fill(counts_from_body(body), counts_from_headers(headers)).usage()
    except Exception:
        return None


def fill(counts: Counts, fallback: Counts) -> Counts:
    """``counts`` with every class it lacks taken from ``fallback`` (in place; returned for chaining)."""
    for name in _FIELDS:
        if getattr(counts, name) is None and getattr(fallback, name) is not None:
            setattr(counts, name, getattr(fallback, name))
    counts.malformed = counts.malformed or fallback.malformed
    return counts


# -- requests and responses ---------------------------------------------------------------------


def request_facts(body: Any) -> tuple[list[Any] | None, str | None, int | None]:
    """``(messages, prompt, max_tokens)`` of a parsed InvokeModel request body, as far as they are known."""
    if not isinstance(body, Mapping):
        return None, None, None
    messages: list[Any] | None = None
    raw = body.get("messages")
    if isinstance(raw, list):
        messages = list(raw)
        system = body.get("system")
        if isinstance(system, (str, list)):
            messages.insert(0, {"role": "system", "content": system})
    elif isinstance(body.get("message"), str):  # Cohere
        history = [{"role": "user", "content": field(m, "message")} for m in body.get("chat_history") or []]
        preamble = [{"role": "system", "content": body["preamble"]}] if isinstance(body.get("preamble"), str) else []
        messages = [*preamble, *history, {"role": "user", "content": body["message"]}]
    prompt = body.get("prompt", body.get("inputText"))
    config = body.get("inferenceConfig") or body.get("textGenerationConfig") or {}
    max_tokens = next(
        (
            v
            for v in (
                body.get("max_tokens"),
                body.get("max_gen_len"),
                field(config, "max_new_tokens"),
                field(config, "maxTokens"),
                field(config, "maxTokenCount"),
            )
            if type(v) is int
        ),
        None,
    )
    return messages, prompt if isinstance(prompt, str) else None, max_tokens


_EMBED_KEYS = frozenset({"texts", "images", "taskType", "singleEmbeddingParams", "segmentedEmbeddingParams"})


def is_embedding(model: str, body: Any) -> bool:
    """Whether an InvokeModel request body asks an embedding model (Titan, Cohere, Nova embeddings)."""
    if not isinstance(body, Mapping):
        return "embed" in model
    if _EMBED_KEYS & set(body) and "messages" not in body and "message" not in body:
        return True
    # Titan embeddings take ``inputText`` like Titan text, but never a textGenerationConfig.
    return "inputText" in body and "textGenerationConfig" not in body and ("embed" in model or "dimensions" in body)


def embedding_result(body: Any, headers: Any, request: Request) -> Result:
    """An embeddings call: input tokens from the body (Titan) or Bedrock's headers, 0 output."""
    counts = counts_from_headers(headers)
    if isinstance(body, Mapping):
        counts.set("input", body.get("inputTextTokenCount"))
    estimated = counts.input is None or counts.malformed
    tokens = counts.input if counts.input is not None else estimate_prompt(request)
    return Result(Usage(input=tokens, estimated=estimated))


def billed(counts: Counts, bedrock: Counts) -> Counts:
    """Bedrock's own counts where it reported them, the model's elsewhere; disagreements kept aside."""
    if not bedrock.reported:
        return counts
    differing = tuple(
        (name, getattr(counts, name))
        for name in ("input", "output")
        if getattr(counts, name) is not None
        and getattr(bedrock, name) is not None
        and getattr(counts, name) != getattr(bedrock, name)
    )
    merged = fill(
        Counts(
            input=bedrock.input,
            cache_read=bedrock.cache_read,
            cache_write=bedrock.cache_write,
            output=bedrock.output,
            malformed=bedrock.malformed,
        ),
        counts,
    )
    merged.reasoning = counts.reasoning
    merged.cache_write_1h = counts.cache_write_1h
    merged.processing = counts.processing
    merged.iterations = counts.iterations
    merged.model_reported = differing
    return merged


def invoke_result(data: bytes, headers: Any, request: Request) -> Result:
    """The :class:`Result` of an InvokeModel response body (bytes) and its HTTP headers."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if request.operation == "embeddings":
        return embedding_result(body, headers, request)
    if isinstance(body, Mapping) and (body.get("type") == "message" or ("stop_reason" in body and "content" in body)):
        result = message_result(body, request)  # Anthropic: also gives the response model and id
        counts = Counts()
        read_usage(counts, body.get("usage"))
        if counts.input is not None and counts.output is not None and not counts.malformed:
            metered = billed(counts, counts_from_headers(headers))
            if metered is counts:
                return result
            return replace(result, usage=metered.usage())
    counts = fill(counts_from_body(body), counts_from_headers(headers))
    usage = counts.usage(lambda: estimate_prompt(request), lambda: estimate_text(text_of_body(body), request))
    model = field(body, "model") if isinstance(body, Mapping) else None
    return Result(usage, response_model=model if isinstance(model, str) else None)


def text_of_body(body: Any) -> str:
    """The generated text in a response body or stream chunk of any family (for estimates)."""
    if not isinstance(body, Mapping):
        return ""
    parts: list[str] = []
    for key in ("generation", "text", "outputText", "completion"):
        if isinstance(body.get(key), str):
            parts.append(body[key])
    containers = [field(field(field(body, "output"), "message"), "content"), body.get("content")]
    containers += [field(r, "outputText") for r in body.get("results") or []]
    containers += [field(field(c, "message"), "content") for c in body.get("choices") or []]
    containers += [field(o, "text") for o in body.get("outputs") or []]
    for value in containers:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(field(block, "text") for block in value if isinstance(field(block, "text"), str))
    delta = field(field(body, "contentBlockDelta"), "delta")
    if isinstance(field(delta, "text"), str):
        parts.append(field(delta, "text"))
    return "".join(parts)


class InvokeStreamAccumulator:
    """``InvokeModelWithResponseStream`` chunks (``{"chunk": {"bytes": b"<json>"}}``) of any family."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.anthropic = MessageEvents()
        self.body = Counts()
        self.metrics = Counts()
        self.text: list[str] = []

    def on_chunk(self, chunk: Any) -> bool:
        data = field(field(chunk, "chunk"), "bytes")
        if not isinstance(data, (bytes, str)):
            return True
        event = json.loads(data)
        if not isinstance(event, Mapping):
            return True
        if METRICS_KEY in event:
            self.metrics = counts_from_metrics(event[METRICS_KEY])
        if isinstance(event.get("type"), str):
            self.anthropic.add(event)
            return True
        self.text.append(text_of_body(event))
        read_bedrock_usage(self.body, field(event.get("metadata"), "usage"))
        self.body.set("input", event.get("prompt_token_count"))
        self.body.set("output", event.get("generation_token_count"))
        return True

    def result(self) -> Result:
        request = self.request
        anthropic = self.anthropic
        if anthropic.counts.reported or anthropic.text:
            if not self.metrics.reported:
                return anthropic.result(request)
            model_counts = anthropic.counts if anthropic.final else replace(anthropic.counts, output=None)
            counts = billed(model_counts, self.metrics)
            text = "".join(anthropic.text)
            model = anthropic.model
        else:
            counts = fill(self.body, self.metrics) if self.metrics.reported else self.body
            text = "".join(self.text)
            model = None
        usage = counts.usage(lambda: estimate_prompt(request), lambda: estimate_text(text, request))
        return Result(usage, response_model=model)


def _first(obj: Any, *names: str) -> Any:
    for name in names:
        value = field(obj, name)
        if value is not None:
            return value
    return None


def _header_int(value: Any) -> Any:
    if isinstance(value, str):
        stripped = value.strip()
        # ASCII digits only ("²".isdigit() is true), and never a number too long to be a count.
        if stripped.isascii() and stripped.isdigit() and len(stripped) <= 12:
            return int(stripped)
        return None if not stripped else stripped
    return value
