"""OpenAI Batch API output files: each result line is metered when the file is read, at the batch rate.

A Batch output file (``files.content(output_file_id)``) holds one JSON line per request:
``{"custom_id", "response": {"status_code", "body": <the endpoint's response>}, "error"}``. A file whose
every line has that shape is a batch output: each line with a 200 response is metered as a call of its
body's model (chat completions, Responses or embeddings), never gated, with ``processing=batch`` (the
Batch API rate) and the file id on the span (``tokenmeter.batch.output_file_id``). Any other file is
left alone. Reading the same file again meters it again (nothing tells a second read apart).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tokenmeter import _safe
from tokenmeter._call import record

from ._fields import field, nonempty
from ._openai_usage import combine, read, read_embeddings, read_responses

PROVIDER = "openai"


def _lines(data: bytes) -> list[Any] | None:
    """The parsed lines of a batch output file, or ``None`` when it is not one."""
    stripped = data.lstrip()
    if not stripped.startswith(b"{") or b'"custom_id"' not in stripped[:4096]:
        return None
    lines = []
    for raw in data.splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)
        if not isinstance(line, dict) or "custom_id" not in line or "response" not in line:
            return None
        lines.append(line)
    return lines


def meter_output(data: bytes, file_id: str, provider: str = PROVIDER) -> None:
    """Meter every successful line of a batch output file (nothing if ``data`` is not one)."""
    try:
        lines = _lines(data)
    except ValueError:
        return
    for line in lines or ():
        try:
            response = field(line, "response")
            if field(response, "status_code") != 200:
                continue
            body = field(response, "body")
            model = nonempty(field(body, "model"))
            kind = field(body, "object")
            if kind == "response":
                usage, operation = combine(read_responses(field(body, "usage"))), "chat"
            elif kind == "list":
                usage, operation = combine(read_embeddings(field(body, "usage"))), "embeddings"
            else:
                usage, operation = combine(read(field(body, "usage"))), "chat"
            if usage is None or model is None:
                continue
            record(
                provider,
                model,
                replace(usage, processing="batch"),
                operation=operation,
                response_model=model,
                attributes={"tokenmeter.batch.output_file_id": file_id},
            )
        except Exception:
            _safe.log_once("openai.batch", "tokenmeter: metering a batch output line failed")


def _file_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    value = args[0] if args else kwargs.get("file_id")
    return value if isinstance(value, str) else ""


def _read(result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        data = getattr(result, "content", None)
        if isinstance(data, bytes):
            meter_output(data, _file_id(args, kwargs))
    except Exception:
        _safe.log_once("openai.batch.read", "tokenmeter: reading a batch output file failed")


def content(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``wrapt`` wrapper of ``Files.content``: the caller's result is returned unchanged."""
    result = wrapped(*args, **kwargs)
    _read(result, args, kwargs)
    return result


async def acontent(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``wrapt`` wrapper of ``AsyncFiles.content``."""
    result = await wrapped(*args, **kwargs)
    _read(result, args, kwargs)
    return result
