"""Attribution crosses threads (ThreadPoolExecutor, in_context) and services (W3C baggage over real HTTP)."""

from __future__ import annotations

import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry import propagate

import tokenmeter
from tokenmeter import Usage
from tokenmeter.testing import Capture


def test_thread_pool_executor_carries_attribution_and_rollups(cap: Capture) -> None:
    def work(i: int) -> str | None:
        tokenmeter.record("openai", "gpt-4o-mini", Usage(input=i, output=1))
        return tokenmeter.current_scope().team

    with tokenmeter.workflow("batch", team="data"), ThreadPoolExecutor(4) as pool:
        teams = list(pool.map(work, range(1, 9)))
    assert teams == ["data"] * 8
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.team.name": "data"}) == sum(range(1, 9)) + 8
    wf = dict(cap.span("invoke_workflow batch").attributes or {})
    assert wf["tokenmeter.rollup.calls"] == 8


def test_in_context_for_plain_threads(cap: Capture) -> None:
    seen: list[Any] = []

    def work() -> None:
        seen.append(tokenmeter.current_scope().workflow)
        tokenmeter.record("openai", "gpt-4o", Usage(input=3))

    with tokenmeter.attributes(workflow="nightly", team="data"):
        t = threading.Thread(target=tokenmeter.in_context(work))
        t.start()
        t.join()
        bare = threading.Thread(target=lambda: seen.append(tokenmeter.current_scope().workflow))
        bare.start()
        bare.join()
    assert seen == ["nightly", None]
    assert cap.counter("tokenmeter.tokens", **{"gen_ai.workflow.name": "nightly"}) == 3


class _Downstream(BaseHTTPRequestHandler):
    """A downstream service: extracts the incoming context and makes an LLM call inside it."""

    def do_GET(self) -> None:
        ctx = propagate.extract({k.lower(): v for k, v in self.headers.items()})
        from opentelemetry import context as otel_context

        token = otel_context.attach(ctx)
        try:
            tokenmeter.record("openai", "gpt-4o", Usage(input=42, output=7))
            scope = tokenmeter.current_scope()
            body = json.dumps({"team": scope.team, "workflow": scope.workflow, "tier": scope.tier}).encode()
        finally:
            otel_context.detach(token)
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_team_workflow_and_tier_travel_as_baggage_across_a_real_http_hop(cap: Capture) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Downstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with tokenmeter.workflow("refund", team="payments", tier="standard"):
            headers: dict[str, str] = {}
            propagate.inject(headers)
            assert "tokenmeter.team=payments" in headers["baggage"]
            req = urllib.request.Request(f"http://127.0.0.1:{server.server_address[1]}/", headers=headers)
            with urllib.request.urlopen(req, timeout=10) as resp:
                seen = json.loads(resp.read())
    finally:
        server.shutdown()
        server.server_close()
    assert seen == {"team": "payments", "workflow": "refund", "tier": "standard"}
    assert (
        cap.counter("tokenmeter.tokens", **{"tokenmeter.team.name": "payments", "gen_ai.workflow.name": "refund"}) == 49
    )
    downstream = cap.span("chat gpt-4o")
    wf = cap.span("invoke_workflow refund")
    assert downstream.context.trace_id == wf.context.trace_id
