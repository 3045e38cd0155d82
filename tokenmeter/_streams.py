"""Stream proxies: meter a provider stream exactly once, however the caller leaves it.

The proxy forwards everything to the SDK's stream object (attributes, ``response``, helpers) and
finalizes on exhaustion, ``close()``, leaving its ``with`` block, an error mid-stream, or an early
``break`` followed by garbage collection -- whichever comes first. A collected proxy is finished soon
after, outside the garbage collector (see ``_orphans``).
"""

from __future__ import annotations

from collections.abc import Callable
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
        """capture_content only: the chunk's text, then the accumulator (what the proxy calls per chunk)."""
        try:
            text = self.text_of(chunk)  # type: ignore[misc]
            if text:
                self.texts.append(text)  # type: ignore[union-attr]
        except Exception:
            _safe.log_once("stream.content", "tokenmeter: capturing stream content failed")
        return self.acc.on_chunk(chunk)

    def reader(self) -> Callable[[Any], bool]:
        """What the proxy calls with each chunk: the accumulator itself unless content is captured."""
        return self.acc.on_chunk if self.texts is None else self.see

    def hidden(self) -> None:
        """A chunk was hidden from the caller, so from any instrumentation wrapping this call too: its
        usage is tokenmeter's alone to put on the semconv token histogram."""
        self.call.usage_hidden = True

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
    """Proxy of a synchronous SDK stream.

    Per chunk, ``__next__`` does only this: the wrapped iterator's ``__next__`` and the accumulator's
    ``on_chunk`` (both bound once, at the first chunk); content capture adds its reader only when on.
    """

    def __init__(self, wrapped: Any, call: MeteredCall, acc: StreamAccumulator) -> None:
        super().__init__(wrapped)
        fin = _Finalizer(call, acc)
        self._self_fin = fin
        self._self_see = fin.reader()
        self._self_next: Any = None

    def __iter__(self) -> MeteredStream:
        return self

    def __next__(self) -> Any:
        next_ = self._self_next
        if next_ is None:
            return self._first()
        while True:
            try:
                chunk = next_()
            except StopIteration:
                self._self_fin.finish()
                raise
            except Exception as exc:
                self._self_fin.finish(exc)
                raise
            try:
                if self._self_see(chunk):
                    return chunk
            except Exception:
                _safe.log_once("stream.chunk", "tokenmeter: reading a stream chunk failed")
                return chunk
            self._self_fin.hidden()

    def _first(self) -> Any:
        # A lazy stream (a generator, e.g. google-genai's) sends its request now: its HTTP attempts
        # belong to this call (see _transport).
        self._self_next = iter(self.__wrapped__).__next__
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
    """Proxy of an asynchronous SDK stream (per chunk, as little as :class:`MeteredStream`)."""

    def __init__(self, wrapped: Any, call: MeteredCall, acc: StreamAccumulator) -> None:
        super().__init__(wrapped)
        fin = _Finalizer(call, acc)
        self._self_fin = fin
        self._self_see = fin.reader()
        self._self_next: Any = None

    def __aiter__(self) -> AsyncMeteredStream:
        return self

    async def __anext__(self) -> Any:
        next_ = self._self_next
        if next_ is None:
            return await self._first()
        while True:
            try:
                chunk = await next_()
            except StopAsyncIteration:
                self._self_fin.finish()
                raise
            except Exception as exc:
                self._self_fin.finish(exc)
                raise
            try:
                if self._self_see(chunk):
                    return chunk
            except Exception:
                _safe.log_once("stream.chunk", "tokenmeter: reading a stream chunk failed")
                return chunk
            self._self_fin.hidden()

    async def _first(self) -> Any:
        # As MeteredStream._first: a lazy async stream sends its request at the first chunk.
        self._self_next = self.__wrapped__.__aiter__().__anext__
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
