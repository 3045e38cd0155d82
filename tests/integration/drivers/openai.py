"""Scenario driver: the ``openai`` SDK's Chat Completions API against the fake's OpenAI wire format.

Streams are read the way most applications read them -- ``chunk.choices[0].delta.content`` -- and
without ``stream_options``, so the scenarios also prove that the integration's injected usage chunk
(``include_usage``) is metered and hidden from the caller.
"""

from __future__ import annotations

from typing import Any

import openai

from tokenmeter import Usage
from tokenmeter.testing.fakes import Reply

from . import API_KEY, PROMPT, TOOL_NAME, TOOL_SCHEMA

MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": PROMPT}]
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {"name": TOOL_NAME, "description": "Weather", "parameters": TOOL_SCHEMA}}
]


def openai_expected(reply: Reply) -> Usage:
    """OpenAI reports every disjoint class of a Reply (prompt/completion totals are split back)."""
    return Usage(
        input=reply.input_tokens or 0,
        cache_read=reply.cached_tokens,
        cache_write=reply.cache_write_tokens,
        output=reply.output_tokens or 0,
        reasoning=reply.reasoning_tokens,
    )


def _kwargs(model: str, stream: bool, tools: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": model, "messages": MESSAGES}
    if stream:
        kwargs["stream"] = True
    if tools:
        kwargs["tools"] = TOOLS
    return kwargs


def _text(response: Any) -> str:
    return response.choices[0].message.content or ""


def _chunk_text(chunk: Any) -> str:
    return chunk.choices[0].delta.content or ""  # IndexError if an injected usage-only chunk leaked through


class OpenAIDriver:
    """Drives ``openai.OpenAI`` / ``openai.AsyncOpenAI`` chat completions."""

    name = "openai"
    provider = "openai"
    model = "gpt-4o"
    reasoning_model = "o4-mini"
    cheaper_model = "gpt-4o-mini"
    stream_usage_injected = True
    supports = frozenset(
        {
            "cache_read",
            "cache_write",
            "reasoning",
            "tools",
            "stream",
            "stream_without_usage",
            "async",
            "early_break",
            "context_close",
            "sdk_retry",
        }
    )
    rate_limit_error: type[BaseException] = openai.RateLimitError
    rate_limit_error_type: str = "RateLimitError"
    server_error: type[BaseException] = openai.InternalServerError

    def client(self, url: str, *, max_retries: int = 0) -> Any:
        """A sync client pointed at the fake."""
        return openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=max_retries)

    def aclient(self, url: str, *, max_retries: int = 0) -> Any:
        """An async client pointed at the fake."""
        return openai.AsyncOpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=max_retries)

    def call(self, client: Any, *, model: str, stream: bool = False, tools: bool = False) -> str:
        """One chat completion; a stream is read to the end."""
        response = client.chat.completions.create(**_kwargs(model, stream, tools))
        if not stream:
            return _text(response)
        return "".join(_chunk_text(chunk) for chunk in response)

    async def acall(self, client: Any, *, model: str, stream: bool = False, tools: bool = False) -> str:
        """One async chat completion; a stream is read to the end."""
        response = await client.chat.completions.create(**_kwargs(model, stream, tools))
        if not stream:
            return _text(response)
        return "".join([_chunk_text(chunk) async for chunk in response])

    def stream_break(self, client: Any, *, model: str) -> None:
        """Read one chunk, then abandon the stream."""
        for chunk in client.chat.completions.create(**_kwargs(model, True, False)):
            _chunk_text(chunk)
            break

    def stream_close(self, client: Any, *, model: str) -> None:
        """Read one chunk inside the stream's ``with`` block."""
        with client.chat.completions.create(**_kwargs(model, True, False)) as stream:
            next(iter(stream))

    def expected(self, reply: Reply) -> Usage:
        """See :func:`openai_expected`."""
        return openai_expected(reply)


DRIVER = OpenAIDriver()
