"""Anthropic Message Batches: each result is metered when the results are read, at the batch rate.

``messages.batches.results(batch_id)`` streams one JSON line per request of the batch. Every
``succeeded`` line is one call that already happened: it is metered (never gated) as a ``chat`` call of
its message's model with ``processing=batch`` (priced at the Batch API rate) and the batch id on its span
(``tokenmeter.batch.id``). Reading the results twice meters them twice, as reading a file twice would
bill nothing new: callers read results once, the SDK gives no way to tell a second read apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import wrapt

from tokenmeter import _safe
from tokenmeter._call import record

from ._anthropic_usage import usage_from_message
from ._fields import field, nonempty

PROVIDER = "anthropic"


def meter_result(item: Any, batch_id: str) -> None:
    """Meter one batch result line (only ``succeeded`` results carry a message and bill tokens)."""
    try:
        result = field(item, "result")
        if field(result, "type") != "succeeded":
            return
        message = field(result, "message")
        usage = usage_from_message(message)
        model = nonempty(field(message, "model"))
        if usage is None or model is None:
            return
        record(
            PROVIDER,
            model,
            replace(usage, processing="batch"),
            response_model=model,
            attributes={"tokenmeter.batch.id": batch_id},
        )
    except Exception:
        _safe.log_once("anthropic.batch", "tokenmeter: metering a batch result failed")


class MeteredResults(wrapt.ObjectProxy[Any]):
    """A ``JSONLDecoder`` of batch results that meters each result as it is read."""

    def __init__(self, wrapped: Any, batch_id: str) -> None:
        super().__init__(wrapped)
        self._self_batch_id = batch_id

    def __iter__(self) -> Any:
        for item in self.__wrapped__:
            meter_result(item, self._self_batch_id)
            yield item


class AsyncMeteredResults(wrapt.ObjectProxy[Any]):
    """An ``AsyncJSONLDecoder`` of batch results that meters each result as it is read."""

    def __init__(self, wrapped: Any, batch_id: str) -> None:
        super().__init__(wrapped)
        self._self_batch_id = batch_id

    async def __aiter__(self) -> Any:
        async for item in self.__wrapped__:
            meter_result(item, self._self_batch_id)
            yield item


def _batch_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    value = args[0] if args else kwargs.get("message_batch_id")
    return value if isinstance(value, str) else ""


def results(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``wrapt`` wrapper of ``Batches.results``."""
    decoder = wrapped(*args, **kwargs)
    try:
        return MeteredResults(decoder, _batch_id(args, kwargs))
    except Exception:
        return decoder


async def aresults(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``wrapt`` wrapper of ``AsyncBatches.results``."""
    decoder = await wrapped(*args, **kwargs)
    try:
        return AsyncMeteredResults(decoder, _batch_id(args, kwargs))
    except Exception:
        return decoder
