"""Configuration that used to fail late, with the wrong exception or silently: each is a ConfigError at
configure() whose message names the option (or variable) to fix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import tokenmeter
from tokenmeter import Budget, ConfigError, Policy

_BUDGET = {"scope": {}, "limit_usd": 10, "window": "1d"}

# (case id, configure() keyword arguments, environment variables, text the message must contain)
CASES: list[tuple[str, dict[str, Any], dict[str, str], str]] = [
    ("tracer_provider-str", {"tracer_provider": "x"}, {}, "tracer_provider"),
    ("meter_provider-int", {"meter_provider": 42}, {}, "meter_provider"),
    ("prometheus-port-range", {"prometheus_address": ":99999"}, {}, "prometheus_address"),
    ("prometheus-port-zero", {"prometheus_address": "127.0.0.1:0"}, {}, "prometheus_address"),
    ("endpoint-not-url", {"exporter": "otlp", "endpoint": "localhost:4318"}, {}, "endpoint"),
    ("endpoint-bad-scheme", {"exporter": "otlp", "endpoint": "ftp://127.0.0.1:4318"}, {}, "endpoint"),
    ("endpoint-port-word", {"exporter": "otlp", "endpoint": "http://127.0.0.1:otlp"}, {}, "endpoint"),
    ("endpoint-port-range", {"exporter": "otlp", "endpoint": "http://127.0.0.1:70000"}, {}, "endpoint"),
    ("endpoint-no-host", {"exporter": "otlp", "endpoint": "http://:4318"}, {}, "endpoint"),
    (
        "env-endpoint-port-word",
        {},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:abc"},
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ),
    (
        "env-traces-endpoint-not-url",
        {},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector"},
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ),
    ("env-jaeger", {}, {"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
    ("env-zipkin", {}, {"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
    ("cardinality-fraction", {"cardinality_limit": 1.5}, {}, "cardinality_limit"),
    ("cardinality-fraction-env", {}, {"TOKENMETER_CARDINALITY_LIMIT": "1.5"}, "cardinality_limit"),
    ("max-attribute-sets-fraction", {"max_attribute_sets": 2.5}, {}, "max_attribute_sets"),
    ("shutdown-timeout-negative", {"shutdown_timeout_ms": -1}, {}, "shutdown_timeout_ms"),
    ("store-unknown-param-sqlite", {"store": "sqlite:///{tmp}/b.db?timeout=5"}, {}, "timeout_s"),
    ("store-unknown-param-redis", {"store": "redis://127.0.0.1:6379/0?timeout=5"}, {}, "timeout_s"),
    ("store-typo-param", {"store": "sqlite:///{tmp}/b.db?lease=5"}, {}, "lease"),
    ("redis-db-word", {"store": "redis://127.0.0.1:6379/abc"}, {}, "database"),
    ("redis-db-negative", {"store": "redis://127.0.0.1:6379/-1"}, {}, "database"),
    ("redis-db-huge", {"store": "redis://127.0.0.1:6379/99999999999"}, {}, "database"),
    ("downgrade-without-target", {"budgets": [Budget("b", action="downgrade", **_BUDGET)]}, {}, "downgrade_to"),
    (
        "downgrade-unknown-model",
        {"budgets": [Budget("b", action="downgrade", downgrade_to="no-such-model", **_BUDGET)]},
        {},
        "no-such-model",
    ),
    ("policy-downgrade-unknown-model", {"policy": Policy(downgrade={"gpt-4o": "gpt-4o-nope"})}, {}, "gpt-4o-nope"),
    (
        "tiktoken-file-missing",
        {"tiktoken_files": {"cl100k_base": "/nonexistent/cl100k_base.tiktoken"}},
        {},
        "tiktoken_files",
    ),
    ("tiktoken-dir-missing", {"tiktoken_cache_dir": "/nonexistent/tiktoken"}, {}, "tiktoken_cache_dir"),
]


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in (
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "TOKENMETER_CARDINALITY_LIMIT",
        "TOKENMETER_STORE",
    ):
        monkeypatch.delenv(var, raising=False)
    yield
    tokenmeter.unconfigure()


@pytest.mark.parametrize(("kwargs", "env", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_configuration_is_a_config_error(
    kwargs: dict[str, Any], env: dict[str, str], names: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    kwargs = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in kwargs.items()}
    with pytest.raises(ConfigError) as info:
        tokenmeter.configure(**kwargs)
    assert names in str(info.value), str(info.value)
    assert tokenmeter.active() is None
    assert not list(tmp_path.iterdir()), "a rejected configuration created files"


GOOD: list[tuple[str, dict[str, Any]]] = [
    ("cardinality-whole-float", {"cardinality_limit": 5.0}),
    ("downgrade-priced", {"budgets": [Budget("b", action="downgrade", downgrade_to="gpt-4o-mini", **_BUDGET)]}),
    (
        "downgrade-declared-tier",
        {
            "budgets": [Budget("b", action="downgrade", downgrade_to="my-local-llm", **_BUDGET)],
            "tiers": {"my-local-*": "economy"},
        },
    ),
    (
        "downgrade-via-policy",
        {
            "budgets": [Budget("b", action="downgrade", **_BUDGET)],
            "policy": Policy(downgrade={"gpt-4o": "gpt-4o-mini"}),
        },
    ),
    ("store-known-params", {"store": "sqlite:///{tmp}/b.db?timeout_s=0.5&lease_s=60"}),
    ("endpoint-https-path", {"exporter": "none", "endpoint": "https://collector.example:4318/otlp"}),
]


@pytest.mark.parametrize("kwargs", [g[1] for g in GOOD], ids=[g[0] for g in GOOD])
def test_good_configuration_is_accepted(kwargs: dict[str, Any], tmp_path: Any) -> None:
    kwargs = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in kwargs.items()}
    assert tokenmeter.configure(**kwargs) is not None
