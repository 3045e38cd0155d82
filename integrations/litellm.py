"""LiteLLM: meter ``litellm.completion`` / ``acompletion`` (plain and ``stream=True``) and ``embedding`` /
``aembedding``.

The provider comes from LiteLLM's model prefix or ``custom_llm_provider`` (``openai/gpt-4o`` -> ``openai``,
``anthropic/claude-...`` -> ``anthropic``, ``bedrock/...`` -> ``aws.bedrock``) and the metered model is
the bare model. A call is metered once, here: when LiteLLM drives another instrumented SDK underneath
(the ``openai`` SDK for OpenAI-compatible providers), the outermost integration wins.

LiteLLM normalizes every provider's usage to OpenAI's shape (``prompt_tokens`` includes cache reads and
writes, ``completion_tokens`` includes reasoning), so the OpenAI integration's readers split it. Streams
carry usage only when asked: unless the caller asked, tokenmeter adds ``stream_options={"include_usage":
True}`` (option ``inject_stream_usage``) and hides the usage-only chunk LiteLLM then emits last.

Only the ``litellm`` module's attributes are patched; code that imported ``completion`` from it before
``instrument()`` keeps the unpatched function.
"""

from __future__ import annotations

import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import tokenmeter
from tokenmeter import Request, Usage
from tokenmeter._patch import Patcher
from tokenmeter._wrap import Result, StreamAccumulator, async_wrapper, sync_wrapper

from ._content_out import chat_delta, chat_output
from ._fields import count, field, nonempty
from ._openai_streams import REJECTED_HOSTS, ChatStream, stream_options_rejected
from ._openai_usage import (
    OpenAIRequest,
    chat_text,
    combine,
    read,
    read_embeddings,
    settle,
    text_inputs,
    with_reported_cost,
)

PROVIDER = "litellm"
"""Fallback ``gen_ai.provider.name`` when LiteLLM cannot tell which provider serves a model."""

EXTRA = "litellm"
"""The pip extra that installs the SDK: ``pip install 'tokenmeter[litellm]'``."""

SDK_MODULE = "litellm"
"""The SDK's import name."""

# LiteLLM provider ids -> OpenTelemetry ``gen_ai.provider.name`` values (others are kept as LiteLLM names them).
PROVIDER_NAMES: dict[str, str] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral": "mistral_ai",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}


@dataclass
class LiteLLMRequest(OpenAIRequest):
    """An OpenAI-style request plus the LiteLLM provider prefix the caller's model carried."""

    prefix: str | None = None
    caller_model: str = ""  # the bare model the caller asked for (``model`` may be rewritten by a policy)


def usage_from_litellm(usage: Any) -> Usage | None:
    """A LiteLLM ``Usage`` (``ModelResponse.usage``, a stream's last chunk) -> :class:`Usage`.

    ``prompt_tokens`` includes ``prompt_tokens_details.cached_tokens`` and ``cache_write_tokens``;
    ``completion_tokens`` includes ``completion_tokens_details.reasoning_tokens``. Anthropic-style
    ``cache_read_input_tokens`` / ``cache_creation_input_tokens`` stand in for missing details. A malformed
    count is treated as missing (a missing half counts 0, flagged estimated); ``None`` when there is none.
    """
    return combine(read(_openai_shaped(usage)))


def usage_from_embedding(usage: Any) -> Usage | None:
    """A LiteLLM ``EmbeddingResponse.usage`` (``prompt_tokens``) -> :class:`Usage` of input tokens."""
    return combine(read_embeddings(_openai_shaped(usage)))


def _openai_shaped(usage: Any) -> Any:
    """The usage in OpenAI's field names; ``None`` for LiteLLM's stand-in for an absent usage (all zeros)."""
    if usage is None or (field(usage, "prompt_tokens") == 0 and not field(usage, "completion_tokens")):
        return None
    details = field(usage, "prompt_tokens_details")
    cached = count(field(details, "cached_tokens"))
    written = count(field(details, "cache_write_tokens"))
    if cached is not None and written is not None:
        return usage
    if cached is None:
        cached = count(field(usage, "cache_read_input_tokens"))
    if written is None:
        written = count(field(details, "cache_creation_tokens"))
    if written is None:
        written = count(field(usage, "cache_creation_input_tokens"))
    return {
        "prompt_tokens": field(usage, "prompt_tokens"),
        "completion_tokens": field(usage, "completion_tokens"),
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "completion_tokens_details": field(usage, "completion_tokens_details"),
    }


