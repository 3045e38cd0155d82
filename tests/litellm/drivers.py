"""Scenario drivers for LiteLLM: the shared suite's ``Driver`` protocol, with ``litellm.completion`` as the SDK.

A "client" is the keyword arguments that point LiteLLM at the fake. Drivers get the BARE model (the one
tokenmeter meters) and add LiteLLM's provider prefix themselves: ``openai/gpt-4o`` is sent to the fake's
OpenAI wire format through the ``openai`` SDK, ``anthropic/claude-...`` through LiteLLM's own HTTP client.
LiteLLM's streams have no context manager and no synchronous ``close()``, so "context_close" is unsupported.
"""

from __future__ import annotations

from typing import Any

import litellm

from tests.integration.drivers import API_KEY, PROMPT, TOOL_NAME, TOOL_SCHEMA
from tokenmeter import Usage
from tokenmeter.testing.fakes import Reply

MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": PROMPT}]
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {"name": TOOL_NAME, "description": "Weather", "parameters": TOOL_SCHEMA}}
]


def _text(response: Any) -> str:
    return response.choices[0].message.content or ""


def _chunk_text(chunk: Any) -> str:
    return chunk.choices[0].delta.content or ""  # IndexError / AttributeError if a hidden usage chunk leaked


class LiteLLMDriver:
    """Drives ``litellm.completion`` / ``acompletion`` for one provider prefix."""

    name = "litellm"
    rate_limit_error: type[BaseException] = litellm.RateLimitError
    rate_limit_error_type: str = "RateLimitError"
    server_error: type[BaseException] = litellm.InternalServerError
    stream_usage_injected = True

    def __init__(
        self, prefix: str, provider: str, model: str, cheaper: str, path: str, supports: frozenset[str]
    ) -> None:
        self.prefix = prefix
        self.provider = provider
        self.model = model
        self.cheaper_model = cheaper
        self.path = path
        self.supports = supports

    def client(self, url: str, *, max_retries: int = 0) -> dict[str, Any]:
        """The keyword arguments that send a call to the fake."""
        return {"api_base": url + self.path, "api_key": API_KEY, "max_retries": max_retries}

    def aclient(self, url: str, *, max_retries: int = 0) -> dict[str, Any]:
        """Same as :meth:`client` (LiteLLM has no client objects)."""
        return self.client(url, max_retries=max_retries)

    def _kwargs(self, client: dict[str, Any], model: str, stream: bool, tools: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {**client, "model": f"{self.prefix}/{model}", "messages": MESSAGES}
        if stream:
            kwargs["stream"] = True
        if tools:
            kwargs["tools"] = TOOLS
        return kwargs

    def call(self, client: Any, *, model: str, stream: bool = False, tools: bool = False) -> str:
        """One ``litellm.completion``; a stream is read to the end."""
        response = litellm.completion(**self._kwargs(client, model, stream, tools))
        if not stream:
            return _text(response)
        return "".join(_chunk_text(chunk) for chunk in response)

    async def acall(self, client: Any, *, model: str, stream: bool = False, tools: bool = False) -> str:
        """One ``litellm.acompletion``; a stream is read to the end."""
        response = await litellm.acompletion(**self._kwargs(client, model, stream, tools))
        if not stream:
            return _text(response)
        return "".join([_chunk_text(chunk) async for chunk in response])

    def stream_break(self, client: Any, *, model: str) -> None:
        """Read one chunk, then abandon the stream."""
        for chunk in litellm.completion(**self._kwargs(client, model, True, False)):
            _chunk_text(chunk)
            break

    def stream_close(self, client: Any, *, model: str) -> None:
        """Unsupported: a LiteLLM stream has no context manager or synchronous ``close()``."""
        raise NotImplementedError

    def expected(self, reply: Reply) -> Usage:
        """LiteLLM reports every disjoint class of a Reply in OpenAI's overlapping shape."""
        return Usage(
            input=reply.input_tokens or 0,
            cache_read=reply.cached_tokens,
            cache_write=reply.cache_write_tokens,
            output=reply.output_tokens or 0,
            reasoning=reply.reasoning_tokens,
        )


_COMMON = frozenset({"cache_read", "cache_write", "tools", "stream", "stream_without_usage", "async", "early_break"})

OPENAI = LiteLLMDriver("openai", "openai", "gpt-4o", "gpt-4o-mini", "/v1", _COMMON | {"reasoning", "sdk_retry"})
"""``openai/...``: LiteLLM drives the ``openai`` SDK (openai<3) against the fake's OpenAI wire format."""

# Anthropic folds thinking into output_tokens (LiteLLM's reasoning split is its own estimate), LiteLLM retries
# Anthropic calls itself (num_retries) and LiteLLM 1.102 raises on an Anthropic reply without usage, so this
# driver is not in the shared suite; test_litellm_specific.py covers what it can.
ANTHROPIC = LiteLLMDriver("anthropic", "anthropic", "claude-sonnet-4-5", "claude-haiku-4-5", "", _COMMON)
"""``anthropic/...``: LiteLLM's own HTTP client against the fake's Anthropic Messages wire format."""

DRIVERS: dict[str, LiteLLMDriver] = {"litellm-openai": OPENAI}
"""The drivers the shared scenarios run with, by test id."""
