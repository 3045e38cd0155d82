"""Raw responses of the Stainless-built SDKs (``openai``, ``anthropic``): ``with_raw_response`` streams and
``with_streaming_response`` bodies, and calls that bypass the patched resource methods.

Such a call returns before its body is read, so its usage is not known when the call returns. The call
stays open, tied to the SDK's response object, and is metered from whatever the caller reads:

* ``.parse()`` of a stream -- the SDK's ``Stream`` is metered like any other (its chunks, exactly);
* ``.read()`` / ``.text()`` / ``.json()`` / ``.parse()`` of a complete body -- the JSON body, exactly;
* ``.read()`` or ``.iter_lines()`` of a stream -- the ``data:`` lines it carries (usage if the lines carry
  it, else a local estimate, flagged);
* nothing (``iter_bytes``, closed unread, dropped) -- a local estimate, flagged ``estimated``, at close or
  when the response is collected.

``include_usage`` is never injected into a raw stream: a caller reading raw lines would see the extra
line, and which way the caller reads is not known when the request is sent.

An endpoint using this module provides ``stream(request)`` (a stream accumulator taking chunks as dicts),
``complete(body, request)`` (the :class:`Result` of a JSON body, ``None`` if unreadable) and
``unread(request)`` (the :class:`Result` of a body nobody read: local estimates, flagged).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from tokenmeter import _meter, _orphans, _safe
from tokenmeter._call import MeteredCall
from tokenmeter._context import CURRENT_CALL
from tokenmeter._streams import AsyncMeteredStream, MeteredStream
from tokenmeter._wrap import Result, StreamAccumulator, asend, finish_call, open_call, send

from ._openai_usage import OpenAIRequest

_PENDING: weakref.WeakKeyDictionary[Any, tuple[Any, MeteredCall]] = weakref.WeakKeyDictionary()


def body_read(response: Any) -> bool:
    """Whether a raw response's body has been read already (``with_raw_response`` of a complete body)."""
    if _is_stream(response):
        return False
    try:
        response.http_response.content  # noqa: B018 - raises when the body is not read yet
    except Exception:
        return False
    return True


def defer(endpoint: Any, response: Any, call: MeteredCall) -> bool:
    """Keep ``call`` open until the caller reads the raw ``response``; False when there is nothing to defer."""
    if getattr(response, "http_response", None) is None or body_read(response):
        return False
    _PENDING[response] = (endpoint, call)
    weakref.finalize(response, _orphans.abandon, lambda: _estimate(endpoint, call))
    return True


def _take(response: Any) -> tuple[Any, MeteredCall] | None:
    if not _PENDING:
        return None
    try:
        return _PENDING.pop(response, None)
    except TypeError:
        return None


def _stop(call: MeteredCall, result: Result) -> None:
    call.stop(
        result.usage,
        response_model=result.response_model,
        response_id=result.response_id,
        finish_reasons=result.finish_reasons,
        provider_cost_usd=result.provider_cost_usd,
    )


def _estimate(endpoint: Any, call: MeteredCall) -> None:
    try:
        _stop(call, endpoint.unread(call.request))
    except Exception:
        _safe.log_once("raw.unread", "tokenmeter: estimating an unread raw response failed")
        call.stop(None)


def _is_stream(response: Any) -> bool:
    return bool(getattr(response, "_is_sse_stream", False) or getattr(response, "_stream", False))


def _feed(acc: StreamAccumulator, line: Any) -> None:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    if not isinstance(text, str) or not text.startswith("data:"):
        return
    data = text[5:].strip()
    if not data or data == "[DONE]":
        return
    try:
        obj = json.loads(data)
    except ValueError:
        return
    if isinstance(obj, dict):
        acc.on_chunk(obj)


def _from_body(endpoint: Any, call: MeteredCall, response: Any, content: Any) -> None:
    """Meter a call from its whole body: a JSON document, or the lines of a stream."""
    try:
        request = call.request
        if not isinstance(content, (bytes, str)):
            _estimate(endpoint, call)
            return
        if _is_stream(response):
            acc = endpoint.stream(request)
            for line in (content.decode("utf-8", "replace") if isinstance(content, bytes) else content).splitlines():
                _feed(acc, line)
            _stop(call, acc.result())
            return
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        _stop(call, endpoint.complete(body if isinstance(body, dict) else None, request))
    except Exception:
        _safe.log_once("raw.body", "tokenmeter: reading a raw response body failed")
        call.stop(None)


