"""The shared body of every patched SDK method: sync and async are thin shells around the same helpers.

An integration describes each patched method with an :class:`Endpoint` that only *translates*
(request -> :class:`Request`, response -> :class:`Result`, stream chunks -> usage). This module does
the rest: the policy gate, the "already metered" guard, never-break-the-host, and stream proxies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from . import _meter, _safe
from ._call import MeteredCall, Request, begin
from ._context import CURRENT_CALL
from ._errors import PolicyViolation
from ._usage import Usage


@dataclass(frozen=True, slots=True)
class Result:
    """What an integration extracts from a response (usage ``None``: the provider reported none)."""

    usage: Usage | None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: Sequence[str] | None = None
    provider_cost_usd: Decimal | None = None


class StreamAccumulator(Protocol):
    """Per-stream state of an integration: sees every chunk, then says what the stream used."""

    def on_chunk(self, chunk: Any) -> bool:
        """Look at one chunk; return False to hide it from the caller (e.g. an injected usage chunk)."""
        ...

    def result(self) -> Result:
        """The usage and response facts of the whole stream (called once, at its end)."""
        ...


class Endpoint(Protocol):
    """How one patched SDK method translates to tokenmeter's types."""

    def request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        """The :class:`Request` for this call (provider, model, max tokens, messages...)."""
        ...

    def prepare(
        self, request: Request, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments to send: apply a rewritten ``request.model``, inject stream options."""
        ...

    def result(self, response: Any, request: Request) -> Result | StreamAccumulator:
        """Translate a response, or return an accumulator when the response is a stream."""
        ...

    # Optional: ``error_type(self, error: BaseException) -> str | None`` names the SDK's error for
    # ``error.type`` (an HTTP status of a generic status error, a service error code); ``None`` or no
    # such method: the exception's class name.
    # Optional, used only with capture_content: ``output_messages(self, response) -> list[dict] | None``
    # (the response's messages in the GenAI conventions' shape, see ``_content``) and
    # ``stream_text(self, chunk) -> str | None`` (the text one stream chunk adds).
    #
    # Optional: ``resend(self, error, request, args, kwargs) -> tuple[str, args, kwargs] | None``: when
    # the server rejected something ``prepare`` added (e.g. ``stream_options``), the reason and the
    # caller's own arguments (``args`` / ``kwargs`` as the caller passed them) prepared again without
    # it; the call is then sent once more, so tokenmeter never changes what the caller sees.


def open_call(
    endpoint: Endpoint, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[MeteredCall | None, tuple[Any, ...], dict[str, Any]]:
    """The shared start of every metered call: guard, request, policy gate, prepared arguments.

    Returns ``(None, args, kwargs)`` when the call is not to be metered (not configured, already inside a
    metered call, or a fault). Raises only the policy's refusal, before anything is sent.
    """
    if CURRENT_CALL.get() is not None or _meter.active() is None:
        return None, args, kwargs
    try:
        request = endpoint.request(instance, args, kwargs)
    except Exception:
        _safe.log_once(f"request:{type(endpoint).__name__}", "tokenmeter: reading a request failed; not metered")
        return None, args, kwargs
    call = begin(request)  # raises PolicyViolation when refused: the call must not be sent
    if call is None:
        return None, args, kwargs
    call.endpoint = endpoint
    try:
        new_args, new_kwargs = endpoint.prepare(request, args, kwargs)
    except Exception:
        _safe.log_once(f"prepare:{type(endpoint).__name__}", "tokenmeter: preparing a request failed")
        new_args, new_kwargs = args, kwargs
    return call, new_args, new_kwargs


def finish_call(endpoint: Endpoint, call: MeteredCall, response: Any, is_async: bool) -> Any:
    """The shared end: meter a plain response, or hand back a metering proxy of a stream.

    An endpoint with a ``defer(response, call) -> bool`` method may keep the call open instead (a raw
    response whose body the caller has yet to read); it then finishes the call itself, exactly once.
    """
    defer = getattr(endpoint, "defer", None)
    if defer is not None:
        try:
            if defer(response, call):
                return response
        except Exception:
            _safe.log_once(f"defer:{type(endpoint).__name__}", "tokenmeter: deferring a raw response failed")
    try:
        outcome = endpoint.result(response, call.request)
    except Exception:
        _safe.log_once(f"result:{type(endpoint).__name__}", "tokenmeter: reading a response failed")
        call.stop(None)
        return response
    if isinstance(outcome, Result):
        if call.meter.options.capture_content:
            capture_output(endpoint, call, response, outcome)
        call.stop(
            outcome.usage,
            response_model=outcome.response_model,
            response_id=outcome.response_id,
            finish_reasons=outcome.finish_reasons,
            provider_cost_usd=outcome.provider_cost_usd,
        )
        return response
    from ._streams import AsyncMeteredStream, MeteredStream

    try:
        if is_async:
            return AsyncMeteredStream(response, call, outcome)
        return MeteredStream(response, call, outcome)
    except Exception:
        _safe.log_once("stream.wrap", "tokenmeter: wrapping a stream failed")
        call.stop(None)
        return response


def capture_output(endpoint: Endpoint, call: MeteredCall, response: Any, outcome: Result) -> None:
    """``gen_ai.output.messages`` of a whole response, from the endpoint's optional ``output_messages``."""
    read = getattr(endpoint, "output_messages", None)
    if read is None:
        return
    try:
        messages = read(response)
        if messages:
            reasons = list(outcome.finish_reasons or ())
            for i, msg in enumerate(messages):
                msg.setdefault("finish_reason", reasons[i] if i < len(reasons) else (reasons[0] if reasons else ""))
            call.output = messages
    except Exception:
        _safe.log_once(f"content:{type(endpoint).__name__}", "tokenmeter: capturing response content failed")


Finish = Callable[[Endpoint, MeteredCall, Any, bool], Any]
Arguments = tuple[tuple[Any, ...], dict[str, Any]]


def resend_arguments(
    endpoint: Endpoint, call: MeteredCall, error: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Arguments | None:
    """The arguments to send again after ``error`` when the endpoint says tokenmeter's addition caused it.

    Counted on ``tokenmeter.calls.resent`` and as a span event; the first attempt is not an SDK retry.
    """
    resend = getattr(endpoint, "resend", None)
    if resend is None:
        return None
    try:
        again = resend(error, call.request, args, kwargs)
        if again is None:
            return None
        reason, new_args, new_kwargs = again
        call.http_attempts = None
        attributes = {"tokenmeter.resend.reason": reason, "gen_ai.provider.name": call.request.provider}
        call.meter.instruments.resent.add(1, attributes)
        if call.span is not None:
            call.span.add_event("tokenmeter.call.resent", {"tokenmeter.resend.reason": reason})
        return new_args, new_kwargs
    except Exception:
        _safe.log_once("call.resend", "tokenmeter: deciding whether to resend a call failed")
        return None


def send(
    wrapped: Callable[..., Any],
    endpoint: Endpoint,
    call: MeteredCall,
    sent: Arguments,
    original: Arguments | None = None,
) -> Any:
    """Send a metered call: ``wrapped(*sent)`` with the call current (its HTTP requests are its attempts,
    see ``_transport``); a failure is recorded on the call and re-raised unchanged.

    With the caller's ``original`` arguments, an error the endpoint blames on what tokenmeter added
    (:func:`resend_arguments`) sends the call once more, as the caller wrote it. Every wrapper of a
    synchronous method that meters a call sends it through here; :func:`asend` is the ``async`` twin.
    """
    token = CURRENT_CALL.set(call)
    try:
        try:
            return wrapped(*sent[0], **sent[1])
        except Exception as exc:
            again = None if original is None else resend_arguments(endpoint, call, exc, *original)
            if again is None:
                raise
        # Outside the except block: a failure of the resend reaches the caller exactly as it would without us.
        return wrapped(*again[0], **again[1])
    except BaseException as exc:
        call.fail(exc)
        raise
    finally:
        CURRENT_CALL.reset(token)


async def asend(
    wrapped: Callable[..., Any],
    endpoint: Endpoint,
    call: MeteredCall,
    sent: Arguments,
    original: Arguments | None = None,
) -> Any:
    """:func:`send` of an ``async`` method."""
    token = CURRENT_CALL.set(call)
    try:
        try:
            return await wrapped(*sent[0], **sent[1])
        except Exception as exc:
            again = None if original is None else resend_arguments(endpoint, call, exc, *original)
            if again is None:
                raise
        return await wrapped(*again[0], **again[1])
    except BaseException as exc:
        call.fail(exc)
        raise
    finally:
        CURRENT_CALL.reset(token)


def sync_wrapper(endpoint: Endpoint, *, finish: Finish = finish_call) -> Callable[..., Any]:
    """A ``wrapt`` wrapper metering a synchronous SDK method.

    ``finish(endpoint, call, response, is_async)`` turns the SDK's return value into what the caller
    gets (default: meter it, or proxy a stream); an SDK helper that returns a manager object passes its own.
    """

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call, sent_args, sent_kwargs = open_call(endpoint, instance, args, kwargs)
        if call is None:
            return wrapped(*sent_args, **sent_kwargs)
        response = send(wrapped, endpoint, call, (sent_args, sent_kwargs), (args, kwargs))
        return finish(endpoint, call, response, False)

    return wrapper


def async_wrapper(endpoint: Endpoint, *, finish: Finish = finish_call) -> Callable[..., Any]:
    """A ``wrapt`` wrapper metering an ``async`` SDK method (``finish`` as in :func:`sync_wrapper`)."""

    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call, sent_args, sent_kwargs = open_call(endpoint, instance, args, kwargs)
        if call is None:
            return await wrapped(*sent_args, **sent_kwargs)
        response = await asend(wrapped, endpoint, call, (sent_args, sent_kwargs), (args, kwargs))
        return finish(endpoint, call, response, True)

    return wrapper


__all__ = [
    "Endpoint",
    "PolicyViolation",
    "Result",
    "StreamAccumulator",
    "async_wrapper",
    "asend",
    "finish_call",
    "open_call",
    "send",
    "sync_wrapper",
]
