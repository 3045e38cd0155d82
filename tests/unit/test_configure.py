"""configure(): options, environment, provider selection, reconfiguration and the no-op default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import tokenmeter
from tokenmeter import ConfigError, Usage
from tokenmeter._config import resolve_options


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    tokenmeter.unconfigure()


def test_without_configure_everything_is_a_silent_no_op() -> None:
    assert tokenmeter.active() is None
    tokenmeter.record("openai", "gpt-4o", Usage(input=1))

    @tokenmeter.workflow("w", team="t")
    def run() -> int:
        with tokenmeter.agent("a"), tokenmeter.attributes(env="prod"):
            return tokenmeter.current_scope().depth

    assert run() == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"exporter": "zipkin"}, "exporter must be one of otlp, console, none"),
        ({"endpoint": "localhost:4318"}, "endpoint must be a URL"),
        ({"cardinality_limit": 0}, "cardinality_limit must be a whole number >= 1"),
        ({"capture_content": "maybe"}, "capture_content must be true or false"),
        ({"tiers": "gpt-4o"}, "expected 'glob=tier"),
        ({"store": "postgres://x"}, "store must be 'memory'"),
        ({"prometheus_address": "9464"}, "prometheus_address must be 'host:port'"),
        ({"colour": "blue"}, "unknown option"),
    ],
)
def test_bad_options_raise_one_config_error_saying_what_to_fix(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tokenmeter.configure(**options)


def test_environment_variables_mirror_options_and_otel_variables_are_honoured() -> None:
    env = {
        "TOKENMETER_SERVICE_NAME": "svc",
        "TOKENMETER_TIERS": "gpt-4o*=premium, llama*=local",
        "TOKENMETER_CAPTURE_CONTENT": "true",
        "TOKENMETER_CARDINALITY_LIMIT": "7",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    o = resolve_options({}, env)
    assert o.service_name == "svc"
    assert o.tiers == {"gpt-4o*": "premium", "llama*": "local"}
    assert o.capture_content is True
    assert o.cardinality_limit == 7
    # the OTLP exporters read OTEL_EXPORTER_OTLP_*ENDPOINT themselves (signal-specific variables first)
    assert o.exporter == "otlp" and o.endpoint is None and o.protocol == "grpc"
    assert resolve_options({"endpoint": "http://127.0.0.1:9"}, env).endpoint == "http://127.0.0.1:9"
    # keyword arguments win over the environment
    assert resolve_options({"service_name": "kw"}, env).service_name == "kw"
    assert resolve_options({}, {"OTEL_SERVICE_NAME": "o"}).service_name == "o"
    assert resolve_options({}, {"OTEL_SDK_DISABLED": "true"}).disabled is True
    assert resolve_options({}, {}).exporter == "none"


def test_explicit_providers_are_used_and_not_shut_down_on_reconfigure() -> None:
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    tp = TracerProvider()
    meter = tokenmeter.configure(tracer_provider=tp, meter_provider=mp)
    assert meter.tracer_provider is tp and meter.meter_provider is mp
    tokenmeter.record("openai", "gpt-4o", Usage(input=5))
    second = tokenmeter.configure(exporter="none")  # reconfigure cleanly
    assert tokenmeter.active() is second
    tokenmeter.record("openai", "gpt-4o", Usage(input=7))
    # the first provider still works (we never shut down what the application owns) and saw only its call
    data = reader.get_metrics_data()
    assert data is not None
    values = [
        p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "tokenmeter.tokens"
        for p in m.data.data_points
    ]
    assert values == [5]


def test_tiers_from_globs_then_price_thresholds() -> None:
    meter = tokenmeter.configure(tiers={"gpt-4o-mini*": "tiny"})
    assert meter.tiers.tier("openai", "gpt-4o-mini") == "tiny"
    assert meter.tiers.tier("openai", "gpt-4o") == "standard"
    assert meter.tiers.tier("anthropic", "claude-3-haiku-20240307") == "small"
    assert meter.tiers.tier("anthropic", "claude-opus-4-1") == "frontier"
    assert meter.tiers.tier("openai", "nobody-knows") == "unknown"


def test_disabled_configuration_meters_nothing() -> None:
    meter = tokenmeter.configure(disabled=True)
    assert tokenmeter.active() is None
    assert meter.options.disabled


def test_a_prometheus_port_in_use_is_a_config_error() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match="cannot listen there"):
            tokenmeter.configure(prometheus_address=f"127.0.0.1:{port}")
    assert tokenmeter.active() is None


def test_unconfigure_restores_the_thread_pool() -> None:
    from concurrent.futures import ThreadPoolExecutor

    original = ThreadPoolExecutor.submit
    tokenmeter.configure()
    assert ThreadPoolExecutor.submit is not original
    tokenmeter.unconfigure()
    assert ThreadPoolExecutor.submit is original
