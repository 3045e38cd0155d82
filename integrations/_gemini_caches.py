"""google-genai explicit context caching (``client.caches`` / REST ``cachedContents``): creation and storage.

What Google bills (ai.google.dev/gemini-api/docs/caching, .../pricing): creating a cache bills its tokens
(``CachedContent.usage_metadata.total_token_count``) at the model's standard input rate, and storing it
bills those tokens per hour for as long as it lives (the "storage price", USD per 1,000,000 tokens per
hour): until its ``expire_time``, or until it is deleted.

How tokenmeter meters it -- one call per API request, never a guess:

* ``caches.create`` is a ``create_cached_content`` call: ``input`` = the cache's token count, and the
  ``cache_storage`` unit = tokens x seconds from ``create_time`` to ``expire_time`` (the TTL), priced at
  the published storage rate (``tokenmeter._unit_rates``; an unlisted model's storage is unpriced).
  That is the whole bill of a cache left to expire.
* ``caches.update`` that moves ``expire_time`` later is an ``update_cached_content`` call metering the
  extension (tokens x the added seconds); the previous expiry is the one this process metered.
* A cache deleted, or updated to expire earlier, stops being billed: the storage metered for the time
  it no longer lives is *released*. Counters only go up, so the release is not subtracted: it is on the
  ``delete_cached_content`` / ``update_cached_content`` span (``tokenmeter.cache.released_token_seconds``,
  ``tokenmeter.cost.released_usd``) for reports to net out. A cache this process did not create (another
  process, before ``instrument()``) has no metered expiry: its update or delete is recorded with
  ``tokenmeter.cache.expiry_unknown`` and meters no storage.

sync and async (``client.aio.caches``) share these endpoints.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tokenmeter import _meter
from tokenmeter._call import MeteredCall, Request
from tokenmeter._tokens import count_tokens
from tokenmeter._usage import Usage, with_units

from ._fields import count
from ._gemini_embed import _texts, api_error_code, model_kwarg

# Cache name -> (provider, model, tokens, metered expiry in epoch seconds), for caches created here.
_KNOWN: OrderedDict[str, tuple[str, str, int, float]] = OrderedDict()
_LOCK = threading.Lock()
_MAX_KNOWN = 10_000


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _remember(name: str, provider: str, model: str, tokens: int, expires: float) -> None:
    with _LOCK:
        _KNOWN[name] = (provider, model, tokens, expires)
        _KNOWN.move_to_end(name)
        while len(_KNOWN) > _MAX_KNOWN:
            _KNOWN.popitem(last=False)


def _known(name: str) -> tuple[str, str, int, float] | None:
    with _LOCK:
        return _KNOWN.get(name)


def _forget(name: str) -> tuple[str, str, int, float] | None:
    with _LOCK:
        return _KNOWN.pop(name, None)


def _released(call: MeteredCall, tokens: int, seconds: float) -> None:
    """Put storage the cache no longer uses on the span: token-seconds and their price."""
    token_seconds = round(tokens * round(seconds, 6))
    if token_seconds <= 0 or call.span is None or not call.span.is_recording():
        return
    call.span.set_attribute("tokenmeter.cache.released_token_seconds", token_seconds)
    meter = _meter.active()
    if meter is not None:
        req = call.request
        cost = meter.prices.cost(req.provider, req.model, Usage(units=(("cache_storage", token_seconds),)))
        for name, usd in cost.units:
            if name == "cache_storage":
                call.span.set_attribute("tokenmeter.cost.released_usd", float(usd))


class _CacheEndpoint:
    """Shared parts of the ``Caches`` / ``AsyncCaches`` endpoints: request, prepare, error type."""

    operation = ""

    def __init__(
        self,
        provider_of: Callable[[Any], str],
        model_name: Callable[[Any], str],
        server: Callable[[Any], tuple[str | None, int | None]],
    ) -> None:
        self._provider_of = provider_of
        self._model_name = model_name
        self._server = server

    def _request(self, instance: Any, model: str, prompt: str | None = None) -> Request:
        address, port = self._server(instance)
        return Request(
            provider=self._provider_of(instance),
            model=model,
            operation=self.operation,
            prompt=prompt,
            server_address=address,
            server_port=port,
            gated=self.operation == "create_cached_content",  # only a creation bills tokens up front
        )

    def prepare(
        self, request: Request, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return args, kwargs

    def error_type(self, error: BaseException) -> str | None:
        return api_error_code(error)

    def result(self, response: Any, request: Request) -> Any:  # pragma: no cover - defer() always finishes
        from tokenmeter._wrap import Result

        return Result(None)


class CreateCache(_CacheEndpoint):
    """``(Async)Caches.create``: the cache's tokens at the input rate, its storage for its TTL."""

    operation = "create_cached_content"

    def request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        config = kwargs.get("config")
        texts: list[str] = []
        _texts(_option(config, "contents"), texts)
        _texts(_option(config, "system_instruction"), texts)
        return self._request(instance, self._model_name(kwargs.get("model")), " ".join(texts))

    def prepare(
        self, request: Request, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return args, model_kwarg(request, kwargs, self._model_name)

    def defer(self, response: Any, call: MeteredCall) -> bool:
        request = call.request
        tokens = count(getattr(getattr(response, "usage_metadata", None), "total_token_count", None))
        estimated = tokens is None
        if tokens is None:
            tokens = int(count_tokens(request.prompt or "", request.model)) if request.prompt else 0
        created = _epoch(getattr(response, "create_time", None))
        expires = _epoch(getattr(response, "expire_time", None))
        usage = Usage(input=tokens, estimated=estimated)
        if created is not None and expires is not None and expires > created:
            usage = with_units(usage, cache_storage=round(tokens * round(expires - created, 6)))
        name = getattr(response, "name", None)
        if isinstance(name, str) and name:
            if expires is not None:
                _remember(name, request.provider, request.model, tokens, expires)
            _cache_attributes(call, name, expires)
        call.stop(usage, response_model=self._model_name(getattr(response, "model", None)) or None)
        return True


class UpdateCache(_CacheEndpoint):
    """``(Async)Caches.update``: a later expiry meters the added storage; an earlier one releases some."""

    operation = "update_cached_content"

    def request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        known = _known(str(kwargs.get("name") or ""))
        return self._request(instance, known[1] if known is not None else "")

    def defer(self, response: Any, call: MeteredCall) -> bool:
        name = str(getattr(response, "name", None) or "")
        known = _known(name)
        expires = _epoch(getattr(response, "expire_time", None))
        model = self._model_name(getattr(response, "model", None))
        if not call.request.model and model:
            call.request.model = model  # the metrics and the price use the cache's model
            if call.span is not None and call.span.is_recording():
                call.span.set_attribute("gen_ai.request.model", model)
        _cache_attributes(call, name, expires)
        usage = Usage()
        if known is None or expires is None:
            if call.span is not None and call.span.is_recording():
                call.span.set_attribute("tokenmeter.cache.expiry_unknown", True)
        else:
            provider, cached_model, tokens, before = known
            _remember(name, provider, cached_model, tokens, expires)
            if expires > before:
                usage = with_units(usage, cache_storage=round(tokens * round(expires - before, 6)))
            elif expires < before:
                _released(call, tokens, before - expires)
        call.stop(usage, response_model=model or None)
        return True


class DeleteCache(_CacheEndpoint):
    """``(Async)Caches.delete``: no charge; the storage metered past now is released (on the span)."""

    operation = "delete_cached_content"

    def request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        known = _known(str(kwargs.get("name") or ""))
        request = self._request(instance, known[1] if known is not None else "")
        request.attributes["tokenmeter.cache.name"] = str(kwargs.get("name") or "")
        return request

    def defer(self, response: Any, call: MeteredCall) -> bool:
        name = str(call.request.attributes.get("tokenmeter.cache.name") or "")
        known = _forget(name) or _forget(f"cachedContents/{name}")
        if known is None:
            if call.span is not None and call.span.is_recording():
                call.span.set_attribute("tokenmeter.cache.expiry_unknown", True)
        else:
            now = time.time()
            if known[3] > now:
                _released(call, known[2], known[3] - now)
        call.stop(Usage())
        return True


def _option(config: Any, key: str) -> Any:
    return config.get(key) if isinstance(config, dict) else getattr(config, key, None)


def _cache_attributes(call: MeteredCall, name: str, expires: float | None) -> None:
    span = call.span
    if span is None or not span.is_recording():
        return
    if name:
        span.set_attribute("tokenmeter.cache.name", name)
    if expires is not None:
        span.set_attribute("tokenmeter.cache.expire_time", datetime.fromtimestamp(expires, UTC).isoformat())
