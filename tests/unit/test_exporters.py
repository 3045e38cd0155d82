"""tokenmeter's own providers: OTLP/HTTP to a loopback receiver; the application's global providers win."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import tokenmeter
from tokenmeter import Usage


class _Receiver(BaseHTTPRequestHandler):
    received: dict[str, list[bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.received.setdefault(self.path, []).append(body)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = {}  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_otlp_http_export_of_spans_and_metrics(receiver: Any) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}"
    meter = tokenmeter.configure(service_name="otlp-test", exporter="otlp", endpoint=url)
    try:
        with tokenmeter.workflow("w", team="t"):
            tokenmeter.record("openai", "gpt-4o", Usage(input=11, output=4))
        assert meter.force_flush()
    finally:
        tokenmeter.unconfigure()
    traces = ExportTraceServiceRequest()
    for body in receiver.received["/v1/traces"]:
        traces.MergeFromString(body)
    names = [s.name for rs in traces.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert sorted(names) == ["chat gpt-4o", "invoke_workflow w"]
    service = {a.key: a.value.string_value for a in traces.resource_spans[0].resource.attributes}["service.name"]
    assert service == "otlp-test"
    metrics = ExportMetricsServiceRequest()
    metrics.MergeFromString(receiver.received["/v1/metrics"][-1])
    tokens = {}
    for rm in metrics.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == "tokenmeter.tokens":
                    for p in m.sum.data_points:
                        attrs = {a.key: a.value.string_value for a in p.attributes}
                        tokens[attrs["tokenmeter.token.class"]] = p.as_int
    assert tokens == {"input": 11, "output": 4}


def test_global_providers_installed_by_the_application_are_used_not_replaced() -> None:
    code = textwrap.dedent(
        """
        from opentelemetry import trace, metrics
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        import tokenmeter
        exporter = InMemorySpanExporter()
        tp = TracerProvider(); tp.add_span_processor(SimpleSpanProcessor(exporter))
        reader = InMemoryMetricReader(); mp = MeterProvider(metric_readers=[reader])
        trace.set_tracer_provider(tp); metrics.set_meter_provider(mp)
        m = tokenmeter.configure(exporter="console")
        assert m.tracer_provider is tp and m.meter_provider is mp
        tokenmeter.record("openai", "gpt-4o", tokenmeter.Usage(input=3))
        tokenmeter.configure()
        tokenmeter.record("openai", "gpt-4o", tokenmeter.Usage(input=4))
        assert trace.get_tracer_provider() is tp
        print(len(exporter.get_finished_spans()))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
