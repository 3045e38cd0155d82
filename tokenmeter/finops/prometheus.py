"""A FinOps :class:`~tokenmeter.finops.Reader` over a Prometheus-compatible TSDB: a fleet's report without a new server.

Every service exports tokenmeter's counters over OTLP (or serves them for scraping); a collector forwards them to
Prometheus, VictoriaMetrics, Mimir or Thanos. This reader turns those counters back into the report model's
:class:`~tokenmeter.finops.UsageRow` (one per period and attribution and token class), reading exact per-series
counter deltas (see :mod:`tokenmeter.finops._promapi` for why not ``increase()``).

Both metric name schemes are read: Prometheus naming (``tokenmeter_tokens_total``, labels ``tokenmeter_team_name``;
the Prometheus exporter, remote write, VictoriaMetrics with ``-opentelemetry.usePrometheusNaming``) and OTLP
naming (``tokenmeter.tokens``, labels ``tokenmeter.team.name``; VictoriaMetrics' default OTLP ingestion).

What metrics cannot say: no run ids (``runs()`` yields nothing; :meth:`PrometheusReader.run_stats` gives runs per
workflow with p50/p95/p99 from the ``tokenmeter.run.*`` histograms instead), no list price (``list_cost_usd`` is
``None``) and no price table version (``cost_source`` is ``"metrics"`` for priced rows).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .._usage import TOKEN_CLASSES
from ._histograms import bucket_quantile
from ._promapi import Delta, PromAPI, PrometheusSourceError, deltas
from ._rows import Granularity, RunRow, UsageRow

__all__ = ["PrometheusReader", "PrometheusSourceError", "RunStats", "open_source", "parse_headers"]

PERIOD = {"hour": 3600, "day": 86400}
COUNTERS = ("tokens", "cost", "unpriced", "calls", "wasted_tokens", "wasted_cost", "units")
HISTOGRAMS = ("run_tokens", "run_cost", "run_steps")


@dataclass(frozen=True)
class Naming:
    """How OpenTelemetry names land in the TSDB: metric names and the label of each attribute."""

    name: str
    metrics: Mapping[str, str]
    dotted: bool

    def label(self, attribute: str) -> str:
        """The label an OpenTelemetry attribute key becomes."""
        return attribute if self.dotted else attribute.replace(".", "_")

    def selector(self, metric: str, suffix: str = "") -> str:
        """A PromQL selector of one metric (``{__name__="..."}`` for names PromQL cannot spell)."""
        name = self.metrics[metric] + suffix
        return f'{{__name__="{name}"}}' if self.dotted else name


PROMETHEUS_NAMING = Naming(
    "Prometheus",
    {
        "tokens": "tokenmeter_tokens_total",
        "cost": "tokenmeter_cost_USD_total",
        "unpriced": "tokenmeter_tokens_unpriced_total",
        "calls": "tokenmeter_calls_total",
        "wasted_tokens": "tokenmeter_tokens_wasted_total",
        "wasted_cost": "tokenmeter_cost_wasted_USD_total",
        "units": "tokenmeter_units_total",
        "run_tokens": "tokenmeter_run_tokens",
        "run_cost": "tokenmeter_run_cost_USD",
        "run_steps": "tokenmeter_run_steps",
    },
    dotted=False,
)
OTLP_NAMING = Naming(
    "OTLP",
    {
        "tokens": "tokenmeter.tokens",
        "cost": "tokenmeter.cost",
        "unpriced": "tokenmeter.tokens.unpriced",
        "calls": "tokenmeter.calls",
        "wasted_tokens": "tokenmeter.tokens.wasted",
        "wasted_cost": "tokenmeter.cost.wasted",
        "units": "tokenmeter.units",
        "run_tokens": "tokenmeter.run.tokens",
        "run_cost": "tokenmeter.run.cost",
        "run_steps": "tokenmeter.run.steps",
    },
    dotted=True,
)

# UsageRow field -> the attribute tokenmeter puts on its counters (tokenmeter/_instruments.py CALL_DIMENSIONS)
ATTRIBUTES = {
    "team": "tokenmeter.team.name",
    "workflow": "gen_ai.workflow.name",
    "agent": "gen_ai.agent.name",
    "tier": "tokenmeter.model.tier",
    "provider": "gen_ai.provider.name",
    "model": "gen_ai.request.model",
    "operation": "gen_ai.operation.name",
}
ENV_ATTRIBUTES = ("tokenmeter.env", "deployment.environment.name", "deployment.environment")
DEFAULTS = {"team": "-", "workflow": "-"}  # what the ledger writes for a call outside any team / workflow


def parse_headers(text: str) -> dict[str, str]:
    """``"X-Scope-OrgID=acme,Authorization=Bearer t"`` (``TOKENMETER_PROMETHEUS_HEADERS``) -> a header dict."""
    out: dict[str, str] = {}
    for part in text.split(","):
        if part.strip():
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise PrometheusSourceError(
                    f"TOKENMETER_PROMETHEUS_HEADERS: {part.strip()!r} is not name=value; "
                    "use e.g. TOKENMETER_PROMETHEUS_HEADERS='X-Scope-OrgID=acme'"
                )
            out[key.strip()] = value.strip()
    return out


@dataclass
class RunStats:
    """Finished runs of one (workflow, team, env, outcome), from the ``tokenmeter.run.*`` histograms.

    ``*_buckets`` are cumulative ``(upper bound, runs)`` pairs, as in Prometheus (last bound ``inf``).
    """

    workflow: str
    team: str
    env: str
    outcome: str  # ok / error
    runs: int = 0
    tokens: Decimal = Decimal(0)
    cost_usd: Decimal = Decimal(0)
    steps: Decimal = Decimal(0)
    buckets: dict[str, dict[float, Decimal]] = field(default_factory=dict)  # "tokens"/"cost"/"steps" -> le -> n

    def quantile(self, q: float, of: str = "tokens") -> float | None:
        """The ``q`` quantile of tokens / cost / steps per run, interpolated in its bucket as
        PromQL's ``histogram_quantile`` does (``None`` without runs)."""
        buckets = self.buckets.get(of)
        if not buckets or buckets[max(buckets)] <= 0:
            return None
        return bucket_quantile(buckets, q)


