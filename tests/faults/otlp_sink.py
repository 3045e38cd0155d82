"""Loopback OTLP/HTTP receivers for the fault-injection suite: one that records, one that never answers."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def _attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None
    return out


class OtlpSink:
    """Records spans and the latest cumulative ``tokenmeter.calls`` points per ``service.instance.id``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: Counter[str] = Counter()  # instance id (or "-") -> spans received
        self.calls: dict[str, float] = {}  # instance id -> latest cumulative tokenmeter.calls (all outcomes)
        self.requests = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    sink._take(self.path, body)
                finally:
                    self.send_response(200)
                    self.send_header("content-type", "application/x-protobuf")
                    self.send_header("content-length", "0")
                    self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _take(self, path: str, body: bytes) -> None:
        with self.lock:
            self.requests += 1
            if path.endswith("/v1/traces"):
                req = ExportTraceServiceRequest.FromString(body)
                for rs in req.resource_spans:
                    inst = str(_attrs(rs.resource.attributes).get("service.instance.id", "-"))
                    self.spans[inst] += sum(len(ss.spans) for ss in rs.scope_spans)
            elif path.endswith("/v1/metrics"):
                mreq = ExportMetricsServiceRequest.FromString(body)
                for rm in mreq.resource_metrics:
                    inst = str(_attrs(rm.resource.attributes).get("service.instance.id", "-"))
                    for sm in rm.scope_metrics:
                        for m in sm.metrics:
                            if m.name == "tokenmeter.calls":
                                self.calls[inst] = sum(p.as_int or p.as_double for p in m.sum.data_points)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Blackhole:
    """Accepts TCP connections and never answers (a hung collector)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for conn in self.held:
            conn.close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused: a collector that is down)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"
