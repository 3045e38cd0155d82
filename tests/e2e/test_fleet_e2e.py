"""Fleet proof: several service processes -> a real collector -> real TSDBs -> the FinOps report of the whole fleet.

    support-bot ─┐                                              ┌─ remote write ─▶ Prometheus 2.42 (OOO window)
    refund-bot  ─┼─ OTLP/HTTP ─▶ rotel (examples/collector/ ─▶ vmagent ┤
    batch (x2)  ─┤              rotel.env, run as written)      └─ remote write ─▶ VictoriaMetrics
    staging-bot ─┘                   └─ traces ─▶ Arize Phoenix

Every service is a separate Python process configured only through ``OTEL_*`` variables (tokenmeter exports OTLP
because ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set), running the demo workload against its own FakeProvider. ``batch``
runs twice, one process after the other (a restart: its counters start again from 0). ``staging-bot`` is in
another environment. :class:`~tokenmeter.finops.PrometheusReader` over either TSDB must give, for the ``prod``
environment, exactly the sum of what the providers reported to the prod processes, class by class, with its cost.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from backends import Phoenix, VictoriaMetrics
from collector import RemoteWritePrometheus, Rotel, VMAgent
from conftest import backend_unavailable

import tokenmeter
from tokenmeter.finops import PrometheusReader, PrometheusSourceError

REPO = Path(__file__).resolve().parents[2]
PRICES = tokenmeter.PriceBook()
SERVICES = [  # (service name, environment, runs, seed); batch twice = a restart
    ("support-bot", "prod", 10, 11),
    ("refund-bot", "prod", 10, 12),
    ("batch", "prod", 5, 13),
    ("batch", "prod", 5, 14),
    ("staging-bot", "staging", 4, 15),
]


@dataclass
class Fleet:
    env: str  # the unique prod environment name of this test run
    project: str  # Phoenix project of the fleet's spans
    reports: list[tuple[str, str, dict[str, Any]]]  # (service, env, what the process printed)
    rotel: Rotel
    ledgers: Path  # <index in SERVICES>.db: each process's own SQLite ledger

    def calls(self, env: str) -> list[dict[str, Any]]:
        return [c for _, e, r in self.reports if e == env for c in r["calls"]]

    def runs(self, env: str) -> list[dict[str, Any]]:
        return [run for _, e, r in self.reports if e == env for run in r["runs"]]


@pytest.fixture(scope="module")
def prometheus_rw(start_backend: Callable[..., RemoteWritePrometheus]) -> RemoteWritePrometheus:
    return start_backend(lambda: RemoteWritePrometheus(), "prometheus")


@pytest.fixture(scope="module")
def vmagent(prometheus_rw: RemoteWritePrometheus, victoriametrics: VictoriaMetrics) -> Iterator[VMAgent]:
    agent = _start(
        lambda: VMAgent([prometheus_rw.remote_write_url, victoriametrics.base_url + "/api/v1/write"]), "vmagent"
    )
    yield agent
    agent.stop()


@pytest.fixture(scope="module")
def fleet(vmagent: VMAgent, phoenix: Phoenix) -> Iterator[Fleet]:
    tag = uuid.uuid4().hex[:8]
    rotel = _start(
        lambda: Rotel(
            REPO / "examples" / "collector" / "rotel.env",
            {"TSDB_OTLP_URL": vmagent.base_url + "/opentelemetry", "TRACES_OTLP_URL": phoenix.base_url},
        ),
        "rotel",
    )
    project = f"fleet-{tag}"
    ledgers = Path(tempfile.mkdtemp(prefix="tokenmeter-fleet-ledgers-"))
    reports = []
    try:
        # the first process of every service at once, then batch's second process (its restart)
        first = {service: i for i, (service, *_) in reversed(list(enumerate(SERVICES)))}
        for wave in (
            [i for i in range(len(SERVICES)) if i in first.values()],
            [i for i in range(len(SERVICES)) if i not in first.values()],
        ):
            procs = [(i, _service(rotel, project, tag, *SERVICES[i], ledgers / f"{i}.db")) for i in wave]
            for i, proc in procs:
                out, err = proc.communicate(timeout=300)
                assert proc.returncode == 0, err[-3000:]
                report = json.loads(out)
                assert report["flushed"], f"{SERVICES[i][0]} could not flush its metrics to the collector"
                reports.append((SERVICES[i][0], SERVICES[i][1], report))
        yield Fleet(f"prod-{tag}", project, reports, rotel, ledgers)
    finally:
        rotel.stop()
        shutil.rmtree(ledgers, ignore_errors=True)


def _service(
    rotel: Rotel, project: str, tag: str, service: str, env: str, runs: int, seed: int, ledger: Path
) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TOKENMETER_"))}
    environ.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=rotel.otlp_http_endpoint,
        OTEL_SERVICE_NAME=service,
        OTEL_RESOURCE_ATTRIBUTES=f"deployment.environment={env}-{tag},openinference.project.name={project}",
        OTEL_METRIC_EXPORT_INTERVAL="300",  # several exports per process, then the final one at exit
        PYTHONPATH=str(REPO),
        TOKENMETER_LEDGER=f"sqlite:///{ledger}",  # the process's own durable ledger
    )
    return subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "e2e" / "fleet_service.py"), "--runs", str(runs), "--seed", str(seed)],
        env=environ,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _start(factory: Any, what: str) -> Any:
    from backends import BackendUnavailable

    try:
        return factory().start()
    except BackendUnavailable as e:
        backend_unavailable(what, e)


def _expected(calls: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], tuple[int, Decimal | None]]:
    """(team, workflow, model, token class) -> (tokens, cost) from what the provider reported."""
    out: dict[tuple[str, str, str, str], tuple[int, Decimal | None]] = {}
    for call in calls:
        if not call["usage"]:
            continue
        usage = tokenmeter.Usage(**call["usage"])
        cost = PRICES.cost("openai", call["model"], usage)
        for i, (token_class, n) in enumerate(usage.by_class()):
            if n or i == 0:
                key = (call["team"] or "-", call["workflow"] or "-", call["model"], token_class)
                tokens, usd = out.get(key, (0, Decimal(0)))
                part = None if cost.by_class is None else cost.by_class[i]
                out[key] = (tokens + n, None if part is None or usd is None else usd + part)
    return {k: v for k, v in out.items() if v[0]}


def _read(
    server: RemoteWritePrometheus | VictoriaMetrics, env: str, fleet_calls: list[dict[str, Any]]
) -> dict[tuple[str, str, str, str], list[Any]]:
    """Poll the reader until it sees all the tokens the fleet sent (exports are asynchronous), then group."""
    want = sum(sum(c["usage"].values()) for c in fleet_calls if c["usage"])
    now = datetime.now(UTC)
    got: dict[tuple[str, str, str, str], list[Any]] = {}
    deadline = time.monotonic() + 45
    while True:
        if isinstance(server, VictoriaMetrics):
            server.force_flush()  # make just-ingested samples searchable
        try:
            rows = list(
                PrometheusReader(server.base_url).usage(
                    now - timedelta(hours=2), now + timedelta(hours=1), env=env, granularity="hour"
                )
            )
        except PrometheusSourceError:
            rows = []  # nothing arrived yet
        if sum(r.tokens for r in rows) >= want or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for r in rows:
        if r.tokens:
            cell = got.setdefault((r.team, r.workflow, r.model, r.token_class), [0, Decimal(0), 0])
            cell[0] += r.tokens
            cell[1] = None if r.cost_usd is None or cell[1] is None else cell[1] + r.cost_usd
            cell[2] += r.unpriced_tokens
    return got


@pytest.mark.parametrize("tsdb", ["prometheus_rw", "victoriametrics"])
def test_the_fleet_report_equals_the_sum_of_the_services(
    fleet: Fleet, tsdb: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(tsdb)
    expected = _expected(fleet.calls("prod"))
    got = _read(server, fleet.env, fleet.calls("prod"))
    assert set(got) == set(expected)
    for key, (tokens, usd) in expected.items():
        assert got[key][0] == tokens, key
        if usd is None:
            assert got[key][1] is None and got[key][2] == tokens, f"{key}: unpriced tokens must stay unpriced"
        else:
            assert got[key][1] == pytest.approx(usd, rel=Decimal("1e-9"), abs=Decimal("1e-12")), key
            assert got[key][2] == 0
    assert {k[3] for k in expected} >= {"input", "output"}
    assert any(usd is None for _, usd in expected.values()), "the workload has an unpriced (self-hosted) model"
    # the staging service is in its own environment
    staging = _read(server, fleet.env.replace("prod", "staging"), fleet.calls("staging"))
    assert {k: v[0] for k, v in staging.items()} == {k: v[0] for k, v in _expected(fleet.calls("staging")).items()}


def test_calls_and_runs_per_workflow(fleet: Fleet, victoriametrics: VictoriaMetrics) -> None:
    reader = PrometheusReader(victoriametrics.base_url)
    now = datetime.now(UTC)
    _read(victoriametrics, fleet.env, fleet.calls("prod"))  # wait until everything arrived
    rows = list(reader.usage(now - timedelta(days=1), now + timedelta(days=1), env=fleet.env))
    sent = Counter(
        (c["workflow"], "ok" if c["outcome"] == "ok" else c["outcome"])
        for c in fleet.calls("prod")
        if c["outcome"] in ("ok", "error")
    )
    calls: Counter[tuple[str, str]] = Counter()
    for r in rows:
        calls[(r.workflow, r.outcome)] += r.calls
    assert {k: v for k, v in calls.items() if k[1] in ("ok", "error") and v} == dict(sent)
    stats = reader.run_stats(now - timedelta(days=1), now + timedelta(days=1), env=fleet.env)
    runs: dict[str, int] = defaultdict(int)
    for s in stats:
        runs[s.workflow] += s.runs
    assert dict(runs) == dict(Counter(r["workflow"] for r in fleet.runs("prod")))
    for s in stats:
        p50, p99 = s.quantile(0.5), s.quantile(0.99)
        assert p50 is not None and p99 is not None and 0 < p50 <= p99


def test_the_collector_also_forwards_the_fleets_traces(fleet: Fleet, phoenix: Phoenix) -> None:
    runs = sum(len(r["runs"]) for _, _, r in fleet.reports)
    spans = phoenix.wait_for_spans(
        fleet.project, lambda s: sum(1 for x in s if x["name"].startswith("invoke_workflow ")) >= runs, timeout=60
    )
    assert sum(1 for x in spans if x["name"].startswith("invoke_workflow ")) == runs


def test_the_fleet_report_as_an_html_page(fleet: Fleet, victoriametrics: VictoriaMetrics, tmp_path: Path) -> None:
    from test_report_html_e2e import _console_errors, _dump_dom

    from tokenmeter.finops import html

    _read(victoriametrics, fleet.env, fleet.calls("prod"))  # wait until everything arrived
    page = html.write(tmp_path / "fleet.html", PrometheusReader(victoriametrics.base_url), env=fleet.env)
    text = page.read_text()
    expected = _expected(fleet.calls("prod"))
    spend = sum((usd for _, usd in expected.values() if usd is not None), Decimal(0))
    assert f"${spend:,.2f}" in text  # the Spend card: the fleet's priced spend
    assert "tokens have no known price" in text
    assert f"{len(fleet.runs('prod'))} runs (from the run histograms" in text  # no run ids in metrics
    for team in {k[0] for k in expected}:
        assert f"· {team}: $" in text
    dom, log = _dump_dom(page)
    assert 'data-ready="1"' in dom and 'data-errors="0"' in dom and _console_errors(log) == []


def _report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenmeter.cli", "report", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_tokenmeter_report_of_the_fleet_equals_the_sum_of_the_services_ledgers(
    fleet: Fleet, victoriametrics: VictoriaMetrics, tmp_path: Path
) -> None:
    _read(victoriametrics, fleet.env, fleet.calls("prod"))  # wait until everything arrived
    page = tmp_path / "fleet.html"
    done = _report(
        "--source",
        f"prometheus={victoriametrics.base_url}",
        "--since",
        "1d",
        "--env",
        fleet.env,
        "--json",
        "--html",
        str(page),
    )
    assert done.returncode == 0, done.stderr
    fleet_total = json.loads(done.stdout)["total"]
    ledgers: list[dict[str, Any]] = []
    for i, (_, env, _, _) in enumerate(SERVICES):
        if env == "prod":
            own = _report("--source", f"sqlite:///{fleet.ledgers / f'{i}.db'}", "--since", "1d", "--json")
            assert own.returncode == 0, own.stderr
            ledgers.append(json.loads(own.stdout)["total"])
    for figure in ("tokens", "calls", "errors", "blocked", "unpriced_tokens", "wasted_tokens"):
        assert fleet_total[figure] == sum(t[figure] for t in ledgers), figure
    assert Decimal(fleet_total["cost"]) == pytest.approx(sum(Decimal(t["cost"]) for t in ledgers), rel=Decimal("1e-9"))
    assert Decimal(fleet_total["wasted_cost"]) == pytest.approx(
        sum(Decimal(t["wasted_cost"]) for t in ledgers), rel=Decimal("1e-9")
    )
    assert fleet_total["tokens"] == sum(sum(c["usage"].values()) for c in fleet.calls("prod") if c["usage"])
    assert page.read_text().startswith("<!doctype html>") and "from the run histograms" in page.read_text()


def test_tokenmeter_report_names_a_source_that_is_down() -> None:
    from backends import free_port

    done = _report("--source", f"prometheus=http://127.0.0.1:{free_port()}", "--since", "1d")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "cannot reach the Prometheus-compatible source" in done.stderr and "is it running" in done.stderr
