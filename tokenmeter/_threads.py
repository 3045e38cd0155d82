"""Context across threads: ``ThreadPoolExecutor`` carries it once configured; ``in_context`` for the rest."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import wrapt

T = TypeVar("T")
_patched = False


def in_context(fn: Callable[..., T]) -> Callable[..., T]:
    """Bind ``fn`` to the current context (attribution, spans, baggage) so another thread can run it.

    threading.Thread(target=tokenmeter.in_context(work)).start()
    """
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> T:
        # A fresh copy per run: the same wrapped function may run in several threads at once.
        return ctx.copy().run(fn, *args, **kwargs)

    return run


def _submit(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not args:
        return wrapped(*args, **kwargs)
    fn, *rest = args
    ctx = contextvars.copy_context()
    return wrapped(ctx.run, fn, *rest, **kwargs)


def instrument_executors() -> None:
    """Make ``ThreadPoolExecutor.submit`` (and so ``map``) run tasks in the submitter's context."""
    global _patched
    if _patched:
        return
    wrapt.wrap_function_wrapper(ThreadPoolExecutor, "submit", _submit)
    _patched = True


def uninstrument_executors() -> None:
    """Undo :func:`instrument_executors`."""
    global _patched
    if not _patched:
        return
    submit = ThreadPoolExecutor.submit
    original = getattr(submit, "__wrapped__", None)
    if original is not None:
        ThreadPoolExecutor.submit = original  # type: ignore[method-assign]
    _patched = False
