"""The Prometheus HTTP API, as every Prometheus-compatible TSDB serves it, and the exact counter deltas read from it.

Prometheus, VictoriaMetrics, Grafana Mimir (``http://mimir/prometheus``) and Thanos Query all answer
``/api/v1/query``, ``/api/v1/query_range`` and ``/api/v1/label/__name__/values``. Only the standard library
is used (``urllib``): the core package adds no HTTP client dependency for a read-only command.

Why not ``increase()``: PromQL's ``increase`` extrapolates to the window's edges (fractional tokens) and drops a
series' first sample -- and a short-lived process (a batch job, a worker that exports once at exit) has nothing
*but* its first sample. :func:`deltas` reads the counter's *level* at each period boundary
(``last_over_time(m[period])``, one range query per metric) and differences it per series on the client: a new
series counts from 0 (OpenTelemetry cumulative counters start at 0 when the process starts, and each process is
its own series through ``service.instance.id`` / ``instance``), a drop is a counter reset (counted from 0 again).
"""

from __future__ import annotations

import base64
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_POINTS = 10_000  # Prometheus refuses range queries over 11,000 points per series


class PrometheusSourceError(Exception):
    """The Prometheus-compatible source cannot give a report: down, refusing the query, or without tokenmeter data.

    The message names the URL and what to fix; ``tokenmeter report`` prints it and exits non-zero.
    """


Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Delta:
    """How much one series' counter grew during the period starting at ``period`` (epoch seconds)."""

    labels: Mapping[str, str]
    period: int
    value: Decimal


