"""Stream proxies: meter a provider stream exactly once, however the caller leaves it.

The proxy forwards everything to the SDK's stream object (attributes, ``response``, helpers) and
finalizes on exhaustion, ``close()``, leaving its ``with`` block, an error mid-stream, or an early
``break`` followed by garbage collection -- whichever comes first. A collected proxy is finished soon
after, outside the garbage collector (see ``_orphans``).
"""

from __future__ import annotations

from typing import Any

import wrapt

from . import _content, _orphans, _safe
from ._call import MeteredCall
from ._context import CURRENT_CALL
from ._wrap import Result, StreamAccumulator


class _Finalizer:
    """Shared once-only end of a metered stream."""

    __slots__ = ("acc", "call", "done", "text_of", "texts")

    def __init__(self, call: MeteredCall, acc: StreamAccumulator) -> None:
        self.call = call
        self.acc = acc
        self.done = False
        # capture_content only: the endpoint's stream_text(chunk) pieces; None (no per-chunk work) otherwise
        self.text_of = getattr(call.endpoint, "stream_text", None) if call.meter.options.capture_content else None
        self.texts: list[str] | None = None if self.text_of is None else []

    def see(self, chunk: Any) -> bool:
        texts = self.texts
        if texts is not None:
            try:
                text = self.text_of(chunk)  # type: ignore[misc]
                if text:
                    texts.append(text)
            except Exception:
                _safe.log_once("stream.content", "tokenmeter: capturing stream content failed")
        try:
            if self.acc.on_chunk(chunk):
                return True
            # Hidden from the caller, so from any instrumentation wrapping this call too: its usage is
            # tokenmeter's alone to put on the semconv token histogram.
            self.call.usage_hidden = True
            return False
        except Exception:
            _safe.log_once("stream.chunk", "tokenmeter: reading a stream chunk failed")
            return True

    def finish(self, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        try:
            self._finish(error)
        except Exception:
            _safe.log_once("stream.finish", "tokenmeter: finishing a stream failed")

    def _finish(self, error: BaseException | None) -> None:
        try:
            result: Result = self.acc.result()
        except Exception:
            _safe.log_once("stream.result", "tokenmeter: reading stream usage failed")
            result = Result(None)
        if self.texts is not None:
            self.call.output = _content.output_text(self.texts, result.finish_reasons)
        if error is not None:
            self.call.fail(error, result.usage)
        else:
            self.call.stop(
                result.usage,
                response_model=result.response_model,
                response_id=result.response_id,
                finish_reasons=result.finish_reasons,
                provider_cost_usd=result.provider_cost_usd,
            )


class MeteredStream(wrapt.ObjectProxy[Any]):
    """Proxy of a synchronous SDK stream."""

    def __init__(self, wrapped: Any, call: MeteredCall, acc: StreamAccumulator) -> None:
        super().__init__(wrapped)
        self._self_fin = _Finalizer(call, acc)
        self._self_iter: Any = None

    def __iter__(self) -> MeteredStream:
        return self

    def __next__(self) -> Any:
        if self._self_iter is None:
            return self._first()
        fin = self._self_fin
        while True:
            try:
                chunk = next(self._self_iter)
            except StopIteration:
                fin.finish()
                raise
            except Exception as exc:
                fin.finish(exc)
                raise
            if fin.see(chunk):
                return chunk

    def _first(self) -> Any:
        # A lazy stream (a generator, e.g. google-genai's) sends its request now: its HTTP attempts
        # belong to this call (see _transport).
        self._self_iter = iter(self.__wrapped__)
        call = self._self_fin.call
        token = CURRENT_CALL.set(call)
        try:
            chunk = self.__next__()
            call.first_chunk()
            return chunk
        finally:
            CURRENT_CALL.reset(token)

    def close(self) -> Any:
        try:
            close = getattr(self.__wrapped__, "close", None)
            return close() if close is not None else None
        finally:
            self._self_fin.finish()

    def __enter__(self) -> MeteredStream:
        enter = getattr(self.__wrapped__, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__exit__", None)
            return exit_(exc_type, exc, tb) if exit_ is not None else None
        finally:
            self._self_fin.finish()

    def __del__(self) -> None:
        fin = self._self_fin
        if not fin.done:
            _orphans.abandon(fin.finish)


class AsyncMeteredStream(wrapt.ObjectProxy[Any]):
    """Proxy of an asynchronous SDK stream."""

    def __init__(self, wrapped: Any, call: MeteredCall, acc: StreamAccumulator) -> None:
        super().__init__(wrapped)
        self._self_fin = _Finalizer(call, acc)
        self._self_iter: Any = None

    def __aiter__(self) -> AsyncMeteredStream:
        return self

    async def __anext__(self) -> Any:
        if self._self_iter is None:
            return await self._first()
        fin = self._self_fin
        while True:
            try:
                chunk = await self._self_iter.__anext__()
            except StopAsyncIteration:
                fin.finish()
                raise
            except Exception as exc:
                fin.finish(exc)
                raise
            if fin.see(chunk):
                return chunk

    async def _first(self) -> Any:
        # As MeteredStream._first: a lazy async stream sends its request at the first chunk.
        self._self_iter = self.__wrapped__.__aiter__()
        call = self._self_fin.call
        token = CURRENT_CALL.set(call)
        try:
            chunk = await self.__anext__()
            call.first_chunk()
            return chunk
        finally:
            CURRENT_CALL.reset(token)

    async def close(self) -> Any:
        try:
            close = getattr(self.__wrapped__, "close", None)
            return (await close()) if close is not None else None
        finally:
            self._self_fin.finish()

    async def aclose(self) -> Any:
        try:
            aclose = getattr(self.__wrapped__, "aclose", None) or getattr(self.__wrapped__, "close", None)
            return (await aclose()) if aclose is not None else None
        finally:
            self._self_fin.finish()

    async def __aenter__(self) -> AsyncMeteredStream:
        enter = getattr(self.__wrapped__, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__aexit__", None)
            return (await exit_(exc_type, exc, tb)) if exit_ is not None else None
        finally:
            self._self_fin.finish()

    def __del__(self) -> None:
        fin = self._self_fin
        if not fin.done:
            _orphans.abandon(fin.finish)
