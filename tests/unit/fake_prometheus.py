"""A loopback fake of the Prometheus HTTP API over an in-memory sample store, for the reader's unit tests.

It evaluates exactly the query shapes :class:`~tokenmeter.finops.PrometheusReader` sends -- ``last_over_time(S[d])``,
``resets(S[d])``, raw ``S[d]``, as instant and range queries, and ``/api/v1/label/__name__/values`` -- with
Prometheus 3 / VictoriaMetrics window semantics ``(t - d, t]``, so hand-computed counter histories (new series,
resets, gaps) can be checked exactly. tests/e2e/test_prometheus_reader_e2e.py runs the same histories through a real
VictoriaMetrics.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
QUERY = re.compile(r"^(?:(last_over_time|resets)\()?(.+?)\[(\d+)(ms|s|m|h|d)\]\)?$")


class FakePrometheus:
    """``add(name, labels, [(t, v), ...])`` then point a reader at ``url``; ``requests`` records what came in."""

    def __init__(self) -> None:
        self.series: list[tuple[dict[str, str], list[tuple[float, float]]]] = []
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.fail: tuple[int, bytes] | None = None  # (status, body) to answer every request with
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                params = urllib.parse.parse_qs(url.query)
                fake.requests.append((url.path, params, dict(self.headers)))
                status, body = fake.fail or fake.answer(url.path, params)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakePrometheus:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, name: str, labels: dict[str, str], samples: list[tuple[float, float]]) -> None:
        self.series.append(({"__name__": name, **labels}, sorted(samples)))

    # -- evaluation ------------------------------------------------------------------------------------------------
    def answer(self, path: str, params: dict[str, list[str]]) -> tuple[int, bytes]:
        if path == "/api/v1/label/__name__/values":
            pattern = re.fullmatch(r'\{__name__=~"(.*)"\}', params["match[]"][0])
            assert pattern, params
            start, end = float(params["start"][0]), float(params["end"][0])
            names = sorted(
                {
                    s["__name__"]
                    for s, points in self.series
                    if re.fullmatch(pattern.group(1), s["__name__"]) and any(start <= t <= end for t, _ in points)
                }
            )
            return 200, _ok(names)
        query = params["query"][0]
        if path == "/api/v1/query":
            kind, result = self._eval(query, float(params["time"][0]))
            return 200, _ok({"resultType": kind, "result": result})
        if path == "/api/v1/query_range":
            start, end, step = (float(params[k][0]) for k in ("start", "end", "step"))
            assert (end - start) / step < 11_000, "Prometheus refuses more than 11,000 points per series"
            rows: dict[str, dict[str, Any]] = {}
            t = start
            while t <= end + 1e-9:
                for s in self._eval(query, t)[1]:
                    key = json.dumps(s["metric"], sort_keys=True)
                    row = rows.setdefault(key, {"metric": s["metric"], "values": []})
                    row["values"].append(s["value"])
                t += step
            return 200, _ok({"resultType": "matrix", "result": list(rows.values())})
        return 404, b'{"status":"error","error":"not found"}'

    def _eval(self, query: str, at: float) -> tuple[str, list[dict[str, Any]]]:
        m = QUERY.match(query)
        assert m, f"query shape the fake does not know: {query}"
        fn, selector, n, unit = m.groups()
        window = int(n) * UNITS[unit]
        name = re.fullmatch(r'\{__name__="(.+)"\}', selector)
        metric = name.group(1) if name else selector
        out: list[dict[str, Any]] = []
        for labels, points in self.series:
            if labels["__name__"] != metric:
                continue
            inside = [(t, v) for t, v in points if at - window < t <= at]
            if not inside:
                continue
            shown = {k: v for k, v in labels.items() if fn is None or k != "__name__"}
            if fn is None:
                out.append({"metric": shown, "values": [[t, _num(v)] for t, v in inside]})
            elif fn == "last_over_time":
                out.append({"metric": shown, "value": [at, _num(inside[-1][1])]})
            else:
                resets = sum(1 for (_, a), (_, b) in itertools.pairwise(inside) if b < a)
                out.append({"metric": shown, "value": [at, str(resets)]})
        return ("matrix" if fn is None else "vector"), out


def _num(v: float) -> str:
    if math.isnan(v):
        return "NaN"  # as Prometheus writes a staleness marker
    return repr(float(v)) if v != int(v) else str(int(v))


def _ok(data: Any) -> bytes:
    return json.dumps({"status": "success", "data": data}).encode()