class PrometheusReader:
    """Usage rows from the tokenmeter counters in a Prometheus-compatible TSDB (``--source prometheus=URL``).

    ``url``: the query API's base (``http://prometheus:9090``, ``http://victoriametrics:8428``,
    ``http://mimir:8080/prometheus``, ``http://thanos-query:10902``; ``user:password@`` for basic auth).
    ``headers``: sent with every query (default ``TOKENMETER_PROMETHEUS_HEADERS``, e.g. Mimir's ``X-Scope-OrgID``).
    ``lookback``: how far before the report's start a series' last sample is looked for, to count only what
    grew after it. ``max_days``: a window reaching further back (e.g. "everything") starts that many days
    before now instead -- no TSDB keeps more, and 20,000 empty days are not worth querying.
    Raises :class:`PrometheusSourceError` when the source is down or holds no tokenmeter series.
    """

    missing_dimensions = ("customer",)  # never a metric label (unbounded): a chargeback by customer needs the ledger

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        lookback: str = "31d",
        max_days: int = 800,
        now: float | None = None,
    ) -> None:
        if headers is None:
            headers = parse_headers(os.environ.get("TOKENMETER_PROMETHEUS_HEADERS", ""))
        self.api = PromAPI(url, headers=headers, timeout=timeout)
        self.lookback = lookback
        self.max_days = max_days
        self._now = now
        self._naming: Naming | None = None

    def describe(self) -> str:
        """Where the rows come from."""
        naming = f", {self._naming.name} metric names" if self._naming else ""
        return f"Prometheus-compatible TSDB at {self.api.url}{naming}"

    # -- the Reader protocol ---------------------------------------------------------------------------------------
    def usage(
        self, start: datetime, end: datetime, *, env: str | None = None, granularity: Granularity = "day"
    ) -> Iterable[UsageRow]:
        """Usage per period starting in ``[start, end)`` (periods aligned to UTC hours / days; the current one
        runs to now), per attribution and token class."""
        period = PERIOD[granularity]
        first, periods, partial = self._periods(start, end, period)
        naming = self.naming(first, first + (periods + 1) * period)
        series = {
            m: deltas(self.api, naming.selector(m), first, period, periods, partial, self.lookback) for m in COUNTERS
        }
        return sorted(_rows(series, naming, period, env), key=_row_order)

    def runs(self, start: datetime, end: datetime, *, env: str | None = None) -> Iterable[RunRow]:
        """None: metrics carry no run ids (see :meth:`run_stats` for the per-workflow run distribution)."""
        return ()

    # -- beyond the protocol ---------------------------------------------------------------------------------------
    def run_stats(self, start: datetime, end: datetime, *, env: str | None = None) -> list[RunStats]:
        """Runs per (workflow, team, env, outcome) finished in ``[start, end)`` (day-aligned), with the bucket
        counts of tokens, cost and steps per run -- :meth:`RunStats.quantile` gives p50 / p95 / p99."""
        first, periods, partial = self._periods(start, end, PERIOD["day"])
        naming = self.naming(first, first + (periods + 1) * PERIOD["day"])
        out: dict[tuple[str, str, str, str], RunStats] = {}
        for metric, of in zip(HISTOGRAMS, ("tokens", "cost", "steps"), strict=True):
            for suffix in ("_bucket", "_sum", "_count"):
                for d in deltas(
                    self.api, naming.selector(metric, suffix), first, PERIOD["day"], periods, partial, self.lookback
                ):
                    labels = d.labels
                    e = _env(labels, naming)
                    if env is not None and e != env:
                        continue
                    key = (
                        _field(labels, naming, "workflow"),
                        _field(labels, naming, "team"),
                        e,
                        labels.get(naming.label("tokenmeter.outcome"), "ok"),
                    )
                    stats = out.get(key) or out.setdefault(key, RunStats(*key))
                    if suffix == "_bucket":
                        bounds = stats.buckets.setdefault(of, {})
                        le = float(labels.get("le", "inf"))
                        bounds[le] = bounds.get(le, Decimal(0)) + d.value
                    elif suffix == "_sum":
                        setattr(
                            stats,
                            "cost_usd" if of == "cost" else of,
                            getattr(stats, "cost_usd" if of == "cost" else of) + d.value,
                        )
                    elif of == "tokens":
                        stats.runs += int(d.value)
        return sorted(out.values(), key=lambda s: (s.workflow, s.team, s.env, s.outcome))

    def naming(self, start: float, end: float) -> Naming:
        """Which name scheme the TSDB uses (found once); :class:`PrometheusSourceError` if it has no tokenmeter data."""
        if self._naming is None:
            names = set(self.api.metric_names("tokenmeter[._].*", start - _seconds(self.lookback), end))
            if PROMETHEUS_NAMING.metrics["tokens"] in names:
                self._naming = PROMETHEUS_NAMING
            elif OTLP_NAMING.metrics["tokens"] in names:
                self._naming = OTLP_NAMING
            else:
                since = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M")
                raise PrometheusSourceError(
                    f"{self.api.url} holds no tokenmeter series (no tokenmeter_tokens_total or tokenmeter.tokens) "
                    f"since {since} UTC; check that the services export tokenmeter's metrics to this TSDB "
                    "(OTEL_EXPORTER_OTLP_ENDPOINT -> collector -> this TSDB) and the report's period"
                )
        return self._naming

    def _periods(self, start: datetime, end: datetime, period: int) -> tuple[int, int, float | None]:
        """(first period start, whole periods that ended by now, ``now`` if a period is still running)."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware (UTC)")
        now = self._now if self._now is not None else time.time()
        first = int(max(start.timestamp(), now - self.max_days * 86400)) // period * period
        starting = max(0, math.ceil((end.timestamp() - first) / period))  # periods that start before `end`
        periods = min(starting, max(0, int((now - first) // period)))  # ... and have ended by now
        partial = now if periods < starting and first + periods * period < now else None
        return first, periods, partial


# -- rows from deltas -------------------------------------------------------------------------------------------------
_Key = tuple[int, str, str, str, str, str, str, str, str, str, str]  # period, env..operation, class, outcome


class _Cell:
    __slots__ = ("calls", "cost", "tokens", "units", "unpriced", "wasted_cost", "wasted_tokens")

    def __init__(self) -> None:
        self.tokens = self.unpriced = self.calls = self.wasted_tokens = self.units = 0
        self.cost: Decimal | None = None
        self.wasted_cost = Decimal(0)


def _field(labels: Mapping[str, str], naming: Naming, name: str) -> str:
    return labels.get(naming.label(ATTRIBUTES[name])) or DEFAULTS.get(name, "")


def _env(labels: Mapping[str, str], naming: Naming) -> str:
    return next((v for a in ENV_ATTRIBUTES if (v := labels.get(naming.label(a)))), "")


def _base(d: Delta, naming: Naming, *, call: bool = True) -> tuple[Any, ...]:
    labels = d.labels
    names = (
        ("team", "workflow", "agent", "tier", "provider", "model", "operation")
        if call
        else ("team", "workflow", "agent", "tier")
    )
    values = tuple(_field(labels, naming, n) for n in names)
    if not call:
        values += ("", "", "")
    return (d.period, _env(labels, naming), *values)


def _outcome(d: Delta, naming: Naming) -> str:
    return "error" if d.labels.get(naming.label("error.type")) else "ok"


def _rows(series: Mapping[str, list[Delta]], naming: Naming, period: int, env: str | None) -> Iterable[UsageRow]:
    cells: dict[_Key, _Cell] = {}
    unpriced: dict[tuple[Any, ...], int] = {}
    wasted_cost: dict[tuple[Any, ...], Decimal] = {}
    token_class = naming.label("tokenmeter.token.class")

    def cell(key: _Key) -> _Cell:
        found = cells.get(key)
        if found is None:
            found = cells[key] = _Cell()
        return found

    for d in series["tokens"]:
        cell((*_base(d, naming), d.labels.get(token_class, "input"), _outcome(d, naming))).tokens += int(d.value)
    for d in series["cost"]:
        c = cell((*_base(d, naming), d.labels.get(token_class, "input"), _outcome(d, naming)))
        c.cost = (c.cost or Decimal(0)) + d.value
    unit = naming.label("tokenmeter.unit")
    for d in series.get("units", ()):  # per-request units: the unit's row, beside its cost (class = the unit)
        cell((*_base(d, naming), d.labels.get(unit, ""), _outcome(d, naming))).units += int(d.value)
    for d in series["calls"]:
        outcome = d.labels.get(naming.label("tokenmeter.outcome"), "ok")
        cell((*_base(d, naming), "input", outcome)).calls += int(d.value)
    for d in series["unpriced"]:
        key = (*_base(d, naming), _outcome(d, naming))
        unpriced[key] = unpriced.get(key, 0) + int(d.value)
    for d in series["wasted_tokens"]:
        cell((*_base(d, naming, call=False), d.labels.get(token_class, "input"), "waste")).wasted_tokens += int(d.value)
    for d in series["wasted_cost"]:
        key = _base(d, naming, call=False)
        wasted_cost[key] = wasted_cost.get(key, Decimal(0)) + d.value
    for key, usd in wasted_cost.items():  # on the first token class of that waste, as the ledger does
        classes = [k for k in cells if k[:-2] == key and k[-1] == "waste"]
        first = min(
            classes,
            key=lambda k: TOKEN_CLASSES.index(k[-2]) if k[-2] in TOKEN_CLASSES else 99,
            default=(*key, "input", "waste"),
        )
        cell(first).wasted_cost += usd
    for key, count in unpriced.items():  # tokens of classes with no cost are the unpriced ones
        left = count
        for k in sorted(
            (k for k in cells if k[:-2] == key[:-1] and k[-1] == key[-1]),
            key=lambda k: TOKEN_CLASSES.index(k[-2]) if k[-2] in TOKEN_CLASSES else 99,
        ):
            c = cells[k]
            if left and not c.cost:
                c.unpriced = min(c.tokens, left)
                left -= c.unpriced
    for key, c in cells.items():
        e = key[1]
        if env is not None and e != env:
            continue
        start = datetime.fromtimestamp(key[0], UTC)
        end = datetime.fromtimestamp(key[0] + period, UTC)
        waste = key[-1] == "waste"
        priced = c.unpriced < c.tokens or (not c.tokens and not c.unpriced)
        cost = None if not priced else (c.cost or Decimal(0))
        if c.units and not c.tokens and c.cost is None:
            cost = None  # units counted without a cost series: a unit with no rate, never $0
        yield UsageRow(
            start,
            end,
            e,
            key[2],
            key[3],
            key[4],
            key[5],
            key[6],
            key[7],
            key[8],
            key[9],
            outcome="ok" if waste else key[10],
            tokens=c.tokens,
            cost_usd=None if waste else cost,
            cost_source="" if waste else ("metrics" if cost is not None else "unpriced"),
            unpriced_tokens=c.unpriced,
            wasted_tokens=c.wasted_tokens,
            wasted_cost_usd=c.wasted_cost,
            calls=c.calls,
            units=c.units,
        )


def _row_order(row: UsageRow) -> tuple[Any, ...]:
    return (
        row.start,
        row.env,
        row.team,
        row.workflow,
        row.agent,
        row.tier,
        row.provider,
        row.model,
        row.operation,
        TOKEN_CLASSES.index(row.token_class) if row.token_class in TOKEN_CLASSES else 99,
        row.outcome,
    )


def open_source(source: str) -> PrometheusReader:
    """The reader of ``tokenmeter report --source prometheus=URL`` (``victoriametrics=``, ``mimir=`` and ``thanos=``
    too); :class:`PrometheusSourceError` naming the fix for anything else."""
    kind, sep, location = source.partition("=")
    if sep and kind.strip().lower() in SOURCE_KINDS:
        return PrometheusReader(location.strip())
    raise PrometheusSourceError(
        f"--source {source!r}: unknown source; use prometheus=http://host:9090 (or victoriametrics=, mimir=, "
        "thanos= with the query API's URL)"
    )


# Every Prometheus-compatible TSDB answers the same query API; the other names are for the reader of the command.
SOURCE_KINDS = ("prometheus", "victoriametrics", "mimir", "thanos")


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    try:
        return int(duration[:-1]) * units[duration[-1]]
    except (KeyError, ValueError, IndexError):
        raise PrometheusSourceError(f"lookback {duration!r}: use a PromQL duration such as 31d") from None
