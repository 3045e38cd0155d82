"""A loopback HTTP server that answers with scripted raw bytes: any status, headers and (chunked) body.

``FakeProvider`` speaks each provider's wire format correctly; the hostile corpus needs the opposite --
truncated JSON, wrong types, HTML error pages, streams cut mid-way -- so this server sends exactly the
bytes a case scripts. Every request is answered by the next queued :class:`Raw` (the last one repeats).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Raw:
    """One scripted answer. ``body`` bytes go out with a content-length; a list goes out chunked, piece by
    piece; ``cut`` drops the connection after the pieces (no terminating chunk: a stream cut mid-way)."""

    status: int = 200
    body: bytes | list[bytes] = b""
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    cut: bool = False


@dataclass
class Seen:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: bytes


Answer = Raw | Callable[[Seen], Raw]
"""A scripted answer, or a function of the request giving one (e.g. a 400 when it names stream_options)."""


class RawServer:
    """``with RawServer() as srv: srv.enqueue(Raw(...)); client(base_url=srv.url)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Answer] = deque()
        self._last: Answer = Raw(body=b"{}")
        self.seen: list[Seen] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RawServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.raw = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def enqueue(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order."""
        with self._lock:
            self._queue.extend(answers)

    def reset(self) -> None:
        """Forget queued answers and seen requests."""
        with self._lock:
            self._queue.clear()
            self.seen.clear()

    def take(self, seen: Seen) -> Raw:
        with self._lock:
            self.seen.append(seen)
            if self._queue:
                self._last = self._queue.popleft()
            answer = self._last
        return answer if isinstance(answer, Raw) else answer(seen)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def handle_one_request(self) -> None:
        """A client that hung up (a cut stream, a refused body) just ends the connection."""
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_POST(self) -> None:
        """Every call is a POST."""
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        answer: Raw = self.server.raw.take(seen)  # type: ignore[attr-defined]
        try:
            self._send(answer)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, answer: Raw) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if isinstance(answer.body, bytes):
            self.send_header("content-length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for piece in answer.body:
            if piece:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
        if answer.cut:
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