def provider_and_model(
    model: str, custom_llm_provider: Any = None, api_base: Any = None
) -> tuple[str, str, str | None]:
    """``(gen_ai.provider.name, bare model, LiteLLM prefix or None)`` of a LiteLLM model string."""
    prefix = None
    bare = model
    head, sep, tail = model.partition("/")
    litellm = sys.modules.get("litellm")
    known = getattr(litellm, "provider_list", None) or ()
    if sep and head in known:
        prefix, bare = head, tail
    provider = custom_llm_provider if isinstance(custom_llm_provider, str) and custom_llm_provider else prefix
    if provider is None and litellm is not None:
        try:
            bare, provider, _, _ = litellm.get_llm_provider(model=model, api_base=api_base)
        except Exception:  # LiteLLM does not know the model: metered under the fallback name
            provider = None
    name = PROVIDER_NAMES.get(provider, provider) if isinstance(provider, str) else PROVIDER
    return name, bare, prefix


def _inject_enabled() -> bool:
    meter = tokenmeter.active()
    return meter is not None and bool(meter.options.inject_stream_usage)


class _Endpoint:
    """What ``completion`` and ``embedding`` share: provider, model, server, and sending a rewritten model."""

    operation = "chat"

    def request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LiteLLMRequest:
        model = kwargs["model"] if "model" in kwargs else (args[0] if args else None)
        model = model if isinstance(model, str) else "unknown"
        api_base = kwargs.get("api_base") or kwargs.get("base_url")
        provider, bare, prefix = provider_and_model(model, kwargs.get("custom_llm_provider"), api_base)
        host = port = None
        if isinstance(api_base, str):
            split = urllib.parse.urlsplit(api_base)
            host, port = split.hostname, split.port
        request = LiteLLMRequest(
            provider=provider,
            model=bare,
            operation=self.operation,
            stream=kwargs.get("stream") is True,
            server_address=host,
            server_port=port,
            prefix=prefix,
            caller_model=bare,
        )
        self.describe(request, args, kwargs)
        return request

    def describe(self, request: LiteLLMRequest, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Fill in the prompt, limits and stream options of this endpoint."""

    def prepare(
        self, request: Request, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if isinstance(request, LiteLLMRequest) and request.model != request.caller_model:
            prefix = request.prefix
            rewritten = request.model if "/" in request.model or prefix is None else f"{prefix}/{request.model}"
            if "model" in kwargs:
                kwargs = {**kwargs, "model": rewritten}
            else:
                args = (rewritten, *args[1:])
        if isinstance(request, OpenAIRequest) and request.inject_usage:
            options = kwargs.get("stream_options")
            kwargs = {**kwargs, "stream_options": {**(options or {}), "include_usage": True}}
        return args, kwargs

    def result(self, response: Any, request: Request) -> Result | StreamAccumulator:
        raise NotImplementedError


class _Completion(_Endpoint):
    """``litellm.completion`` / ``acompletion``: a ``ModelResponse``, or a ``CustomStreamWrapper``."""

    output_messages = staticmethod(chat_output)  # capture_content only
    stream_text = staticmethod(chat_delta)

    def describe(self, request: LiteLLMRequest, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        messages = kwargs["messages"] if "messages" in kwargs else (args[1] if len(args) > 1 else None)
        if isinstance(messages, (list, tuple)):  # never consume a caller's iterator
            request.messages = messages
            request.estimate_input = messages
        for key in ("max_completion_tokens", "max_tokens"):
            if count(kwargs.get(key)):
                request.max_tokens = kwargs[key]
                break
        options = kwargs.get("stream_options")
        asked = isinstance(options, Mapping) and options.get("include_usage") is True
        request.inject_usage = request.stream and not asked and _inject_enabled()
        if request.inject_usage and (request.server_address, request.server_port) in REJECTED_HOSTS:
            request.inject_usage = False

    def resend(
        self, error: BaseException, request: Request, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, tuple[Any, ...], dict[str, Any]] | None:
        """The caller's own arguments when the server rejected the ``stream_options`` tokenmeter added."""
        if not isinstance(request, LiteLLMRequest) or not stream_options_rejected(request, error):
            return None
        return ("stream_options_rejected", *self.prepare(request, args, kwargs))

    def result(self, response: Any, request: Request) -> Result | StreamAccumulator:
        if not isinstance(request, LiteLLMRequest):  # only ever built by request() above
            return Result(None)
        if hasattr(response, "__next__") or hasattr(response, "__anext__"):  # CustomStreamWrapper
            return _Stream(request, response)
        choices = field(response, "choices")
        usage = settle(read(_openai_shaped(field(response, "usage"))), request, lambda: chat_text(choices))
        usage = with_reported_cost(usage, field(getattr(response, "_hidden_params", None), "response_cost"))
        finish = [r for r in (field(c, "finish_reason") for c in choices or ()) if isinstance(r, str)]
        return Result(usage, nonempty(field(response, "model")), nonempty(field(response, "id")), finish or None)


class _Stream(ChatStream):
    """A ``CustomStreamWrapper``: its injected usage arrives in a last chunk with one empty choice.

    When the provider streamed no usage, LiteLLM still emits a usage chunk, counted by itself; the
    wrapper's ``chunks`` (the provider's chunks it kept) tell the two apart, and its own count is
    replaced by tokenmeter's, flagged estimated.
    """

    def __init__(self, request: OpenAIRequest, wrapper: Any) -> None:
        super().__init__(request)
        self.wrapper = wrapper

    def on_chunk(self, chunk: Any) -> bool:
        # After the finish, an empty chunk exists only because include_usage was asked (LiteLLM emits one even
        # when the server sent no usage): hidden like the usage chunk itself.
        hide = (
            self.request.inject_usage
            and _empty(field(chunk, "choices"))
            and (field(chunk, "usage") is not None or bool(self.finish))
        )
        return super().on_chunk(chunk) and not hide

    def result(self) -> Result:
        kept = getattr(self.wrapper, "chunks", None)
        provider_reported = not isinstance(kept, list) or any(field(c, "usage") is not None for c in kept)
        usage = self.usage if provider_reported else None
        usage = settle(read(_openai_shaped(usage)), self.request, "".join(self.parts))
        return Result(usage, self.model, self.response_id, self.finish or None)


def _empty(choices: Any) -> bool:
    for choice in choices or ():
        delta = field(choice, "delta")
        if field(choice, "finish_reason") or field(delta, "content") or field(delta, "tool_calls"):
            return False
    return True


class _Embedding(_Endpoint):
    """``litellm.embedding`` / ``aembedding``: ``prompt_tokens`` only."""

    operation = "embeddings"

    def describe(self, request: LiteLLMRequest, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        request.estimate_input = text_inputs(kwargs.get("input"))

    def result(self, response: Any, request: Request) -> Result:
        if not isinstance(request, LiteLLMRequest):
            return Result(None)
        reported = read_embeddings(_openai_shaped(field(response, "usage")))
        return Result(settle(reported, request, ""), nonempty(field(response, "model")))


_patcher = Patcher()
_patcher.add("litellm", "completion", sync_wrapper(_Completion()))
_patcher.add("litellm", "acompletion", async_wrapper(_Completion()))
_patcher.add("litellm", "embedding", sync_wrapper(_Embedding()))
_patcher.add("litellm", "aembedding", async_wrapper(_Embedding()))


def instrument() -> None:
    """Meter LiteLLM completions and embeddings (idempotent; import order does not matter)."""
    _patcher.apply()


def uninstrument() -> None:
    """Restore LiteLLM's original functions (idempotent)."""
    _patcher.restore()


__all__ = [
    "EXTRA",
    "PROVIDER",
    "PROVIDER_NAMES",
    "SDK_MODULE",
    "LiteLLMRequest",
    "instrument",
    "provider_and_model",
    "uninstrument",
    "usage_from_embedding",
    "usage_from_litellm",
]
