"""``attempts()``: a retry loop whose failed attempts are metered as waste.

    for attempt in tokenmeter.attempts(3, retry_on=(ValidationError,)):
        with attempt:
            answer = call_llm_and_validate()

Calls inside attempt *n* carry ``tokenmeter.retry.attempt = n``. When an attempt raises one of
``retry_on`` and attempts remain, the exception is swallowed, the attempt's tokens and cost are added to
``tokenmeter.tokens.wasted`` / ``tokenmeter.cost.wasted`` (reason ``retried``) and the loop goes on.
The last attempt's exception propagates (its tokens are wasted with reason ``failed``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from . import _meter, _safe
from ._context import current_scope, reset_scope, set_scope
from ._rollup import Node


class Attempt:
    """One attempt of an :func:`attempts` loop; use it as a (async) context manager."""

    def __init__(self, loop: _AttemptLoop, number: int) -> None:
        self.loop = loop
        self.number = number
        self._token: Any = None
        self._node: Node | None = None
        self._scope: Any = None
        self._parent: Any = None

    def __enter__(self) -> Attempt:
        parent = self._parent = current_scope()
        self._node = Node(parent.node)
        self._scope = replace(parent, attempt=self.number, node=self._node)
        self._token = set_scope(self._scope)
        if self.number > 0 and parent.node is not None:
            parent.node.add_retry()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            reset_scope(self._token)
        except ValueError:  # left in another context than it was entered in: restore, never raise
            set_scope(self._parent)
        if exc is None:
            self.loop.done = True
            return False
        if not isinstance(exc, Exception):
            return False
        retry = isinstance(exc, self.loop.retry_on) and self.number + 1 < self.loop.max_attempts
        self._waste("retried" if retry else "failed")
        if retry:
            self.loop.last_error = exc
            return True
        return False

    async def __aenter__(self) -> Attempt:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        return self.__exit__(exc_type, exc, tb)

    def _waste(self, reason: str) -> None:
        from ._scopes import report_waste

        meter = _meter.active()
        if meter is None or self._node is None:
            return
        try:
            report_waste(meter, self._scope, self._node, reason)
        except Exception:
            _safe.log_once("attempt.waste", "tokenmeter: reporting wasted tokens failed")


class _AttemptLoop:
    def __init__(self, max_attempts: int, retry_on: tuple[type[BaseException], ...]) -> None:
        self.max_attempts = max_attempts
        self.retry_on = retry_on
        self.done = False
        self.last_error: BaseException | None = None

    def __iter__(self) -> Iterator[Attempt]:
        for number in range(self.max_attempts):
            if self.done:
                return
            yield Attempt(self, number)
            if self.done:
                return


def attempts(
    max_attempts: int, *, retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,)
) -> Iterator[Attempt]:
    """Yield up to ``max_attempts`` :class:`Attempt` objects; stop after the first that succeeds."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    retry = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    return iter(_AttemptLoop(max_attempts, retry))
