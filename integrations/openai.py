"""OpenAI and Azure OpenAI: meter the ``openai`` SDK's Chat Completions, Responses and Embeddings calls.

Tested with openai 3.x (3.54, built on ``httpx2``); the patched methods are the ones openai 1.x/2.x
also define, but only 3.x is exercised by the test suite. Patched (sync and async):

* ``chat.completions.create`` (plain and ``stream=True``) and ``chat.completions.parse``; the
  ``chat.completions.stream(...)`` helper calls ``create(stream=True)`` underneath, so it is metered
  there, exactly once;
* ``responses.create`` (plain and ``stream=True``) and ``responses.parse``; ``responses.stream(...)``
  likewise goes through ``create``;
* ``embeddings.create`` (operation ``embeddings``) and legacy ``completions.create``
  (operation ``text_completion``).

Chat streams only carry usage when asked: unless the caller asked already, tokenmeter adds
``stream_options={"include_usage": True}`` (option ``inject_stream_usage``, default on) and hides the
extra usage-only chunk, whose ``choices`` is empty, from the caller.

Clients of class ``AzureOpenAI`` / ``AsyncAzureOpenAI`` (or whose base URL is an Azure OpenAI host) are
metered as provider ``azure.ai.openai``; any other OpenAI-compatible server reached through
``base_url`` is metered as ``openai``. ``with_raw_response`` and ``with_streaming_response`` calls are
metered from what the caller reads of the body (see ``_stainless_raw``); a call that bypasses the patched
methods (a ``with_raw_response`` wrapper cached before ``instrument()``) is metered at the client's
``request``. A stream wrapped by another instrumentation's proxy is recognised as a stream.
"""

from __future__ import annotations

import urllib.parse
import weakref
from collections.abc import Mapping
from typing import Any

import tokenmeter
from tokenmeter import Request, Usage
from tokenmeter._patch import Patcher
from tokenmeter._providers import configured_provider
from tokenmeter._wrap import Result, StreamAccumulator, async_wrapper, sync_wrapper

from . import _openai_background as _background
from . import _openai_batches as _batches
from ._content_out import chat_delta, chat_output, responses_delta, responses_output
from ._fields import field, generic_status, nonempty
from ._openai_streams import (
    REJECTED_HOSTS,
    ChatStream,
    ResponsesStream,
    aclose_helper,
    close_helper,
    stream_options_rejected,
)
from ._openai_usage import (
    OpenAIRequest,
    Reported,
    chat_text,
    combine,
    read,
    read_embeddings,
    read_responses,
    responses_text,
    served,
    settle,
    settle_served,
    text_inputs,
)
from ._stainless_raw import arequest_fallback, defer, request_fallback, response_hooks

PROVIDER = "openai"
"""``gen_ai.provider.name`` of OpenAI (and OpenAI-compatible servers)."""

AZURE_PROVIDER = "azure.ai.openai"
"""``gen_ai.provider.name`` of Azure OpenAI clients."""

EXTRA = "openai"
"""The pip extra that installs the SDK: ``pip install 'tokenmeter[openai]'``."""

SDK_MODULE = "openai"
"""The SDK's top-level module."""

_RAW_HEADER = "X-Stainless-Raw-Response"
_AZURE_CLASSES = frozenset({"AzureOpenAI", "AsyncAzureOpenAI", "BaseAzureClient"})
_AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
# openai>=3 clients can be configured by a "provider" (e.g. ``openai.providers.bedrock``).
_RUNTIME_PROVIDERS = {"bedrock": "aws.bedrock", "vertex": "gcp.vertex_ai"}


def usage_from_chat(usage: Any) -> Usage | None:
    """Chat Completions (or legacy Completions) ``usage`` -> :class:`Usage`.

    ``prompt_tokens`` includes ``prompt_tokens_details.cached_tokens`` and ``completion_tokens`` includes
    ``completion_tokens_details.reasoning_tokens``; they are split into disjoint classes. A malformed
    count is treated as missing: a missing half counts 0 and the result is flagged estimated.
    ``None`` when there is no usage.
    """
    return combine(read(usage))


def usage_from_responses(usage: Any) -> Usage | None:
    """Responses API ``usage`` (``input_tokens`` / ``output_tokens`` and their details) -> :class:`Usage`."""
    return combine(read_responses(usage))