class PromAPI:
    """A small client of the Prometheus HTTP API (GET queries, JSON answers)."""

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PrometheusSourceError(
                f"--source prometheus={url!r}: not an http(s) URL; use e.g. prometheus=http://prometheus:9090 "
                "(Mimir: http://mimir:8080/prometheus)"
            )
        self.headers = {"Accept": "application/json", **dict(headers or {})}
        if parts.username is not None:  # http://user:password@host -> basic auth, credentials not echoed in messages
            token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self.headers.setdefault("Authorization", "Basic " + base64.b64encode(token.encode()).decode())
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            parts = parts._replace(netloc=netloc)
        self.url = urllib.parse.urlunsplit(parts).rstrip("/")
        self.timeout = timeout

    def get(self, path: str, params: Mapping[str, Any] | list[tuple[str, Any]]) -> Any:
        """``data`` of a successful API answer, else :class:`PrometheusSourceError`."""
        query = urllib.parse.urlencode(params, doseq=True)
        request = urllib.request.Request(f"{self.url}{path}?{query}", headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            raise PrometheusSourceError(
                f"{self.url}{path} answered HTTP {e.code}: {_api_error(e.read())}; check the URL (Mimir and some "
                "proxies serve the API under a prefix such as /prometheus) and TOKENMETER_PROMETHEUS_HEADERS"
            ) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise PrometheusSourceError(
                f"cannot reach the Prometheus-compatible source at {self.url} ({reason}); is it running, and is "
                "--source prometheus=URL its address?"
            ) from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise PrometheusSourceError(
                f"{self.url}{path} did not answer with Prometheus API JSON; is {self.url} a Prometheus-compatible "
                "query endpoint?"
            ) from None
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise PrometheusSourceError(f"{self.url}{path} refused the query: {_api_error(raw)}")
        return answer.get("data")

    def metric_names(self, pattern: str, start: float, end: float) -> list[str]:
        """Names of the metrics matching the regular expression ``pattern`` with samples in ``[start, end]``."""
        data = self.get(
            "/api/v1/label/__name__/values",
            [("match[]", f'{{__name__=~"{pattern}"}}'), ("start", _ts(start)), ("end", _ts(end))],
        )
        return sorted(str(n) for n in data or ())

    def instant(self, query: str, at: float) -> list[dict[str, Any]]:
        """``data.result`` of an instant vector query evaluated at ``at``."""
        data = self.get("/api/v1/query", {"query": query, "time": _ts(at)})
        return _vector(data, query)

    def matrix(self, query: str, start: float, end: float, step: int) -> list[dict[str, Any]]:
        """``data.result`` of a range query (``start`` and ``end`` inclusive), in chunks of at most MAX_POINTS."""
        out: list[dict[str, Any]] = []
        t = start
        while t <= end:
            stop = min(end, t + step * (MAX_POINTS - 1))
            data = self.get("/api/v1/query_range", {"query": query, "start": _ts(t), "end": _ts(stop), "step": step})
            if not isinstance(data, dict) or data.get("resultType") != "matrix":
                raise PrometheusSourceError(f"{self.url}: unexpected answer to the range query {query!r}")
            out.extend(data.get("result") or ())
            t = stop + step
        return out


def deltas(
    api: PromAPI, selector: str, start: int, period: int, periods: int, partial_at: float | None, lookback: str
) -> list[Delta]:
    """Per series, the counter's growth in each of ``periods`` whole periods from ``start`` (aligned, epoch
    seconds), and, if ``partial_at`` is set, in the period after them up to ``partial_at`` (now).

    The level before ``start`` is the series' last sample within ``lookback`` (e.g. ``31d``) before it. A period
    in which ``resets()`` sees a series restart inside it is read sample by sample (rare: a restarted process is
    usually a new series; pull-mode scrapes of a fixed address are not).
    """
    levels: dict[Labels, list[tuple[int, Decimal]]] = {}
    resets: set[int] = set()
    ends: dict[int, float] = {i: float(start + (i + 1) * period) for i in range(periods)}
    if periods:
        first, last = start + period, start + periods * period
        for series in api.matrix(f"last_over_time({selector}[{period}s])", first, last, period):
            levels.setdefault(_key(series["metric"]), []).extend(
                ((round(float(t)) - start) // period - 1, n)
                for t, v in series.get("values") or ()
                if (n := _number(v)) is not None
            )
        for series in api.matrix(f"resets({selector}[{period}s])", first, last, period):
            resets.update((round(float(t)) - start) // period - 1 for t, v in series.get("values") or () if _number(v))
    if partial_at is not None:
        ends[periods] = partial_at
        window = f"{max(1, math.ceil((partial_at - start - periods * period) * 1000))}ms"
        for s in api.instant(f"last_over_time({selector}[{window}])", partial_at):
            if (n := _number(s["value"][1])) is not None:
                levels.setdefault(_key(s["metric"]), []).append((periods, n))
        if any(_number(s["value"][1]) for s in api.instant(f"resets({selector}[{window}])", partial_at)):
            resets.add(periods)
    if not levels:
        return []
    base = {
        _key(s["metric"]): n
        for s in api.instant(f"last_over_time({selector}[{lookback}])", start)
        if (n := _number(s["value"][1])) is not None
    }
    samples = {i: _samples(api, selector, ends[i], period) for i in sorted(resets) if i in ends}
    out: list[Delta] = []
    for key, points in levels.items():
        previous = base.get(key)
        labels = dict(key)
        for index, level in sorted(points):
            grew = Decimal(0)
            for value in samples.get(index, {}).get(key, [level]):
                # a new series (a process started) or a drop (a counter reset) counts from 0
                grew += value if previous is None or value < previous else value - previous
                previous = value
            previous = level
            if grew:
                out.append(Delta(labels, start + index * period, grew))
    return out


def _samples(api: PromAPI, selector: str, at: float, period: int) -> dict[Labels, list[Decimal]]:
    """Every raw sample of every series in the ``period`` seconds up to ``at``, oldest first."""
    data = api.get("/api/v1/query", {"query": f"{selector}[{period}s]", "time": _ts(at)})
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise PrometheusSourceError(f"{api.url}: unexpected answer to the raw sample query of {selector}")
    return {
        _key(s["metric"]): [
            n for _, v in sorted(s.get("values") or (), key=lambda p: float(p[0])) if (n := _number(v)) is not None
        ]
        for s in data.get("result") or ()
    }


def _key(metric: Mapping[str, str]) -> Labels:
    return frozenset((k, v) for k, v in metric.items() if k != "__name__")


def _number(text: Any) -> Decimal | None:
    """A sample value; ``None`` for NaN (Prometheus' staleness marker), infinities and garbage: not a level."""
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _vector(data: Any, query: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        raise PrometheusSourceError(f"unexpected answer to the instant query {query!r}: {str(data)[:200]}")
    return list(data.get("result") or ())


def _ts(t: float) -> str:
    return f"{t:.3f}"


def _api_error(raw: bytes) -> str:
    try:
        answer = json.loads(raw)
    except ValueError:
        return raw[:300].decode(errors="replace").strip() or "(empty body)"
    if isinstance(answer, dict):
        return f"{answer.get('errorType', 'error')}: {answer.get('error', '')}".strip()
    return str(answer)[:300]


def label_matchers(matchers: Mapping[str, str]) -> str:
    """``k="v", ...`` with PromQL string escaping."""
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in matchers.items())
