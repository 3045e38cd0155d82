"""Anthropic Messages API (``anthropic`` SDK): ``messages.create`` / ``parse`` / ``stream()``, sync and async.

Usage mapping -- Anthropic reports cache tokens *beside* ``input_tokens``, never inside it:

* ``input`` = ``input_tokens``, ``cache_read`` = ``cache_read_input_tokens``,
  ``cache_write`` = ``cache_creation_input_tokens``;
* ``output_tokens`` includes extended thinking. When the API reports the breakdown
  ``output_tokens_details.thinking_tokens`` it becomes ``reasoning`` and ``output`` is the rest; otherwise
  thinking stays inside ``output`` and ``reasoning`` is 0. Thinking is billed at the output rate, so the
  cost is the same either way.

In a stream, ``message_start`` carries the input side and a provisional output count; every
``message_delta`` carries *cumulative* counts and the last one the final output total. Later values
replace earlier ones (never added), so a server that repeats the input counts in ``message_delta`` is
not double counted. A stream that ends before its final count is metered with the larger of the last
reported and the locally counted output, flagged estimated.

``messages.stream()`` does not call ``create``: it returns a manager whose ``__enter__`` sends the
request. The call is metered from ``stream()`` (so a policy can still rewrite the model) to the end of
the raw event stream under the helper's ``MessageStream`` -- however the caller consumes it
(``text_stream``, ``get_final_message()``, iteration, leaving the ``with`` block, garbage collection).
A manager that is never entered sends nothing; its call ends, when it is collected, with usage missing.

``AnthropicBedrock`` / ``AnthropicVertex`` (and ``AnthropicFoundry``) clients share these resource
classes and are metered once, as ``aws.bedrock`` / ``gcp.vertex_ai`` (``azure.ai.inference``); they
talk HTTP through the SDK's own transport, so the ``bedrock`` (botocore) integration never sees them.

``with_raw_response`` / ``with_streaming_response`` calls are metered from what the caller reads of the
body, and a call through a ``with_raw_response`` wrapper cached before ``instrument()`` is metered at the
client's ``request`` (see ``_stainless_raw``).

``client.beta.messages`` of Bedrock/Vertex clients alias the beta functions at import time; calls through
them are metered by that ``request`` fallback. Known gap: message batches are not metered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import wrapt

from tokenmeter import _safe
from tokenmeter._call import MeteredCall, Request
from tokenmeter._context import CURRENT_CALL
from tokenmeter._patch import Patcher
from tokenmeter._streams import AsyncMeteredStream, MeteredStream
from tokenmeter._wrap import Result, async_wrapper, sync_wrapper

from . import _anthropic_batches as _batches
from ._anthropic_usage import (
    Counts,
    MessageEvents,
    estimate_prompt,
    message_result,
    usage_from_events,
    usage_from_message,
)
from ._content_out import anthropic_delta, anthropic_output
from ._fields import generic_status
from ._stainless_raw import arequest_fallback, defer, request_fallback, response_hooks

__all__ = [
    "EXTRA",
    "PROVIDER",
    "SDK_MODULE",
    "instrument",
    "provider_of",
    "uninstrument",
    "usage_from_events",
    "usage_from_message",
]

PROVIDER = "anthropic"
"""``gen_ai.provider.name`` of the first-party Anthropic API."""

EXTRA = "anthropic"
"""The pip extra that installs the SDK: ``pip install 'tokenmeter[anthropic]'``."""

SDK_MODULE = "anthropic"
"""The SDK's import name."""

_CLIENT_PROVIDERS: dict[str, str] = {
    "AnthropicBedrock": "aws.bedrock",
    "AsyncAnthropicBedrock": "aws.bedrock",
    "AnthropicBedrockMantle": "aws.bedrock",
    "AsyncAnthropicBedrockMantle": "aws.bedrock",
    "AnthropicVertex": "gcp.vertex_ai",
    "AsyncAnthropicVertex": "gcp.vertex_ai",
    "AnthropicFoundry": "azure.ai.inference",
    "AsyncAnthropicFoundry": "azure.ai.inference",
}
_provider_by_class: dict[type, str] = {}


# -- streams ------------------------------------------------------------------------------------


class _StreamAccumulator:
    """Per-stream state: every raw event goes through :class:`MessageEvents`."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.events = MessageEvents()

    def on_chunk(self, chunk: Any) -> bool:
        self.events.add(chunk)
        return True

    def result(self) -> Result:
        return self.events.result(self.request)


# -- requests -----------------------------------------------------------------------------------


def provider_of(client: Any) -> str:
    """``gen_ai.provider.name`` of an SDK client: Bedrock / Vertex / Foundry variants, else ``anthropic``."""
    cls = type(client)
    try:
        return _provider_by_class[cls]
    except KeyError:
        pass
    name = next((_CLIENT_PROVIDERS[c.__name__] for c in cls.__mro__ if c.__name__ in _CLIENT_PROVIDERS), PROVIDER)
    _provider_by_class[cls] = name
    return name


class _Messages:
    """``Messages.create`` / ``parse`` (a Message, or raw events with ``stream=True``) and ``stream()``."""

    output_messages = staticmethod(anthropic_output)  # capture_content only
    stream_text = staticmethod(anthropic_delta)

    def __init__(self, *, helper: bool = False) -> None:
        self.helper = helper

    def request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        client = getattr(instance, "_client", None)
        messages = kwargs.get("messages")
        listed = list(messages) if isinstance(messages, (list, tuple)) else None
        system = kwargs.get("system")
        if listed is not None and isinstance(system, (str, list)):
            listed.insert(0, {"role": "system", "content": system})
        max_tokens = kwargs.get("max_tokens")
        url = getattr(client, "base_url", None)
        return Request(
            provider=provider_of(client),
            model=str(kwargs["model"]),
            max_tokens=max_tokens if type(max_tokens) is int else None,
            messages=listed,
            stream=self.helper or kwargs.get("stream") is True,
            server_address=getattr(url, "host", None) or None,
            server_port=getattr(url, "port", None),
        )

    def prepare(
        self, request: Request, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if kwargs.get("model") != request.model:
            kwargs = {**kwargs, "model": request.model}
        return args, kwargs

    def error_type(self, error: BaseException) -> str | None:
        return generic_status(error, "APIStatusError")

    def result(self, response: Any, request: Request) -> Result | _StreamAccumulator:
        raw = hasattr(response, "http_response")  # with_raw_response / with_streaming_response
        if request.stream:
            return Result(None) if raw else _StreamAccumulator(request)
        if raw:
            return _raw_result(response, request)
        return message_result(response, request)

    # -- raw responses (``_stainless_raw``) --
    def defer(self, response: Any, call: MeteredCall) -> bool:
        """Keep a raw response's call open until the caller reads its body."""
        return not self.helper and defer(self, response, call)

    def stream(self, request: Request) -> _StreamAccumulator:
        """The accumulator of a raw stream's events."""
        return _StreamAccumulator(request)

    def complete(self, body: Any, request: Request) -> Result:
        """The result of a raw JSON body."""
        return message_result(body, request)

    def unread(self, request: Request) -> Result:
        """A raw body nobody read: the prompt counted locally, no output, flagged estimated."""
        return Result(Counts().usage(lambda: estimate_prompt(request), lambda: 0))


