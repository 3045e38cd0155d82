"""Scenario driver: the ``anthropic`` SDK's Messages API against the fake's Anthropic wire format.

``call(stream=True)`` reads ``messages.create(stream=True)``'s raw events; ``stream_close`` uses the
``messages.stream()`` helper and its context manager, so the suite covers both stream paths. Anthropic
reports thinking inside ``output_tokens`` (the fake sends no ``output_tokens_details``), so the
reasoning scenario does not apply: thinking is covered in ``test_anthropic_specific.py``.
"""

from __future__ import annotations

from typing import Any

import anthropic

from tokenmeter import Usage
from tokenmeter.testing.fakes import Reply

from . import API_KEY, PROMPT, TOOL_NAME, TOOL_SCHEMA

MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": PROMPT}]
TOOLS: list[dict[str, Any]] = [{"name": TOOL_NAME, "description": "Weather", "input_schema": TOOL_SCHEMA}]


def anthropic_expected(reply: Reply) -> Usage:
    """Anthropic's classes of a Reply: cache reads/writes beside input; thinking inside output."""
    return Usage(
        input=reply.input_tokens or 0,
        cache_read=reply.cached_tokens,
        cache_write=reply.cache_write_tokens,
        output=(reply.output_tokens or 0) + reply.reasoning_tokens,
    )


def kwargs_for(model: str, *, stream: bool = False, tools: bool = False) -> dict[str, Any]:
    """``messages.create`` arguments sending :data:`PROMPT`."""
    kwargs: dict[str, Any] = {"model": model, "max_tokens": 512, "messages": MESSAGES}
    if stream:
        kwargs["stream"] = True
    if tools:
        kwargs["tools"] = TOOLS
    return kwargs


def message_text(message: Any) -> str:
    """The text blocks of a Message."""
    return "".join(block.text for block in message.content if block.type == "text")


def event_text(event: Any) -> str:
    """The text of one raw stream event."""
    if event.type == "content_block_delta" and event.delta.type == "text_delta":
        return str(event.delta.text)
    return ""


class AnthropicDriver:
    """Drives ``anthropic.Anthropic`` / ``anthropic.AsyncAnthropic`` messages."""

    name = "anthropic"
    provider = "anthropic"
    model = "claude-sonnet-4-6"
    cheaper_model = "claude-haiku-4-5"
    supports = frozenset(
        {
            "cache_read",
            "cache_write",
            "tools",
            "stream",
            "stream_without_usage",
            "async",
            "early_break",
            "context_close",
            "sdk_retry",
        }
    )
    rate_limit_error: type[BaseException] = anthropic.RateLimitError
    rate_limit_error_type: str = "RateLimitError"
    server_error: type[BaseException] = anthropic.InternalServerError

    def client(self, url: str, *, max_retries: int = 0) -> Any:
        """A sync client pointed at the fake."""
        return anthropic.Anthropic(base_url=url, api_key=API_KEY, max_retries=max_retries)

    def aclient(self, url: str, *, max_retries: int = 0) -> Any:
        """An async client pointed at the fake."""
        return anthropic.AsyncAnthropic(base_url=url, api_key=API_KEY, max_retries=max_retries)

    def call(self, client: Any, *, model: str, stream: bool = False, tools: bool = False) -> str:
        """One ``messages.create``; a stream is read to the end."""
        response = client.messages.create(**kwargs_for(model, stream=stream, tools=tools))
        if not stream:
            return message_text(response)
        return "".join(event_text(event) for event in response)

    async def acall(self, client: Any, *, model: str, stream: bool = False, tools: bool = False) -> str:
        """One async ``messages.create``; a stream is read to the end."""
        response = await client.messages.create(**kwargs_for(model, stream=stream, tools=tools))
        if not stream:
            return message_text(response)
        return "".join([event_text(event) async for event in response])

    def stream_break(self, client: Any, *, model: str) -> None:
        """Read one raw event, then abandon the stream."""
        for _event in client.messages.create(**kwargs_for(model, stream=True)):
            break

    def stream_close(self, client: Any, *, model: str) -> None:
        """Read one text piece from the ``messages.stream()`` helper, then leave its ``with`` block."""
        with client.messages.stream(**kwargs_for(model)) as stream:
            for _text in stream.text_stream:
                break

    def expected(self, reply: Reply) -> Usage:
        """See :func:`anthropic_expected`."""
        return anthropic_expected(reply)


DRIVER = AnthropicDriver()
