"""AWS Bedrock Runtime through ``boto3`` / ``botocore``: Converse, ConverseStream, InvokeModel (+ stream).

botocore generates client classes at runtime, so the patch sits on ``BaseClient._make_api_call``, which
every operation of every AWS client goes through. Anything but the four Bedrock Runtime operations
passes straight through after one set lookup on the operation name. botocore's retries happen inside
``_make_api_call``, so a call retried by the SDK is metered once.

Usage mapping:

* Converse / ConverseStream ``usage``: ``inputTokens`` excludes cache reads and writes, so
  ``input`` = ``inputTokens``, ``cache_read`` = ``cacheReadInputTokens``, ``cache_write`` =
  ``cacheWriteInputTokens``, ``output`` = ``outputTokens`` (reasoning included: Bedrock does not report
  it separately, so ``reasoning`` is 0). The stream reports usage in its ``metadata`` event.
* InvokeModel: the body depends on the model family (see ``_bedrock_bodies``); whatever the body lacks
  comes from the ``x-amzn-bedrock-*-token-count`` headers (stream: the last chunk's
  ``amazon-bedrock-invocationMetrics``). Reading the response ``body`` consumes it, so the caller gets
  an equivalent ``StreamingBody`` over the same bytes.

Streams (``response["stream"]`` / ``response["body"]``) are replaced by proxies that meter once, on
exhaustion, ``close()``, an error or garbage collection. A policy's model rewrite is sent as ``modelId``.
Model ids are kept as given (ARNs, inference profiles such as ``us.anthropic...``): the price table
resolves them. Anthropic's own ``AnthropicBedrock`` client does not use botocore's clients; the
``anthropic`` integration meters it. Known gap: aiobotocore and ``InvokeModelWithBidirectionalStream``
are not metered.
"""

from __future__ import annotations

import io
import json
import urllib.parse
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from tokenmeter._call import Request
from tokenmeter._patch import Patcher
from tokenmeter._usage import Usage
from tokenmeter._wrap import Result, sync_wrapper

from ._anthropic_usage import Counts, estimate_prompt, estimate_text
from ._bedrock_bodies import (
    InvokeStreamAccumulator,
    invoke_result,
    is_embedding,
    read_bedrock_usage,
    request_facts,
    usage_from_invoke,
)
from ._content_out import converse_delta, converse_output, invoke_delta, invoke_output
from ._fields import field, nonempty

PROVIDER = "aws.bedrock"
"""``gen_ai.provider.name`` of Bedrock."""

EXTRA = "bedrock"
"""The pip extra that installs the SDK: ``pip install 'tokenmeter[bedrock]'``."""

SDK_MODULE = "botocore"
"""The SDK's import name (``boto3`` builds on it)."""

SERVICE = "bedrock-runtime"
_STREAM_KEYS = {"ConverseStream": "stream", "InvokeModelWithResponseStream": "body"}

__all__ = [
    "EXTRA",
    "PROVIDER",
    "SDK_MODULE",
    "instrument",
    "uninstrument",
    "usage_from_converse",
    "usage_from_headers",
    "usage_from_invoke",
]


def usage_from_converse(response: Any) -> Usage | None:
    """The :class:`Usage` of a Converse response (or its ``usage``, or a ConverseStream ``metadata`` event).

    ``None`` when no usable input or output count was reported; a malformed field (string, negative,
    ``None``) counts as missing and flags the usage estimated. Never raises.
    """
    try:
        usage = response if field(response, "inputTokens") is not None else field(response, "usage")
        counts = Counts()
        read_bedrock_usage(counts, usage)
        return counts.usage()
    except Exception:
        return None


def usage_from_headers(headers: Any) -> Usage | None:
    """The :class:`Usage` of an InvokeModel response's ``x-amzn-bedrock-*-token-count`` headers."""
    return usage_from_invoke(None, headers)


# -- requests -----------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _address(endpoint_url: str) -> tuple[str | None, int | None]:
    split = urllib.parse.urlsplit(endpoint_url)
    return split.hostname, split.port


