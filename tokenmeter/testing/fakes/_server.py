"""The loopback HTTP server behind :class:`FakeProvider`: routing, request log, reply queue."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

from . import _anthropic, _bedrock, _gemini, _openai, _recorded
from ._common import HttpResponse, Provider, ReceivedRequest, Reply, Route, json_response

_Responder = Callable[[ReceivedRequest, Reply], HttpResponse]
_ROUTERS = (_openai.route, _anthropic.route, _bedrock.route, _gemini.route)
_RESPONDERS: dict[Provider, _Responder] = {
    "openai": _openai.respond,
    "anthropic": _anthropic.respond,
    "bedrock": _bedrock.respond,
    "gemini": _gemini.respond,
}
_STREAM_OPS = ("converse-stream", "invoke-with-response-stream", "streamGenerateContent")


class FakeProvider:
    """A fake LLM provider on ``127.0.0.1`` speaking OpenAI, Azure OpenAI, Anthropic, Bedrock and Gemini.

    Use as a context manager (or call :meth:`start` / :meth:`stop`) and point a
    real client at :attr:`url`.  Replies queued with :meth:`enqueue` are used
    first-in first-out by the next requests of any provider; when the queue is
    empty a deterministic default reply is computed from the request.

    Client set-up against ``fp.url``:

    - ``openai.OpenAI(base_url=fp.url + "/v1", api_key="x")``
    - ``openai.AzureOpenAI(azure_endpoint=fp.url, api_key="x", api_version="2024-10-21")``
    - ``anthropic.Anthropic(base_url=fp.url, api_key="x")`` (and ``AnthropicBedrock(base_url=fp.url,
      aws_region="us-east-1", aws_access_key="x", aws_secret_key="x")``)
    - ``boto3.client("bedrock-runtime", endpoint_url=fp.url, region_name="us-east-1",
      aws_access_key_id="x", aws_secret_access_key="x")``
    - ``genai.Client(api_key="x", http_options={"base_url": fp.url, "api_version": "v1beta"})``
      (keep the client referenced: a collected ``genai.Client`` closes its HTTP client)
    """

    def __init__(self, *, port: int = 0) -> None:
        """Create a stopped server; :meth:`start` binds ``127.0.0.1:port`` (0 = an OS-chosen free port)."""
        self._bind_port = port
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._requests: list[ReceivedRequest] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeProvider:
        """Start serving in a daemon thread (idempotent); returns ``self``."""
        if self._httpd is None:
            httpd = _HTTPServer(("127.0.0.1", self._bind_port), _Handler)
            httpd.provider = self
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever, args=(0.05,), name="tokenmeter-fake-provider", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        httpd, thread = self._httpd, self._thread
        self._httpd, self._thread = None, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the server must be started)."""
        if self._httpd is None:
            raise RuntimeError("FakeProvider is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (no trailing slash, no ``/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    # -- script and log --------------------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many queued replies have not been used yet."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of the requests received so far (oldest first)."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget received requests and drop queued replies (a clean slate between tests)."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()

    def _take(self, request: ReceivedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            return self._queue.popleft() if self._queue else Reply()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    provider: FakeProvider


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms delayed-ACK stalls

    def version_string(self) -> str:
        """The ``Server`` header value."""
        return "tokenmeter-fake/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_GET(self) -> None:
        """Every GET is unknown to the fake."""
        self._handle()

    def do_POST(self) -> None:
        """Route a provider call."""
        self._handle()

    def do_PATCH(self) -> None:
        """Route a resource update (Gemini ``cachedContents``)."""
        self._handle()

    def do_DELETE(self) -> None:
        """Route a resource deletion (Gemini ``cachedContents``)."""
        self._handle()

    def _handle(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        raw = self._read_body()
        route = _route(split.path) if self.command == "POST" else _gemini.route(split.path, self.command)
        if route is None and self.command == "GET":
            self._send(_recorded.respond_get(self, split.path, cast(_HTTPServer, self.server).provider))
            return
        if route is None:
            message = f"tokenmeter fake provider: no route for {self.command} {split.path}"
            self._send(json_response(404, {"error": {"message": message, "type": "not_found"}}))
            return
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else {}
        query = dict(urllib.parse.parse_qsl(split.query))
        stream = route.operation in _STREAM_OPS or body.get("stream") is True
        model = route.model or (body.get("model") if isinstance(body.get("model"), str) else None)
        request = ReceivedRequest(
            method=self.command,
            path=split.path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=raw,
            json=parsed,
            provider=route.provider,
            operation=route.operation,
            model=model,
            stream=stream,
        )
        reply = cast(_HTTPServer, self.server).provider._take(request)
        if reply.delay_s > 0:
            time.sleep(reply.delay_s)
        try:
            responder = _recorded.respond if reply.body is not None else _RESPONDERS[route.provider]
            response = responder(request, reply)
        except Exception as exc:  # a fake bug or an odd body: answer clearly instead of dropping the connection
            message = f"tokenmeter fake provider failed on {route.provider} {route.operation}: {exc!r}"
            response = json_response(500, {"error": {"message": message, "type": "fake_provider_error"}})
        self._send(response)

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_one_request(self) -> None:
        """Handle one request; a client that hung up (e.g. on a timeout) just ends the connection."""
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        body = response.body
        if isinstance(body, bytes):
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for piece in body:
            if piece:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _route(path: str) -> Route | None:
    for router in _ROUTERS:
        route = router(path)
        if route is not None:
            return route
    return None