def _raw_result(response: Any, request: Request) -> Result:
    try:
        body = json.loads(response.http_response.content)  # read already, unless streamed: then unknown
    except Exception:
        return Result(None)
    return message_result(body, request)


# -- the messages.stream() helper ---------------------------------------------------------------


def _meter_raw_stream(stream: Any, call: MeteredCall, proxy: type[Any]) -> Any:
    """Put a metering proxy under a helper ``MessageStream``: all of its reading goes through ``_raw_stream``."""
    try:
        stream._raw_stream = proxy(stream._raw_stream, call, _StreamAccumulator(call.request))
    except Exception:
        _safe.log_once("anthropic.helper", "tokenmeter: cannot meter an anthropic messages.stream(); usage missing")
        call.stop(None)
    return stream


class _Manager(wrapt.ObjectProxy[Any]):
    """Proxy of the manager ``messages.stream()`` returns; entering it sends the metered request."""

    def __init__(self, manager: Any, call: MeteredCall) -> None:
        super().__init__(manager)
        self._self_call = call
        self._self_entered = False

    def __del__(self) -> None:
        try:
            if not self._self_entered:  # never entered: nothing was sent, but the open call must end
                self._self_call.stop(None)
        except Exception:
            pass


class _SyncManager(_Manager):
    """``with client.messages.stream(...) as stream``."""

    def __enter__(self) -> Any:
        self._self_entered = True
        token = CURRENT_CALL.set(self._self_call)
        try:
            stream = self.__wrapped__.__enter__()
        except BaseException as exc:
            self._self_call.fail(exc)
            raise
        finally:
            CURRENT_CALL.reset(token)
        return _meter_raw_stream(stream, self._self_call, MeteredStream)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        return self.__wrapped__.__exit__(exc_type, exc, tb)


class _AsyncManager(_Manager):
    """``async with client.messages.stream(...) as stream``."""

    async def __aenter__(self) -> Any:
        self._self_entered = True
        token = CURRENT_CALL.set(self._self_call)
        try:
            stream = await self.__wrapped__.__aenter__()
        except BaseException as exc:
            self._self_call.fail(exc)
            raise
        finally:
            CURRENT_CALL.reset(token)
        return _meter_raw_stream(stream, self._self_call, AsyncMeteredStream)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        return await self.__wrapped__.__aexit__(exc_type, exc, tb)


def _helper_wrapper(manager_proxy: type[_Manager]) -> Callable[..., Any]:
    """``messages.stream()``: the shared wrapper, handing back a metering proxy of the stream manager."""
    return sync_wrapper(_Messages(helper=True), finish=lambda _endpoint, call, manager, _: manager_proxy(manager, call))


# -- patches ------------------------------------------------------------------------------------

_patcher = Patcher()
_MESSAGES = _Messages()
for _module in ("anthropic.resources.messages.messages", "anthropic.resources.beta.messages.messages"):
    for _method in ("create", "parse"):
        _patcher.add(_module, f"Messages.{_method}", sync_wrapper(_MESSAGES))
        _patcher.add(_module, f"AsyncMessages.{_method}", async_wrapper(_MESSAGES))
    _patcher.add(_module, "Messages.stream", _helper_wrapper(_SyncManager))
    _patcher.add(_module, "AsyncMessages.stream", _helper_wrapper(_AsyncManager))
_BY_PATH = {"/v1/messages": _MESSAGES}
_patcher.add("anthropic._base_client", "SyncAPIClient.request", request_fallback(_BY_PATH))
_patcher.add("anthropic._base_client", "AsyncAPIClient.request", arequest_fallback(_BY_PATH))
for _module, _path, _hook in response_hooks("anthropic"):
    _patcher.add(_module, _path, _hook)
for _module in ("anthropic.resources.messages.batches", "anthropic.resources.beta.messages.batches"):
    _patcher.add(_module, "Batches.results", _batches.results)
    _patcher.add(_module, "AsyncBatches.results", _batches.aresults)


def instrument() -> None:
    """Patch the ``anthropic`` SDK (now, or when it is imported). Idempotent."""
    _patcher.apply()


def uninstrument() -> None:
    """Restore the SDK's original methods. Idempotent."""
    _patcher.restore()