def _params(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    params = args[1] if len(args) > 1 else kwargs.get("api_params")
    return params if isinstance(params, dict) else {}


def _with_params(
    args: tuple[Any, ...], kwargs: dict[str, Any], params: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if len(args) > 1:
        return (args[0], params, *args[2:]), kwargs
    return args, {**kwargs, "api_params": params}


class _Operation:
    """One Bedrock Runtime operation: request facts from its parameters, usage from its response."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.converse = operation.startswith("Converse")
        self.stream = operation in _STREAM_KEYS

    def request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        params = _params(args, kwargs)
        if self.converse:
            messages: list[Any] | None = list(params["messages"]) if isinstance(params.get("messages"), list) else None
            if messages is not None and isinstance(params.get("system"), list):
                messages.insert(0, {"role": "system", "content": params["system"]})
            max_tokens, prompt = field(params.get("inferenceConfig"), "maxTokens"), None
            operation = "chat"
        else:
            body = params.get("body")
            parsed = json.loads(body) if isinstance(body, (bytes, str)) and body else None
            messages, prompt, max_tokens = request_facts(parsed)
            operation = "embeddings" if is_embedding(str(params.get("modelId", "")), parsed) else "chat"
        host, port = _address(str(getattr(getattr(instance, "meta", None), "endpoint_url", "")))
        return Request(
            provider=PROVIDER,
            model=str(params["modelId"]),
            operation=operation,
            max_tokens=max_tokens if type(max_tokens) is int else None,
            messages=messages,
            prompt=prompt,
            stream=self.stream,
            server_address=host,
            server_port=port,
        )

    def prepare(
        self, request: Request, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        params = _params(args, kwargs)
        if params.get("modelId") != request.model:
            return _with_params(args, kwargs, {**params, "modelId": request.model})
        return args, kwargs

    def output_messages(self, response: Any) -> list[dict[str, Any]]:  # capture_content only
        return converse_output(response) if self.converse else invoke_output(response)

    def stream_text(self, chunk: Any) -> str | None:  # capture_content only
        return converse_delta(chunk) if self.converse else invoke_delta(chunk)

    def error_type(self, error: BaseException) -> str | None:
        # botocore's ClientError carries the service's error code (ThrottlingException, ValidationException...).
        return nonempty(field(field(getattr(error, "response", None), "Error"), "Code"))

    def result(self, response: Any, request: Request) -> Result | _ConverseStream | InvokeStreamAccumulator:
        if self.stream:  # ``response`` is the event stream taken out of the response dict (see _stream_call)
            if response is None:
                return Result(None)
            return _ConverseStream(request) if self.converse else InvokeStreamAccumulator(request)
        if self.converse:
            return _converse_result(response, request)
        return _invoke_result(response, request)


def _converse_result(response: Any, request: Request) -> Result:
    counts = Counts()
    read_bedrock_usage(counts, field(response, "usage"))
    content = field(field(field(response, "output"), "message"), "content")
    text = "".join(t for t in (field(b, "text") for b in content or []) if isinstance(t, str))
    usage = counts.usage(lambda: estimate_prompt(request), lambda: estimate_text(text, request))
    stop = field(response, "stopReason")
    return Result(usage, finish_reasons=[stop] if isinstance(stop, str) else None)


def _invoke_result(response: Any, request: Request) -> Result:
    from botocore.response import StreamingBody

    try:
        data: bytes = response["body"].read()
    except Exception as exc:  # the caller's own read must fail the same way, not see a drained body
        response["body"] = StreamingBody(_Failing(exc), None)
        raise
    response["body"] = StreamingBody(io.BytesIO(data), len(data))  # the caller reads the same bytes
    headers = field(response.get("ResponseMetadata"), "HTTPHeaders")
    return invoke_result(data, headers, request)


class _Failing(io.RawIOBase):
    """A raw stream whose every read raises the error reading the real body raised."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def read(self, size: int = -1) -> bytes:
        raise self.error


class _ConverseStream:
    """ConverseStream events: text and reasoning deltas, ``messageStop`` and the ``metadata`` usage."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.counts = Counts()
        self.text: list[str] = []
        self.stop: str | None = None

    def on_chunk(self, chunk: Any) -> bool:
        if not isinstance(chunk, Mapping):
            return True
        delta = field(chunk.get("contentBlockDelta"), "delta")
        if delta is not None:
            for piece in (field(delta, "text"), field(field(delta, "reasoningContent"), "text")):
                if isinstance(piece, str):
                    self.text.append(piece)
            tool_input = field(field(delta, "toolUse"), "input")
            if isinstance(tool_input, str):
                self.text.append(tool_input)
        elif "metadata" in chunk:
            read_bedrock_usage(self.counts, field(chunk["metadata"], "usage"))
        elif "messageStop" in chunk:
            stop = field(chunk["messageStop"], "stopReason")
            self.stop = stop if isinstance(stop, str) else None
        return True

    def result(self) -> Result:
        request, text = self.request, "".join(self.text)
        usage = self.counts.usage(lambda: estimate_prompt(request), lambda: estimate_text(text, request))
        return Result(usage, finish_reasons=[self.stop] if self.stop else None)


# -- the patch ----------------------------------------------------------------------------------

_METERED: dict[str, Callable[..., Any]] = {
    op: sync_wrapper(_Operation(op))
    for op in ("Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream")
}


def _stream_call(
    metered: Callable[..., Any], key: str, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    """Meter a streaming operation: the core proxies the event stream, which goes back into the response."""
    responses: list[Any] = []

    def send(*a: Any, **kw: Any) -> Any:
        response = wrapped(*a, **kw)
        responses.append(response)
        return response.get(key) if isinstance(response, dict) else None

    stream = metered(send, instance, args, kwargs)
    response = responses[0]
    if isinstance(response, dict) and stream is not None:
        response[key] = stream
    return response


def _make_api_call(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    operation = args[0] if args else kwargs.get("operation_name")
    metered = _METERED.get(operation) if isinstance(operation, str) else None
    if metered is None or not isinstance(operation, str) or _service(instance) != SERVICE:
        return wrapped(*args, **kwargs)
    key = _STREAM_KEYS.get(operation)
    if key is not None:
        return _stream_call(metered, key, wrapped, instance, args, kwargs)
    return metered(wrapped, instance, args, kwargs)


def _service(client: Any) -> str | None:
    try:
        return str(client.meta.service_model.service_name)
    except Exception:
        return None


_patcher = Patcher()
_patcher.add("botocore.client", "BaseClient._make_api_call", _make_api_call)


def instrument() -> None:
    """Patch botocore's clients (now, or when botocore is imported). Idempotent."""
    _patcher.apply()


def uninstrument() -> None:
    """Restore botocore's original ``_make_api_call``. Idempotent."""
    _patcher.restore()
