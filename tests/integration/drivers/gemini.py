"""Scenario driver: the ``google-genai`` SDK's ``generate_content`` against the fake's Gemini wire format.

Gemini reports cache reads (inside ``promptTokenCount``) and thoughts (beside ``candidatesTokenCount``)
but no cache writes: a scripted cache write is billed as plain input. Streams always carry usage
metadata, so a stream without it is metered estimated. Sync streams are generators: ``close()`` is the
way to leave one early.
"""

from __future__ import annotations

from typing import Any

from google import genai
from google.genai import errors, types

from tokenmeter import Usage
from tokenmeter.testing.fakes import Reply

from . import API_KEY, PROMPT, TOOL_NAME, TOOL_SCHEMA


def gemini_expected(reply: Reply) -> Usage:
    """Gemini's classes of a Reply: a cache write is indistinguishable from input."""
    return Usage(
        input=(reply.input_tokens or 0) + reply.cache_write_tokens,
        cache_read=reply.cached_tokens,
        output=reply.output_tokens or 0,
        reasoning=reply.reasoning_tokens,
    )


def gemini_client(url: str, *, max_retries: int = 0, vertexai: bool = False) -> genai.Client:
    """A client pointed at the fake; SDK retries (if any) wait no time."""
    retry = types.HttpRetryOptions(attempts=max_retries + 1, initial_delay=0.0, max_delay=0.0, jitter=0.0)
    options = types.HttpOptions(base_url=url, api_version="v1beta", retry_options=retry)
    return genai.Client(api_key=API_KEY, vertexai=vertexai, http_options=options)


def _config(tools: bool) -> types.GenerateContentConfig | None:
    if not tools:
        return None
    declaration = types.FunctionDeclaration(name=TOOL_NAME, description="Weather", parameters_json_schema=TOOL_SCHEMA)
    return types.GenerateContentConfig(tools=[types.Tool(function_declarations=[declaration])])


def response_text(response: Any) -> str:
    """The visible (non-thought) text of a response or stream chunk."""
    candidates = response.candidates or []
    parts = (candidates[0].content.parts or []) if candidates and candidates[0].content else []
    return "".join(p.text for p in parts if p.text and not p.thought)


class GeminiDriver:
    """Drives ``genai.Client().models`` / ``.aio.models`` (Gemini Developer API mode)."""

    name = "gemini"
    provider = "gcp.gemini"
    model = "gemini-2.5-flash"
    cheaper_model = "gemini-2.5-flash-lite"
    supports = frozenset(
        {
            "cache_read",
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
    rate_limit_error: type[BaseException] = errors.ClientError
    rate_limit_error_type: str = "429"
    server_error: type[BaseException] = errors.ServerError

    def client(self, url: str, *, max_retries: int = 0) -> Any:
        """A sync client (``client.models``)."""
        return gemini_client(url, max_retries=max_retries)

    def aclient(self, url: str, *, max_retries: int = 0) -> Any:
        """The same client: :meth:`acall` uses ``client.aio`` (collecting the client would close its transport)."""
        return gemini_client(url, max_retries=max_retries)

    def call(self, client: Any, *, model: str, stream: bool = False, tools: bool = False) -> str:
        """One ``generate_content``; a stream is read to the end."""
        if not stream:
            return response_text(client.models.generate_content(model=model, contents=PROMPT, config=_config(tools)))
        chunks = client.models.generate_content_stream(model=model, contents=PROMPT, config=_config(tools))
        return "".join(response_text(chunk) for chunk in chunks)

    async def acall(self, client: Any, *, model: str, stream: bool = False, tools: bool = False) -> str:
        """One async ``generate_content``; a stream is read to the end."""
        if not stream:
            response = await client.aio.models.generate_content(model=model, contents=PROMPT, config=_config(tools))
            return response_text(response)
        chunks = await client.aio.models.generate_content_stream(model=model, contents=PROMPT, config=_config(tools))
        return "".join([response_text(chunk) async for chunk in chunks])

    def stream_break(self, client: Any, *, model: str) -> None:
        """Read one chunk, then abandon the stream."""
        for chunk in client.models.generate_content_stream(model=model, contents=PROMPT):
            response_text(chunk)
            break

    def stream_close(self, client: Any, *, model: str) -> None:
        """Read one chunk, then ``close()`` the stream (a generator: it has no context manager)."""
        stream = client.models.generate_content_stream(model=model, contents=PROMPT)
        next(stream)
        stream.close()

    def expected(self, reply: Reply) -> Usage:
        """See :func:`gemini_expected`."""
        return gemini_expected(reply)


DRIVER = GeminiDriver()
