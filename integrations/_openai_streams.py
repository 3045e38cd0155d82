"""Stream accumulators of the OpenAI integration, and the close hooks of the SDK's streaming helpers.

Chat Completions streams report usage only when asked (``stream_options.include_usage``), in one
extra chunk whose ``choices`` is empty. When tokenmeter injected that option, the chunk is hidden so
``chunk.choices[0]`` loops keep working; when the caller asked for it, the caller sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from tokenmeter import _safe
from tokenmeter._streams import AsyncMeteredStream, MeteredStream
from tokenmeter._wrap import Result

from ._fields import ABSENT, AttributeView, field
from ._openai_usage import OpenAIRequest, Reported, read, read_responses, settle_served

_FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_log = logging.getLogger("tokenmeter")

REJECTED_HOSTS: set[tuple[str | None, int | None]] = set()
"""Servers (host, port) that answered ``stream_options`` with a 400: never sent it again in this process."""
_MAX_REJECTED_HOSTS = 1024


def rejects_stream_options(error: BaseException) -> bool:
    """Whether ``error`` is a client error (400/422) whose message names ``stream_options``."""
    if getattr(error, "status_code", None) not in (400, 422):
        return False
    text = str(error)
    if "stream_options" in text:
        return True
    body = getattr(error, "body", None)
    return body is not None and "stream_options" in repr(body)[:4096]


def stream_options_rejected(request: OpenAIRequest, error: BaseException) -> bool:
    """After an error: whether it rejected the ``stream_options`` tokenmeter added (the host is remembered).

    The caller then resends the request as the user wrote it; the stream is metered from a local
    estimate (flagged ``estimated``).
    """
    if not request.inject_usage or not rejects_stream_options(error):
        return False
    request.inject_usage = False
    host = (request.server_address, request.server_port)
    if host not in REJECTED_HOSTS and len(REJECTED_HOSTS) < _MAX_REJECTED_HOSTS:
        REJECTED_HOSTS.add(host)
        _log.info(
            "tokenmeter: %s:%s rejected stream_options; its streams are resent without it and their usage is "
            "estimated locally (flagged tokenmeter.usage.estimated)",
            host[0],
            host[1],
        )
    return True


class ChatStream:
    """Accumulates a Chat Completions stream: text for estimates, the usage chunk, model, id, finish.

    Runs on every chunk, so it does the least it can: the chunk's ``usage`` and ``choices``, and per
    choice its text and finish reason (attribute reads, no ``isinstance`` on the common path). Model,
    id and served tier are read once, at the end, from the last chunk (else the first). A chunk that is
    a mapping (a raw or compatible-server body) is read through an attribute view of it, so there is
    one reading path for both.
    """

    def __init__(self, request: OpenAIRequest) -> None:
        self.request = request
        self.parts: list[str] = []
        self.usage: Any = None
        self.finish: list[str] = []
        self.first: Any = None
        self.last: Any = None

    @property
    def model(self) -> str | None:
        """The response model (of the last chunk that names one, else the first)."""
        return self._said("model")

    @property
    def response_id(self) -> str | None:
        """The response id."""
        return self._said("id")

    @property
    def service_tier(self) -> str | None:
        """The tier that served the stream."""
        return self._said("service_tier")

    def _said(self, name: str) -> str | None:
        for chunk in (self.last, self.first):
            value = getattr(chunk, name, None)
            if value and isinstance(value, str):
                return value
        return None

    def on_chunk(self, chunk: Any) -> bool:
        """Record one chunk; False for the usage-only chunk tokenmeter itself asked for."""
        choices = getattr(chunk, "choices", ABSENT)
        if choices is ABSENT:  # not the SDK's chunk object: a mapping, or something without choices
            if isinstance(chunk, Mapping):
                chunk = AttributeView(chunk)
            choices = getattr(chunk, "choices", None)
        usage = getattr(chunk, "usage", None)
        try:
            self._accumulate(chunk, choices, usage)
        except Exception:
            _safe.log_once("openai.chat.chunk", "tokenmeter: reading an OpenAI stream chunk failed")
        if choices or not self.request.inject_usage:
            return True
        # A chunk without choices that the injected include_usage caused is hidden (a leaked usage-only chunk
        # breaks `chunk.choices[0]` loops): one carrying usage, or after the finish the trailing chunk some
        # servers send instead (`"usage": null`, or no usage key at all); never a chunk before the finish
        # such as Azure's leading filter chunk.
        return usage is None and not self.finish

    def _accumulate(self, chunk: Any, choices: Any, usage: Any) -> None:
        if self.first is None:
            self.first = chunk
        self.last = chunk
        if usage is not None:
            self.usage = usage
        if not choices:
            return
        parts = self.parts
        for choice in choices:
            delta = getattr(choice, "delta", None)
            if delta is not None:
                text = getattr(delta, "content", None)
                if text and isinstance(text, str):
                    parts.append(text)
                extra = getattr(delta, "refusal", None) or getattr(delta, "tool_calls", None)
                if extra:
                    self._extra(delta)
            else:
                text = getattr(choice, "text", None)  # legacy completions
                if text and isinstance(text, str):
                    parts.append(text)
            reason = getattr(choice, "finish_reason", None)
            if reason and isinstance(reason, str):
                self.finish.append(reason)

    def _extra(self, delta: Any) -> None:
        # the rarer parts of a delta: a refusal, tool call arguments
        refusal = getattr(delta, "refusal", None)
        if refusal and isinstance(refusal, str):
            self.parts.append(refusal)
        for call in getattr(delta, "tool_calls", None) or ():
            arguments = getattr(getattr(call, "function", None), "arguments", None)
            if arguments and isinstance(arguments, str):
                self.parts.append(arguments)

    def result(self) -> Result:
        """Usage from the usage chunk, else counted locally from the prompt and the streamed text."""
        usage = settle_served(read(self.usage), self.request, "".join(self.parts), {"service_tier": self.service_tier})
        return Result(usage, self.model, self.response_id, self.finish or None)


class ResponsesStream:
    """Accumulates a Responses API event stream; usage arrives with the final ``response.*`` event."""

    def __init__(self, request: OpenAIRequest) -> None:
        self.request = request
        self.parts: list[str] = []
        self.reported: Reported | None = None
        self.served: Any = None
        self.model: str | None = None
        self.response_id: str | None = None

    def on_chunk(self, event: Any) -> bool:
        """Record one event (nothing is hidden: Responses streams always carry usage)."""
        kind = field(event, "type")
        if kind in ("response.output_text.delta", "response.function_call_arguments.delta", "response.refusal.delta"):
            delta = field(event, "delta")
            if isinstance(delta, str):
                self.parts.append(delta)
            return True
        response = field(event, "response")
        if response is not None:
            model, response_id = field(response, "model"), field(response, "id")
            self.model = model if isinstance(model, str) else self.model
            self.response_id = response_id if isinstance(response_id, str) else self.response_id
            if kind in _FINAL_RESPONSE_EVENTS:
                self.reported = read_responses(field(response, "usage"))
                self.served = response
        return True

    def result(self) -> Result:
        """Usage from the final event, else counted locally."""
        usage = settle_served(self.reported, self.request, "".join(self.parts), self.served)
        return Result(usage, self.model, self.response_id)


# The SDK's ``.stream()`` helpers close only the HTTP response on ``with``-exit / ``close()``, leaving the
# metered raw stream to the garbage collector; closing the raw stream too meters the call right away.
def close_helper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``wrapt`` wrapper of a sync helper stream's ``close``."""
    try:
        return wrapped(*args, **kwargs)
    finally:
        raw = getattr(instance, "_raw_stream", None)
        if isinstance(raw, MeteredStream):
            try:
                raw.close()
            except Exception:
                _safe.log_once("openai.helper.close", "tokenmeter: closing a metered OpenAI stream failed")


async def aclose_helper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``wrapt`` wrapper of an async helper stream's ``close``."""
    try:
        return await wrapped(*args, **kwargs)
    finally:
        raw = getattr(instance, "_raw_stream", None)
        if isinstance(raw, AsyncMeteredStream):
            try:
                await raw.close()
            except Exception:
                _safe.log_once("openai.helper.aclose", "tokenmeter: closing a metered OpenAI stream failed")
