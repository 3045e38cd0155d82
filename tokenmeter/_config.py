"""``configure()`` options: keyword arguments, then ``TOKENMETER_*`` variables, then standard ``OTEL_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import ConfigError

EXPORTERS = ("otlp", "console", "none")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Options:
    """The validated configuration of one :class:`~tokenmeter.Meter` (see ``configure`` for each field)."""

    service_name: str = "unknown_service"
    exporter: str = "none"
    endpoint: str | None = None
    protocol: str = "http/protobuf"
    tracer_provider: Any = None
    meter_provider: Any = None
    prices: Mapping[str, Any] | str | Path | None = None
    tiers: Mapping[str, str] = field(default_factory=dict)
    capture_content: bool = False
    cardinality_limit: int = 100
    max_attribute_sets: int = 2000
    metric_attributes: tuple[str, ...] = ()
    tiktoken_cache_dir: str | None = None
    tiktoken_files: Mapping[str, str] = field(default_factory=dict)
    prometheus_address: str | None = None
    instrument_threads: bool = True
    inject_stream_usage: bool = True
    semconv_metrics: bool | str = "auto"
    metric_export_interval_ms: int | None = None
    budgets: Sequence[Any] = ()
    policy: Any = None
    store: str = "memory"
    fail_open: bool = True
    on_budget_warning: Any = None
    expected_output_tokens: int = 512
    disabled: bool = False


_ENV: dict[str, str] = {
    "service_name": "TOKENMETER_SERVICE_NAME",
    "exporter": "TOKENMETER_EXPORTER",
    "endpoint": "TOKENMETER_ENDPOINT",
    "prices": "TOKENMETER_PRICES",
    "tiers": "TOKENMETER_TIERS",
    "capture_content": "TOKENMETER_CAPTURE_CONTENT",
    "cardinality_limit": "TOKENMETER_CARDINALITY_LIMIT",
    "max_attribute_sets": "TOKENMETER_MAX_ATTRIBUTE_SETS",
    "metric_attributes": "TOKENMETER_METRIC_ATTRIBUTES",
    "tiktoken_cache_dir": "TOKENMETER_TIKTOKEN_CACHE_DIR",
    "prometheus_address": "TOKENMETER_PROMETHEUS_ADDRESS",
    "instrument_threads": "TOKENMETER_INSTRUMENT_THREADS",
    "inject_stream_usage": "TOKENMETER_INJECT_STREAM_USAGE",
    "semconv_metrics": "TOKENMETER_SEMCONV_METRICS",
    "store": "TOKENMETER_STORE",
    "fail_open": "TOKENMETER_FAIL_OPEN",
    "expected_output_tokens": "TOKENMETER_EXPECTED_OUTPUT_TOKENS",
    "disabled": "TOKENMETER_DISABLED",
}
ENV_VARS: tuple[str, ...] = tuple(_ENV.values())


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _semconv(value: Any) -> bool | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return _bool("semconv_metrics", value)
    except ConfigError:
        raise ConfigError(
            f"semconv_metrics (TOKENMETER_SEMCONV_METRICS) must be 'auto', true or false, got {value!r}"
        ) from None


def _int(name: str, value: Any, minimum: int) -> int:
    try:
        result = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {value!r}") from None
    if isinstance(value, bool) or result < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return result


def _pairs(name: str, value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, str):
        items = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            key, sep, val = part.partition("=")
            if not sep:
                raise ConfigError(f"{name}: expected 'glob=tier,glob=tier', got {part!r}")
            items.append((key.strip(), val.strip()))
    else:
        raise ConfigError(f"{name} must be a mapping {{'model-glob': 'tier'}}, got {value!r}")
    for key, val in items:
        if not isinstance(key, str) or not key or not isinstance(val, str) or not val:
            raise ConfigError(f"{name}: keys and values must be non-empty strings, got {key!r}: {val!r}")
    return dict(items)


def _names(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{name} must be a list of attribute names, got {value!r}")
    return tuple(value)


def resolve_options(kwargs: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Options:
    """Merge keyword arguments with the environment and validate everything once."""
    env = os.environ if environ is None else environ
    known = set(Options.__dataclass_fields__)
    unknown = set(kwargs) - known
    if unknown:
        raise ConfigError(
            f"configure() got unknown option(s) {', '.join(sorted(unknown))}; valid options: {', '.join(sorted(known))}"
        )
    raw: dict[str, Any] = {k: v for k, v in kwargs.items() if v is not None}
    for key, var in _ENV.items():
        if key not in raw and env.get(var) not in (None, ""):
            raw[key] = env[var]
    if "disabled" not in raw and env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        raw["disabled"] = True
    if "service_name" not in raw:
        raw["service_name"] = env.get("OTEL_SERVICE_NAME") or "unknown_service"
    # OTEL_EXPORTER_OTLP_(TRACES_|METRICS_)ENDPOINT are left to the OTLP exporters, which apply the
    # spec's precedence (signal-specific first); they only decide that OTLP is the exporter.
    if "exporter" not in raw:
        otel = env.get("OTEL_TRACES_EXPORTER", "").split(",")[0].strip().lower()
        if otel in EXPORTERS:
            raw["exporter"] = otel
        elif raw.get("endpoint") or any(
            env.get(f"OTEL_EXPORTER_OTLP_{signal}ENDPOINT") for signal in ("", "TRACES_", "METRICS_")
        ):
            raw["exporter"] = "otlp"
    raw.setdefault("protocol", env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    if "metric_export_interval_ms" not in raw and env.get("OTEL_METRIC_EXPORT_INTERVAL"):
        raw["metric_export_interval_ms"] = env["OTEL_METRIC_EXPORT_INTERVAL"]

    exporter = str(raw.get("exporter", "none")).lower()
    if exporter not in EXPORTERS:
        raise ConfigError(f"exporter must be one of {', '.join(EXPORTERS)}, got {raw.get('exporter')!r}")
    raw["exporter"] = exporter
    if raw["protocol"] not in ("http/protobuf", "grpc"):
        raise ConfigError(
            f"protocol (OTEL_EXPORTER_OTLP_PROTOCOL) must be http/protobuf or grpc, got {raw['protocol']!r}"
        )
    endpoint = raw.get("endpoint")
    if endpoint is not None and (not isinstance(endpoint, str) or "://" not in endpoint):
        raise ConfigError(f"endpoint must be a URL such as http://127.0.0.1:4318, got {endpoint!r}")
    for key in ("capture_content", "instrument_threads", "inject_stream_usage", "fail_open", "disabled"):
        if key in raw:
            raw[key] = _bool(key, raw[key])
    if "semconv_metrics" in raw:
        raw["semconv_metrics"] = _semconv(raw["semconv_metrics"])
    if "cardinality_limit" in raw:
        raw["cardinality_limit"] = _int("cardinality_limit", raw["cardinality_limit"], 1)
    if "max_attribute_sets" in raw:
        raw["max_attribute_sets"] = _int("max_attribute_sets", raw["max_attribute_sets"], 1)
    if "expected_output_tokens" in raw:
        raw["expected_output_tokens"] = _int("expected_output_tokens", raw["expected_output_tokens"], 0)
    if "metric_export_interval_ms" in raw:
        raw["metric_export_interval_ms"] = _int("metric_export_interval_ms", raw["metric_export_interval_ms"], 1)
    if "tiers" in raw:
        raw["tiers"] = _pairs("tiers", raw["tiers"])
    if "tiktoken_files" in raw:
        raw["tiktoken_files"] = _pairs("tiktoken_files", raw["tiktoken_files"])
    if "metric_attributes" in raw:
        raw["metric_attributes"] = _names("metric_attributes", raw["metric_attributes"])
    if "service_name" in raw and not isinstance(raw["service_name"], str):
        raise ConfigError(f"service_name must be a string, got {raw['service_name']!r}")
    address = raw.get("prometheus_address")
    if address is not None:
        _host, sep, port = str(address).rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"prometheus_address must be 'host:port' such as 127.0.0.1:9464, got {address!r}")
    store = raw.get("store", "memory")
    if not isinstance(store, str) or not (
        store == "memory" or store.startswith("sqlite:///") or store.startswith(("redis://", "rediss://"))
    ):
        raise ConfigError(f"store must be 'memory', 'sqlite:///path' or 'redis://host:port/db', got {store!r}")
    if "budgets" in raw:
        budgets = raw["budgets"]
        if not isinstance(budgets, Sequence) or isinstance(budgets, str):
            raise ConfigError("budgets must be a list of tokenmeter.Budget objects")
        raw["budgets"] = tuple(budgets)
    return Options(**raw)
