"""The SDKs' own retries, seen from their HTTP clients: every request a metered call sends is an attempt.

openai and anthropic retry inside one ``create()`` (429, 5xx, timeouts), botocore inside one
``converse()``, google-genai when given retry options. None of that reaches the caller, so it is counted
where every SDK must pass: its HTTP client's ``send`` (``httpx``, ``httpx2`` for openai 3.x, botocore's
``Endpoint._send``). Only requests sent while a metered call is in progress (``CURRENT_CALL``) are
counted; any other traffic of the application goes straight through. The call then carries
``tokenmeter.sdk.attempts`` and one ``tokenmeter.sdk.retry`` span event per attempt that was retried
(see :meth:`MeteredCall.http_attempt`).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from . import _safe
from ._context import CURRENT_CALL
from ._patch import Patcher


def _counted(call: Any, args: tuple[Any, ...]) -> bool:
    """Whether this request belongs to ``call``: sent to the call's server (when known), e.g. not a
    credentials refresh the SDK makes on the way."""
    try:
        expected = call.request.server_address
        if not expected or not args:
            return True
        url = getattr(args[0], "url", None)
        host = getattr(url, "host", None)  # httpx / httpx2
        if not isinstance(host, str) and isinstance(url, str):  # botocore
            host = urllib.parse.urlsplit(url).hostname
        return not isinstance(host, str) or host == expected
    except Exception:  # never let counting stand between the SDK and its request
        _safe.log_once("transport.counted", "tokenmeter: matching an HTTP request to its call failed")
        return False


def _note(call: Any, response: Any, error: BaseException | None) -> None:
    try:
        status = getattr(response, "status_code", None)
        call.http_attempt(status if type(status) is int else None, None if error is None else type(error).__name__)
    except Exception:
        _safe.log_once("transport.note", "tokenmeter: counting an HTTP attempt failed")


def _sync_send(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    call = CURRENT_CALL.get()
    if call is None or not _counted(call, args):
        return wrapped(*args, **kwargs)
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as exc:
        _note(call, None, exc)
        raise
    _note(call, response, None)
    return response


async def _async_send(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    call = CURRENT_CALL.get()
    if call is None or not _counted(call, args):
        return await wrapped(*args, **kwargs)
    try:
        response = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _note(call, None, exc)
        raise
    _note(call, response, None)
    return response


def _patcher() -> Patcher:
    patcher = Patcher()
    for module in ("httpx", "httpx2"):
        patcher.add(module, "Client.send", _sync_send)
        patcher.add(module, "AsyncClient.send", _async_send)
    patcher.add("botocore.endpoint", "Endpoint._send", _sync_send)
    return patcher


PATCHER = _patcher()
"""Applied by ``tokenmeter.instrument()`` with the first integration, restored with the last."""
