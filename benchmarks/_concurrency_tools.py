"""Parts of ``concurrency.py``: the loopback server (run in its own process) and the py-spy sample reader."""

from __future__ import annotations

from typing import Any


def serve(port: int, latency_ms: float, chunk_ms: float, chunks: int) -> None:
    """A plain ASGI app under uvicorn: pre-built OpenAI bodies, delayed like a provider."""
    import asyncio

    import uvicorn

    from tokenmeter.testing.fakes import Reply
    from tokenmeter.testing.fakes._common import ReceivedRequest
    from tokenmeter.testing.fakes._openai import respond

    def build(stream: bool) -> tuple[dict[str, str], list[bytes]]:
        body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        path = "/v1/chat/completions"
        req = ReceivedRequest("POST", path, {}, {}, b"", body, "openai", "chat", "gpt-4o-mini", stream)
        resp = respond(req, Reply(input_tokens=40, output_tokens=chunks, chunks=chunks))
        parts = [resp.body] if isinstance(resp.body, bytes) else list(resp.body)
        return resp.headers, parts

    plain_headers, plain = build(False)
    stream_headers, events = build(True)

    def head(headers: dict[str, str], length: int | None) -> list[tuple[bytes, bytes]]:
        out = [(k.encode(), v.encode()) for k, v in headers.items()]
        if length is not None:
            out.append((b"content-length", str(length).encode()))
        return out

    plain_head = head(plain_headers, len(plain[0]))
    stream_head = head(stream_headers, None)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if b'"stream":true' in body.replace(b" ", b""):
            await send({"type": "http.response.start", "status": 200, "headers": stream_head})
            for event in events:
                if chunk_ms:
                    await asyncio.sleep(chunk_ms / 1000)
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        await send({"type": "http.response.start", "status": 200, "headers": plain_head})
        await send({"type": "http.response.body", "body": plain[0]})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False, backlog=4096, lifespan="off")


_LOCK_LINE = ("acquire(", "with self._lock", "with _lock", "with _LOCK", "with lock", ".wait(", "_lock:", "lock:")
_IO_LINE = ("recv", "select(", "poll(", "read(", "readinto", "sock", "connect(")


def convoy_report(path: str) -> dict[str, Any]:
    """Where the 16 calling threads are in py-spy's ``--idle --threads`` samples (raw format).

    Each sample's innermost Python frame is read back (``linecache``): a line taking a lock or waiting on a
    condition is a lock wait, a socket or selector call is I/O (waiting for the server), anything else is
    running (or waiting for the GIL, which py-spy does not tell apart). A convoy would show as many samples
    on one lock's line.
    """
    import linecache
    import re

    frame = re.compile(r"^(?P<fn>.*) \((?P<file>.*):(?P<line>\d+)\)$")
    totals = {"samples": 0, "lock_wait": 0, "io_wait": 0, "running": 0, "under_tokenmeter": 0}
    locks: dict[str, int] = {}
    with open(path) as f:
        for raw in f:
            stack, _, count = raw.rstrip("\n").rpartition(" ")
            frames = stack.split(";")
            if not frames[0].startswith("thread (") or "bench-" not in frames[0]:
                continue
            n = int(count)
            totals["samples"] += n
            if any("/tokenmeter/" in fr or "/integrations/" in fr for fr in frames[1:]):
                totals["under_tokenmeter"] += n
            m = frame.match(frames[-1])
            text = linecache.getline(m["file"], int(m["line"])).strip() if m else ""
            if any(k in text for k in _LOCK_LINE):
                totals["lock_wait"] += n
                where = f"{m['fn']} ({m['file'].rsplit('site-packages/', 1)[-1]}:{m['line']}): {text}" if m else text
                locks[where] = locks.get(where, 0) + n
            elif any(k in text for k in _IO_LINE):
                totals["io_wait"] += n
            else:
                totals["running"] += n
    out: dict[str, Any] = dict(totals)
    out["top_lock_waits"] = sorted(locks.items(), key=lambda kv: -kv[1])[:6]
    return out
