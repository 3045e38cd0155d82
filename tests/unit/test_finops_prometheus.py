"""PrometheusReader over a loopback fake of the Prometheus HTTP API: hand-computed counter histories.

Counters here behave as in a real TSDB fed by OpenTelemetry: a series is born at a process's first export with
everything it counted so far; it may restart (a drop) inside a period or across a boundary; it may have gaps.
tests/e2e/test_prometheus_reader_e2e.py runs the same histories through a real VictoriaMetrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.unit.fake_prometheus import FakePrometheus
from tokenmeter.finops import PrometheusReader, PrometheusSourceError, _promapi, reader_for

T0 = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp())
NOW = T0 + 5 * 3600 + 1800
START, END = datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0, UTC) + timedelta(days=1)
H, M = 3600, 60
SUPPORT = {
    "tokenmeter_team_name": "support",
    "gen_ai_workflow_name": "triage",
    "gen_ai_agent_name": "triager",
    "tokenmeter_model_tier": "standard",
    "gen_ai_provider_name": "openai",
    "gen_ai_request_model": "gpt-4o",
    "gen_ai_operation_name": "chat",
    "tokenmeter_env": "prod",
    "tokenmeter_retried": "false",
    "tokenmeter_step_depth": "1",
}
DATA = {
    **SUPPORT,
    "tokenmeter_team_name": "data",
    "gen_ai_workflow_name": "nightly",
    "gen_ai_agent_name": "summariser",
    "tokenmeter_model_tier": "small",
    "gen_ai_request_model": "llama-3.1-8b-instruct",
}
# Series A: lived before the report starts (level 100), restarts inside hour 1, has a gap in hours 2 and 4.
A = [
    (T0 - 2 * H, 100),
    (T0 + 10 * M, 150),
    (T0 + 50 * M, 180),
    (T0 + H + 10 * M, 200),
    (T0 + H + 20 * M, 20),
    (T0 + H + 40 * M, 50),
    (T0 + 3 * H + 5 * M, 70),
    (T0 + 5 * H + 10 * M, 90),
]
A_HOURLY = {0: 80, 1: 20 + 20 + 30, 3: 20, 5: 20}
# Series B: a process that started in hour 2 (its first sample is all it counted since it started).
B = [(T0 + 2 * H + 30 * M, 40), (T0 + 2 * H + 45 * M, 60)]
# Series C: a process restarting across the hour boundary, same identity.
C = [(T0 + 20 * M, 500), (T0 + H + 30 * M, 30)]


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    with FakePrometheus() as f:
        yield f


def _history(fake: FakePrometheus, dotted: bool = False) -> None:
    def name(prom: str, otlp: str) -> str:
        return otlp if dotted else prom

    def labels(base: dict[str, str], **more: str) -> dict[str, str]:
        out = {**base, **more}  # VictoriaMetrics without -opentelemetry.usePrometheusNaming keeps the dots
        return {k.replace("_", ".").replace("gen.ai.", "gen_ai.") if dotted else k: v for k, v in out.items()}

    tokens = name("tokenmeter_tokens_total", "tokenmeter.tokens")
    fake.add(tokens, labels(SUPPORT, tokenmeter_token_class="input", service_instance_id="a"), A)
    fake.add(tokens, labels(SUPPORT, tokenmeter_token_class="input", service_instance_id="b"), B)
    fake.add(tokens, labels(SUPPORT, tokenmeter_token_class="output", service_instance_id="c"), C)
    fake.add(
        name("tokenmeter_cost_USD_total", "tokenmeter.cost"),
        labels(SUPPORT, tokenmeter_token_class="input", service_instance_id="a"),
        [(T0 + 10 * M, 0.1), (T0 + 50 * M, 0.3)],
    )
    fake.add(
        name("tokenmeter_calls_total", "tokenmeter.calls"),
        labels(SUPPORT, tokenmeter_outcome="ok", service_instance_id="a"),
        [(T0 + 10 * M, 2), (T0 + 50 * M, 3)],
    )
    fake.add(
        name("tokenmeter_calls_total", "tokenmeter.calls"),
        labels(SUPPORT, tokenmeter_outcome="blocked", service_instance_id="a"),
        [(T0 + 50 * M, 1)],
    )
    fake.add(tokens, labels(DATA, tokenmeter_token_class="input", service_instance_id="d"), [(T0 + 30 * M, 1000)])
    fake.add(
        name("tokenmeter_tokens_unpriced_total", "tokenmeter.tokens.unpriced"),
        labels(DATA, service_instance_id="d"),
        [(T0 + 30 * M, 1000)],
    )
    waste = {
        k: v
        for k, v in SUPPORT.items()
        if k not in ("gen_ai_provider_name", "gen_ai_request_model", "gen_ai_operation_name", "tokenmeter_retried")
    }
    fake.add(
        name("tokenmeter_tokens_wasted_total", "tokenmeter.tokens.wasted"),
        labels(waste, tokenmeter_token_class="output", tokenmeter_waste_reason="retried", service_instance_id="a"),
        [(T0 + 40 * M, 50)],
    )
    fake.add(
        name("tokenmeter_cost_wasted_USD_total", "tokenmeter.cost.wasted"),
        labels(waste, tokenmeter_waste_reason="retried", service_instance_id="a"),
        [(T0 + 40 * M, 0.01)],
    )
    staging = {**SUPPORT, "tokenmeter_env": "", "deployment_environment": "staging"}
    fake.add(tokens, labels(staging, tokenmeter_token_class="input", service_instance_id="s"), [(T0 + 5 * M, 7)])


def _reader(fake: FakePrometheus) -> PrometheusReader:
    return PrometheusReader(fake.url, now=NOW)


def test_hourly_deltas_count_new_series_resets_and_gaps_exactly(fake: FakePrometheus) -> None:
    _history(fake)
    rows = list(_reader(fake).usage(START, END, env="prod", granularity="hour"))
    by_hour: dict[tuple[int, str], int] = {}
    for r in rows:
        if r.team == "support" and r.tokens:
            key = ((int(r.start.timestamp()) - T0) // H, r.token_class)
            by_hour[key] = by_hour.get(key, 0) + r.tokens
    expected = {(h, "input"): n for h, n in A_HOURLY.items()}
    expected[(2, "input")] = 60  # B, counted from 0
    expected[(0, "output")], expected[(1, "output")] = 500, 30  # C, before and after its restart
    assert by_hour == expected
    assert all(r.end - r.start == timedelta(hours=1) for r in rows)


def test_cost_calls_unpriced_and_waste_land_on_the_right_rows(fake: FakePrometheus) -> None:
    _history(fake)
    rows = list(_reader(fake).usage(START, END, env="prod", granularity="day"))
    (priced,) = [r for r in rows if r.team == "support" and r.token_class == "input" and r.outcome == "ok"]
    assert priced.tokens == sum(A_HOURLY.values()) + 60
    assert priced.cost_usd == Decimal("0.3") and priced.cost_source == "metrics" and priced.list_cost_usd is None
    assert priced.calls == 3 and priced.unpriced_tokens == 0
    (blocked,) = [r for r in rows if r.outcome == "blocked"]
    assert blocked.calls == 1 and blocked.tokens == 0 and blocked.token_class == "input"
    (llama,) = [r for r in rows if r.model == "llama-3.1-8b-instruct"]
    assert llama.tokens == llama.unpriced_tokens == 1000 and llama.cost_usd is None and llama.cost_source == "unpriced"
    (waste,) = [r for r in rows if r.wasted_tokens]
    assert (waste.wasted_tokens, waste.wasted_cost_usd, waste.token_class) == (50, Decimal("0.01"), "output")
    assert (waste.provider, waste.model, waste.tokens, waste.cost_usd) == ("", "", 0, None)
    assert {r.env for r in rows} == {"prod"}
    assert (rows[0].start, rows[0].end) == (START, END)


def test_env_comes_from_the_metric_or_the_resource(fake: FakePrometheus) -> None:
    _history(fake)
    staging = list(_reader(fake).usage(START, END, env="staging"))
    assert [(r.env, r.tokens) for r in staging] == [("staging", 7)]
    everything = list(_reader(fake).usage(START, END))
    assert {r.env for r in everything} == {"prod", "staging"}


def test_otlp_names_read_the_same(fake: FakePrometheus) -> None:
    _history(fake, dotted=True)
    reader = _reader(fake)
    dotted = [
        (r.start, r.team, r.token_class, r.tokens, r.cost_usd, r.calls)
        for r in reader.usage(START, END, env="prod", granularity="hour")
    ]
    assert "OTLP metric names" in reader.describe()
    with FakePrometheus() as other:
        _history(other)
        plain = [
            (r.start, r.team, r.token_class, r.tokens, r.cost_usd, r.calls)
            for r in _reader(other).usage(START, END, env="prod", granularity="hour")
        ]
    assert dotted == plain and dotted


def test_long_ranges_are_read_in_chunks(fake: FakePrometheus, monkeypatch: pytest.MonkeyPatch) -> None:
    _history(fake)
    whole = list(_reader(fake).usage(START, END, granularity="hour"))
    monkeypatch.setattr(_promapi, "MAX_POINTS", 2)
    fake.requests.clear()
    assert list(_reader(fake).usage(START, END, granularity="hour")) == whole
    ranges = [p for path, p, _ in fake.requests if path == "/api/v1/query_range"]
    assert ranges and all((float(p["end"][0]) - float(p["start"][0])) / 3600 <= 1 for p in ranges)


def test_a_period_that_has_not_started_yields_nothing(fake: FakePrometheus) -> None:
    _history(fake)
    later = datetime.fromtimestamp(NOW, UTC) + timedelta(hours=2)
    assert list(_reader(fake).usage(later, later + timedelta(days=1), granularity="hour")) == []


def test_run_histograms_give_runs_and_percentiles(fake: FakePrometheus) -> None:
    _history(fake)
    run = {
        "gen_ai_workflow_name": "triage",
        "tokenmeter_team_name": "support",
        "tokenmeter_env": "prod",
        "tokenmeter_outcome": "ok",
        "service_instance_id": "a",
    }
    for le, n in (("256", 2), ("1024", 6), ("4096", 8), ("+Inf", 8)):
        fake.add("tokenmeter_run_tokens_bucket", {**run, "le": le}, [(T0 + 10 * M, n)])
    fake.add("tokenmeter_run_tokens_count", run, [(T0 + 10 * M, 8)])
    fake.add("tokenmeter_run_tokens_sum", run, [(T0 + 10 * M, 9000)])
    reader = _reader(fake)
    assert list(reader.runs(START, END)) == []
    (stats,) = reader.run_stats(START, END, env="prod")
    assert (stats.workflow, stats.team, stats.outcome, stats.runs, stats.tokens) == ("triage", "support", "ok", 8, 9000)
    assert stats.quantile(0.5) == pytest.approx(256 + 768 * (4 - 2) / 4)
    assert stats.quantile(0.99) == pytest.approx(1024 + 3072 * (7.92 - 6) / 2)
    assert stats.quantile(0.5, of="cost") is None


def test_a_source_that_is_down_is_one_clear_error() -> None:
    from tests.unit.fake_prometheus import FakePrometheus as _F

    with _F() as f:
        url = f.url  # a port that was just free again
    with pytest.raises(PrometheusSourceError, match=r"cannot reach .* is it running"):
        list(PrometheusReader(url).usage(START, END))


def test_no_tokenmeter_series_is_one_clear_error(fake: FakePrometheus) -> None:
    fake.add("up", {"job": "x"}, [(T0 + 60, 1)])
    with pytest.raises(PrometheusSourceError, match=r"holds no tokenmeter series .*OTEL_EXPORTER_OTLP_ENDPOINT"):
        list(_reader(fake).usage(START, END))


@pytest.mark.parametrize(
    "status, body, message",
    [
        (
            400,
            b'{"status":"error","errorType":"bad_data","error":"parse error at char 3"}',
            "HTTP 400: bad_data: parse",
        ),
        (200, b"<html>a login page</html>", "did not answer with Prometheus API JSON"),
        (200, b'{"status":"error","errorType":"timeout","error":"query timed out"}', "refused the query: timeout"),
    ],
)
def test_refusals_are_clear_errors(fake: FakePrometheus, status: int, body: bytes, message: str) -> None:
    fake.fail = (status, body)
    with pytest.raises(PrometheusSourceError, match=message):
        list(_reader(fake).usage(START, END))


def test_headers_and_basic_auth_reach_the_server(fake: FakePrometheus, monkeypatch: pytest.MonkeyPatch) -> None:
    _history(fake)
    monkeypatch.setenv("TOKENMETER_PROMETHEUS_HEADERS", "X-Scope-OrgID=acme, X-Extra=1")
    url = fake.url.replace("http://", "http://reader:s3cret@")
    reader = PrometheusReader(url, now=NOW)
    list(reader.usage(START, END))
    headers = {k.lower(): v for k, v in fake.requests[-1][2].items()}  # HTTP header names are case-insensitive
    assert headers["x-scope-orgid"] == "acme" and headers["x-extra"] == "1"
    assert headers["authorization"] == "Basic cmVhZGVyOnMzY3JldA=="  # reader:s3cret
    assert "s3cret" not in reader.describe()


@pytest.mark.parametrize(
    "bad, message",
    [
        ("prometheus=localhost:9090", "not an http"),
        ("influx=http://x", "unknown source"),
        ("prometheus=", "not an http"),
    ],
)
def test_reader_for_names_the_fix(bad: str, message: str) -> None:
    with pytest.raises(PrometheusSourceError, match=message):
        reader_for(bad)


def test_reader_for_builds_a_prometheus_reader(fake: FakePrometheus) -> None:
    for kind in ("prometheus", "victoriametrics", "mimir", "thanos"):
        reader = reader_for(f"{kind}={fake.url}")
        assert isinstance(reader, PrometheusReader) and reader.api.url == fake.url


def test_bad_header_setting_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENMETER_PROMETHEUS_HEADERS", "X-Scope-OrgID")
    with pytest.raises(PrometheusSourceError, match="TOKENMETER_PROMETHEUS_HEADERS"):
        PrometheusReader("http://127.0.0.1:9090")


def test_an_unbounded_window_reads_at_most_max_days(fake: FakePrometheus) -> None:
    _history(fake)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    reader = PrometheusReader(fake.url, now=NOW, max_days=3)
    rows = list(reader.usage(epoch, datetime(2200, 1, 1, tzinfo=UTC)))
    # ... which includes series A's 100 tokens from before START (its first sample, counted from 0)
    assert sum(r.tokens for r in rows) == sum(r.tokens for r in _reader(fake).usage(START, END)) + 100
    ranges = [p for path, p, _ in fake.requests if path == "/api/v1/query_range"]
    assert ranges and min(float(p["start"][0]) for p in ranges) >= NOW - 4 * 86400


def test_a_staleness_marker_is_not_a_level(fake: FakePrometheus) -> None:
    fake.add(
        "tokenmeter_tokens_total",
        {**SUPPORT, "tokenmeter_token_class": "input", "service_instance_id": "x"},
        [(T0 + 10 * M, 10), (T0 + 70 * M, float("nan")), (T0 + 130 * M, 30)],
    )
    rows = list(_reader(fake).usage(START, END, granularity="hour"))
    assert [((int(r.start.timestamp()) - T0) // H, r.tokens) for r in rows] == [(0, 10), (2, 20)]