# -- hooks on the SDK's response classes (``wrapt`` wrappers) --------------------------------------------------
def read_hook(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``APIResponse.read``: the whole body is here."""
    content = wrapped(*args, **kwargs)
    pending = _take(instance)
    if pending is not None:
        _from_body(pending[0], pending[1], instance, content)
    return content


async def aread_hook(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``AsyncAPIResponse.read``."""
    content = await wrapped(*args, **kwargs)
    pending = _take(instance)
    if pending is not None:
        _from_body(pending[0], pending[1], instance, content)
    return content


def _wrap_stream(pending: tuple[Any, MeteredCall], stream: Any) -> Any:
    endpoint, call = pending
    try:
        acc = endpoint.stream(call.request)
        if hasattr(stream, "__anext__") or hasattr(stream, "__aiter__"):
            return AsyncMeteredStream(stream, call, acc)
        return MeteredStream(stream, call, acc)
    except Exception:
        _safe.log_once("raw.stream", "tokenmeter: wrapping a raw stream failed")
        _estimate(endpoint, call)
        return stream


def parse_hook(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``APIResponse.parse`` / ``LegacyAPIResponse.parse``: a stream is metered chunk by chunk.

    A complete body is left to :func:`read_hook` (``parse`` reads it first).
    """
    if not _is_stream(instance):
        return wrapped(*args, **kwargs)
    pending = _take(instance)
    if pending is None:
        return wrapped(*args, **kwargs)
    try:
        stream = wrapped(*args, **kwargs)
    except BaseException:
        _PENDING[instance] = pending
        raise
    return _wrap_stream(pending, stream)


async def aparse_hook(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``AsyncAPIResponse.parse``."""
    if not _is_stream(instance):
        return await wrapped(*args, **kwargs)
    pending = _take(instance)
    if pending is None:
        return await wrapped(*args, **kwargs)
    try:
        stream = await wrapped(*args, **kwargs)
    except BaseException:
        _PENDING[instance] = pending
        raise
    return _wrap_stream(pending, stream)


def iter_lines_hook(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``APIResponse.iter_lines``: the caller reads the raw lines; meter from what they carry."""
    pending = _take(instance)
    lines = wrapped(*args, **kwargs)
    return lines if pending is None else _metered_lines(pending, lines)


def aiter_lines_hook(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``AsyncAPIResponse.iter_lines``."""
    pending = _take(instance)
    lines = wrapped(*args, **kwargs)
    return lines if pending is None else _ametered_lines(pending, lines)


def _line_acc(pending: tuple[Any, MeteredCall]) -> StreamAccumulator | None:
    try:
        acc: StreamAccumulator = pending[0].stream(pending[1].request)
        return acc
    except Exception:
        return None


def _safe_feed(acc: StreamAccumulator | None, line: Any) -> None:
    if acc is not None:
        try:
            _feed(acc, line)
        except Exception:
            _safe.log_once("raw.line", "tokenmeter: reading a raw stream line failed")


def _end_lines(pending: tuple[Any, MeteredCall], acc: StreamAccumulator | None) -> None:
    endpoint, call = pending
    try:
        if acc is None:
            _estimate(endpoint, call)
        else:
            _stop(call, acc.result())
    except Exception:
        _safe.log_once("raw.lines", "tokenmeter: finishing raw stream lines failed")
        call.stop(None)


def _metered_lines(pending: tuple[Any, MeteredCall], lines: Iterator[Any]) -> Iterator[Any]:
    acc = _line_acc(pending)
    try:
        for line in lines:
            _safe_feed(acc, line)
            yield line
    finally:
        _end_lines(pending, acc)


async def _ametered_lines(pending: tuple[Any, MeteredCall], lines: AsyncIterator[Any]) -> AsyncIterator[Any]:
    acc = _line_acc(pending)
    try:
        async for line in lines:
            _safe_feed(acc, line)
            yield line
    finally:
        _end_lines(pending, acc)


def close_hook(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``APIResponse.close``: a body closed unread is metered from a local estimate."""
    try:
        return wrapped(*args, **kwargs)
    finally:
        pending = _take(instance)
        if pending is not None:
            _estimate(*pending)


async def aclose_hook(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``AsyncAPIResponse.close``."""
    try:
        return await wrapped(*args, **kwargs)
    finally:
        pending = _take(instance)
        if pending is not None:
            _estimate(*pending)


def response_hooks(sdk: str) -> list[tuple[str, str, Callable[..., Any]]]:
    """``(module, attribute, wrapper)`` of every hook on ``sdk``'s response classes (``openai``, ``anthropic``)."""
    hooks: list[tuple[str, str, Callable[..., Any]]] = [
        (f"{sdk}._response", "APIResponse.read", read_hook),
        (f"{sdk}._response", "APIResponse.parse", parse_hook),
        (f"{sdk}._response", "APIResponse.iter_lines", iter_lines_hook),
        (f"{sdk}._response", "APIResponse.close", close_hook),
        (f"{sdk}._response", "AsyncAPIResponse.read", aread_hook),
        (f"{sdk}._response", "AsyncAPIResponse.parse", aparse_hook),
        (f"{sdk}._response", "AsyncAPIResponse.iter_lines", aiter_lines_hook),
        (f"{sdk}._response", "AsyncAPIResponse.close", aclose_hook),
    ]
    if sdk == "openai":  # openai's with_raw_response still returns its LegacyAPIResponse
        hooks.append(("openai._legacy_response", "LegacyAPIResponse.parse", parse_hook))
    return hooks


# -- calls that bypass the patched resource methods ---------------------------------------------------------
class _ClientView:
    """What an endpoint reads of a resource (its ``_client``), for a call seen at the client's ``request``."""

    __slots__ = ("_client",)

    def __init__(self, client: Any) -> None:
        self._client = client


def _bypass(by_path: dict[str, Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``(endpoint, call, args, kwargs)`` for an unmetered ``request``, or None (metered already / not a call).

    openai (and anthropic) cache a resource's ``with_raw_response`` / ``with_streaming_response`` wrappers around the
    method it saw first, so a client used before ``instrument()`` keeps calling the unpatched method
    (langchain-openai sends every call that way). Every call still passes through the client's
    ``request``, looked up on the class: calls that reach it unmetered are metered here.
    """
    if CURRENT_CALL.get() is not None or _meter.active() is None:
        return None
    try:
        options: Any = args[1] if len(args) > 1 else kwargs.get("options")
        if str(getattr(options, "method", "")).lower() != "post":
            return None
        endpoint = by_path.get(str(getattr(options, "url", "")).rstrip("/"))
        body = getattr(options, "json_data", None)
        if endpoint is None or not isinstance(body, dict):
            return None
        headers = getattr(options, "headers", None)
        view = {**body, "extra_headers": headers if isinstance(headers, dict) else None}
    except Exception:
        _safe.log_once("raw.bypass", "tokenmeter: reading a client request failed; not metered")
        return None
    call, _, prepared = open_call(endpoint, _ClientView(instance), (), view)
    if call is None:
        return None
    request = call.request
    if isinstance(request, OpenAIRequest):
        request.inject_usage = False  # the body is the caller's, sent as it is (but for a policy's model)
    model = prepared.get("model")
    if isinstance(model, str) and model != body.get("model"):
        try:
            options = options.model_copy()
            options.json_data = {**body, "model": model}
            args = (args[0], options, *args[2:]) if len(args) > 1 else args
            if len(args) <= 1:
                kwargs = {**kwargs, "options": options}
        except Exception:
            _safe.log_once("raw.bypass.model", "tokenmeter: rewriting the model of a client request failed")
    return endpoint, call, args, kwargs


def request_fallback(by_path: dict[str, Any]) -> Callable[..., Any]:
    """``wrapt`` wrapper of ``SyncAPIClient.request`` metering calls the resource patches did not see."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        found = _bypass(by_path, instance, args, kwargs)
        if found is None:
            return wrapped(*args, **kwargs)
        endpoint, call, args, kwargs = found
        return finish_call(endpoint, call, send(wrapped, endpoint, call, (args, kwargs)), False)

    return wrapper


def arequest_fallback(by_path: dict[str, Any]) -> Callable[..., Any]:
    """``wrapt`` wrapper of ``AsyncAPIClient.request`` (see :func:`request_fallback`)."""

    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        found = _bypass(by_path, instance, args, kwargs)
        if found is None:
            return await wrapped(*args, **kwargs)
        endpoint, call, args, kwargs = found
        return finish_call(endpoint, call, await asend(wrapped, endpoint, call, (args, kwargs)), True)

    return wrapper