def usage_from_embeddings(usage: Any) -> Usage | None:
    """Embeddings ``usage`` (``prompt_tokens``) -> :class:`Usage` of input tokens."""
    return combine(read_embeddings(usage))


_targets: weakref.WeakKeyDictionary[Any, tuple[str, str | None, int | None]] = weakref.WeakKeyDictionary()


def provider_of(client: Any) -> str:
    """``azure.ai.openai`` for Azure OpenAI clients, the configured provider's name, else ``openai``."""
    return _target(client)[0]


def _target(client: Any) -> tuple[str, str | None, int | None]:
    try:
        return _targets[client]
    except (KeyError, TypeError):
        pass
    split = urllib.parse.urlsplit(str(getattr(client, "base_url", "") or ""))
    host, port = split.hostname, split.port
    runtime_name = getattr(getattr(client, "_provider_runtime", None), "name", None)
    if isinstance(runtime_name, str) and runtime_name in _RUNTIME_PROVIDERS:
        provider = _RUNTIME_PROVIDERS[runtime_name]
    elif any(cls.__name__ in _AZURE_CLASSES for cls in type(client).__mro__):
        provider = AZURE_PROVIDER
    elif host and host.endswith(_AZURE_HOSTS):
        provider = AZURE_PROVIDER
    else:
        provider = configured_provider(host, port) or PROVIDER
    target = (provider, host, port)
    try:
        _targets[client] = target
    except TypeError:
        pass
    return target


def _tokens_limit(*values: Any) -> int | None:
    for value in values:
        if type(value) is int and value > 0:
            return value
    return None


def _raw_mode(headers: Any) -> str | None:
    if headers is None or not isinstance(headers, Mapping):
        return None
    value = headers.get(_RAW_HEADER)
    return value if isinstance(value, str) else None


_stream_types: tuple[type, ...] = ()


def _is_stream(response: Any, request: OpenAIRequest) -> bool:
    """The SDK's stream -- or, for a stream request, any iterator standing for it (another
    instrumentation's proxy, e.g. opentelemetry-instrumentation-openai-v2's, around the SDK's stream)."""
    global _stream_types
    if not _stream_types:
        from openai import AsyncStream, Stream

        _stream_types = (Stream, AsyncStream)
    if isinstance(response, _stream_types):
        return True
    kind = type(response)
    return request.stream and (hasattr(kind, "__next__") or hasattr(kind, "__anext__"))


class _Endpoint:
    """What every OpenAI endpoint shares: the client's provider and address, the model, raw mode."""

    operation = "chat"

    def request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> OpenAIRequest:
        """The request of one call (the SDK's resource methods take keyword arguments only)."""
        provider, host, port = _target(getattr(instance, "_client", None))
        model = kwargs.get("model")
        request = OpenAIRequest(
            provider=provider,
            model=model if isinstance(model, str) else "unknown",
            operation=self.operation,
            stream=kwargs.get("stream") is True,
            server_address=host,
            server_port=port,
            raw=_raw_mode(kwargs.get("extra_headers")),
        )
        self.describe(request, kwargs)
        return request

    def describe(self, request: OpenAIRequest, kwargs: dict[str, Any]) -> None:
        """Fill in what this endpoint knows about the prompt and limits."""

    def prepare(
        self, request: Request, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Send the (possibly policy-rewritten) model and, for chat streams, ask for usage."""
        model = kwargs.get("model")
        if isinstance(model, str) and model != request.model:
            kwargs = {**kwargs, "model": request.model}
        if isinstance(request, OpenAIRequest) and request.inject_usage:
            options = kwargs.get("stream_options")
            kwargs = {**kwargs, "stream_options": {**(options or {}), "include_usage": True}}
        return args, kwargs

    def result(self, response: Any, request: Request) -> Result | StreamAccumulator:
        """Translate the response (or wrap a stream)."""
        if not isinstance(request, OpenAIRequest):  # only ever built by request() above
            return Result(None)
        if request.raw is not None:
            return self._raw(response, request)
        if _is_stream(response, request):
            return self.stream(request)
        return self.complete(response, request)

    def defer(self, response: Any, call: Any) -> bool:
        """Keep a raw response's call open until the caller reads its body (see ``_stainless_raw``)."""
        return isinstance(call.request, OpenAIRequest) and call.request.raw is not None and defer(self, response, call)

    def unread(self, request: OpenAIRequest) -> Result:
        """A raw body nobody read: the prompt counted locally, flagged estimated."""
        return Result(settle(None, request, None))

    def _raw(self, response: Any, request: OpenAIRequest) -> Result:
        # with_raw_response has read the body of a non-streamed call; anything else was deferred (defer()).
        http = getattr(response, "http_response", None)
        if request.raw == "true" and not request.stream and http is not None:
            return self.complete(http.json(), request)
        return Result(settle(None, request, None))

    def error_type(self, error: BaseException) -> str | None:
        """``error.type`` of an SDK error: the status of a generic ``APIStatusError``, else its class."""
        return generic_status(error, "APIStatusError")

    def resend(
        self, error: BaseException, request: Request, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, tuple[Any, ...], dict[str, Any]] | None:
        """The caller's own arguments when the server rejected the ``stream_options`` tokenmeter added."""
        if not isinstance(request, OpenAIRequest) or not stream_options_rejected(request, error):
            return None
        return ("stream_options_rejected", *self.prepare(request, args, kwargs))

    def stream(self, request: OpenAIRequest) -> StreamAccumulator:
        """The accumulator of this endpoint's streams."""
        return ChatStream(request)

    def complete(self, response: Any, request: OpenAIRequest) -> Result:
        """Translate a complete (non-streamed) response object or JSON body."""
        choices = field(response, "choices")
        usage = settle_served(read(field(response, "usage")), request, lambda: chat_text(choices), response)
        finish = [r for r in (field(c, "finish_reason") for c in choices or ()) if isinstance(r, str)]
        return Result(usage, nonempty(field(response, "model")), nonempty(field(response, "id")), finish or None)


def _inject_enabled() -> bool:
    meter = tokenmeter.active()
    return meter is not None and bool(meter.options.inject_stream_usage)


class _Chat(_Endpoint):
    """``chat.completions.create`` / ``parse``: messages in, choices (or chunks) out."""

    output_messages = staticmethod(chat_output)  # capture_content only
    stream_text = staticmethod(chat_delta)

    def describe(self, request: OpenAIRequest, kwargs: dict[str, Any]) -> None:
        messages = kwargs.get("messages")
        if isinstance(messages, (list, tuple)):  # never consume a caller's iterator
            request.messages = messages
            request.estimate_input = messages
        request.max_tokens = _tokens_limit(kwargs.get("max_completion_tokens"), kwargs.get("max_tokens"))
        self._decide_injection(request, kwargs)

    @staticmethod
    def _decide_injection(request: OpenAIRequest, kwargs: dict[str, Any]) -> None:
        if not request.stream or request.raw is not None or not _inject_enabled():
            return
        if REJECTED_HOSTS and (request.server_address, request.server_port) in REJECTED_HOSTS:
            return
        options = kwargs.get("stream_options")
        if not options:  # None, {}, or the SDK's omit / NOT_GIVEN sentinels (all falsy)
            request.inject_usage = True
        elif isinstance(options, Mapping) and options.get("include_usage") is not True:
            request.inject_usage = True


class _Completions(_Chat):
    """Legacy ``completions.create``: a prompt in, text choices out; usage like chat."""

    operation = "text_completion"

    def describe(self, request: OpenAIRequest, kwargs: dict[str, Any]) -> None:
        prompt = kwargs.get("prompt")
        request.prompt = prompt if isinstance(prompt, str) else None
        request.estimate_input = text_inputs(prompt)
        request.max_tokens = _tokens_limit(kwargs.get("max_tokens"))
        self._decide_injection(request, kwargs)


class _Responses(_Endpoint):
    """``responses.create`` / ``parse``: input items (+ instructions) in, output items or events out."""

    output_messages = staticmethod(responses_output)  # capture_content only
    stream_text = staticmethod(responses_delta)

    def describe(self, request: OpenAIRequest, kwargs: dict[str, Any]) -> None:
        items: list[Any] = []
        instructions = kwargs.get("instructions")
        if isinstance(instructions, str):
            items.append({"role": "system", "content": instructions})
        given = kwargs.get("input")
        if isinstance(given, str):
            request.prompt = given
            items.append({"role": "user", "content": given})
        elif isinstance(given, (list, tuple)):
            request.messages = given
            items.extend(given)
        request.estimate_input = items
        request.max_tokens = _tokens_limit(kwargs.get("max_output_tokens"))

    def stream(self, request: OpenAIRequest) -> StreamAccumulator:
        return ResponsesStream(request)

    def complete(self, response: Any, request: OpenAIRequest) -> Result:
        if _background.is_pending(response):  # no tokens yet: metered when retrieved finished
            _background.remember(response, request.provider, request.model)
            return Result(Usage(), nonempty(field(response, "model")), nonempty(field(response, "id")))
        usage = settle(
            read_responses(field(response, "usage")), request, lambda: responses_text(field(response, "output"))
        )
        usage = served(usage, response)
        return Result(usage, nonempty(field(response, "model")), nonempty(field(response, "id")))


class _Embeddings(_Endpoint):
    """``embeddings.create``: input tokens only."""

    operation = "embeddings"

    def describe(self, request: OpenAIRequest, kwargs: dict[str, Any]) -> None:
        given = kwargs.get("input")
        request.prompt = given if isinstance(given, str) else None
        request.estimate_input = text_inputs(given)

    def complete(self, response: Any, request: OpenAIRequest) -> Result:
        reported = read_embeddings(field(response, "usage")) or Reported(None, Usage())
        return Result(settle(reported, request, None), nonempty(field(response, "model")))


def _patcher() -> Patcher:
    patcher = Patcher()
    targets: list[tuple[str, str, _Endpoint]] = [
        ("openai.resources.chat.completions.completions", "Completions", _Chat()),
        ("openai.resources.responses.responses", "Responses", _Responses()),
        ("openai.resources.embeddings", "Embeddings", _Embeddings()),
        ("openai.resources.completions", "Completions", _Completions()),
    ]
    for module, cls, endpoint in targets:
        methods = ("create",) if isinstance(endpoint, (_Embeddings, _Completions)) else ("create", "parse")
        for method in methods:
            patcher.add(module, f"{cls}.{method}", sync_wrapper(endpoint))
            patcher.add(module, f"Async{cls}.{method}", async_wrapper(endpoint))
    by_path = {"/chat/completions": targets[0][2], "/responses": targets[1][2], "/embeddings": targets[2][2]}
    by_path["/completions"] = targets[3][2]
    patcher.add("openai._base_client", "SyncAPIClient.request", request_fallback(by_path))
    patcher.add("openai._base_client", "AsyncAPIClient.request", arequest_fallback(by_path))
    for module, path, hook in response_hooks("openai"):
        patcher.add(module, path, hook)
    patcher.add("openai.lib.streaming.chat._completions", "ChatCompletionStream.close", close_helper)
    patcher.add("openai.lib.streaming.chat._completions", "AsyncChatCompletionStream.close", aclose_helper)
    patcher.add("openai.lib.streaming.responses._responses", "ResponseStream.close", close_helper)
    patcher.add("openai.lib.streaming.responses._responses", "AsyncResponseStream.close", aclose_helper)
    patcher.add("openai.resources.responses.responses", "Responses.retrieve", _background.retrieve)
    patcher.add("openai.resources.responses.responses", "AsyncResponses.retrieve", _background.aretrieve)
    patcher.add("openai.resources.files", "Files.content", _batches.content)  # Batch API output files
    patcher.add("openai.resources.files", "AsyncFiles.content", _batches.acontent)
    return patcher


_PATCHER = _patcher()


def instrument() -> None:
    """Patch the ``openai`` SDK (now, or when it is imported). Idempotent."""
    _PATCHER.apply()


def uninstrument() -> None:
    """Restore the SDK's original methods. Idempotent."""
    _PATCHER.restore()


__all__ = [
    "AZURE_PROVIDER",
    "EXTRA",
    "PROVIDER",
    "SDK_MODULE",
    "instrument",
    "provider_of",
    "uninstrument",
    "usage_from_chat",
    "usage_from_embeddings",
    "usage_from_responses",
]
