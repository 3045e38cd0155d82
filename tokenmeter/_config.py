"""``configure()`` options: keyword arguments, then ``TOKENMETER_*`` variables, then standard ``OTEL_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._providers import parse_providers

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
    capture_content_max_chars: int = 16384
    cardinality_limit: int = 100
    max_attribute_sets: int = 2000
    metric_attributes: tuple[str, ...] = ()
    customer_metrics: int = 0
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
    shutdown_timeout_ms: int = 5000
    disabled: bool = False
    ledger: str | None = "default"
    ledger_flush_interval: float = 1.0
    ledger_queue_size: int = 65_536
    ledger_max_pending_runs: int = 10_000
    ledger_retention_days: int = 400
    ledger_run_retention_days: int = 90
    providers: tuple[tuple[str, str], ...] = ()
    semconv_cost: bool = False


_ENV: dict[str, str] = {
    "service_name": "TOKENMETER_SERVICE_NAME",
    "exporter": "TOKENMETER_EXPORTER",
    "endpoint": "TOKENMETER_ENDPOINT",
    "prices": "TOKENMETER_PRICES",
    "tiers": "TOKENMETER_TIERS",
    "capture_content": "TOKENMETER_CAPTURE_CONTENT",
    "capture_content_max_chars": "TOKENMETER_CAPTURE_CONTENT_MAX_CHARS",
    "cardinality_limit": "TOKENMETER_CARDINALITY_LIMIT",
    "max_attribute_sets": "TOKENMETER_MAX_ATTRIBUTE_SETS",
    "metric_attributes": "TOKENMETER_METRIC_ATTRIBUTES",
    "customer_metrics": "TOKENMETER_CUSTOMER_METRICS",
    "tiktoken_cache_dir": "TOKENMETER_TIKTOKEN_CACHE_DIR",
    "prometheus_address": "TOKENMETER_PROMETHEUS_ADDRESS",
    "instrument_threads": "TOKENMETER_INSTRUMENT_THREADS",
    "inject_stream_usage": "TOKENMETER_INJECT_STREAM_USAGE",
    "semconv_metrics": "TOKENMETER_SEMCONV_METRICS",
    "store": "TOKENMETER_STORE",
    "fail_open": "TOKENMETER_FAIL_OPEN",
    "expected_output_tokens": "TOKENMETER_EXPECTED_OUTPUT_TOKENS",
    "shutdown_timeout_ms": "TOKENMETER_SHUTDOWN_TIMEOUT_MS",
    "disabled": "TOKENMETER_DISABLED",
    "ledger": "TOKENMETER_LEDGER",
    "ledger_flush_interval": "TOKENMETER_LEDGER_FLUSH_INTERVAL",
    "ledger_queue_size": "TOKENMETER_LEDGER_QUEUE_SIZE",
    "ledger_max_pending_runs": "TOKENMETER_LEDGER_MAX_PENDING_RUNS",
    "ledger_retention_days": "TOKENMETER_LEDGER_RETENTION_DAYS",
    "ledger_run_retention_days": "TOKENMETER_LEDGER_RUN_RETENTION_DAYS",
    "providers": "TOKENMETER_PROVIDERS",
    "semconv_cost": "TOKENMETER_SEMCONV_COST",
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
        if isinstance(value, float) and value != result:
            raise ValueError(value)  # 1.5 is not silently 1
    except (TypeError, ValueError, OverflowError):
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


def _url(name: str, value: Any, example: str) -> None:
    """An OTLP endpoint: ``http(s)://host[:port][/path]`` with a numeric port in range."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        ok = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
        if ok and parts is not None:
            parts.port  # noqa: B018 - raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            f"{name} must be a URL such as {example} (scheme http or https, a host, a numeric port), got {value!r}"
        )


def _provider(name: str, value: Any, method: str) -> None:
    if value is not None and not callable(getattr(value, method, None)):
        raise ConfigError(
            f"{name} must be an OpenTelemetry {name.replace('_', ' ').title().replace(' ', '')} "
            f"(with a {method}() method), got {value!r}"
        )


def _paths(files: Mapping[str, str]) -> None:
    for encoding, path in files.items():
        if not os.path.isfile(path):
            raise ConfigError(
                f"tiktoken_files: the {encoding} file {path!r} does not exist; give the path of a "
                f"{encoding}.tiktoken file, or drop the entry (the bundled copy is used)"
            )


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
    if "ledger" in kwargs and kwargs["ledger"] is None:
        raw["ledger"] = "none"  # ledger=None turns the durable ledger off (not "use the default")
    for key, var in _ENV.items():
        if key not in raw and env.get(var) not in (None, ""):
            raw[key] = env[var]
    if "capture_content" not in raw:
        from ._content import ENV, env_enabled

        conventions = env_enabled(env.get(ENV))
        if conventions is not None:
            raw["capture_content"] = conventions
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
        elif otel:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER={env['OTEL_TRACES_EXPORTER']!r} is not supported by tokenmeter: "
                f"use one of {', '.join(EXPORTERS)} (jaeger and zipkin accept OTLP: point "
                "OTEL_EXPORTER_OTLP_ENDPOINT at their OTLP port), or pass exporter= to configure()"
            )
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
    if endpoint is not None:
        _url("endpoint", endpoint, "http://127.0.0.1:4318")
    if "endpoint" not in raw and raw["exporter"] == "otlp":
        for var in (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ):
            if env.get(var):
                _url(var, env[var], "http://127.0.0.1:4318")
    _provider("tracer_provider", raw.get("tracer_provider"), "get_tracer")
    _provider("meter_provider", raw.get("meter_provider"), "get_meter")
    for key in (
        "capture_content",
        "instrument_threads",
        "inject_stream_usage",
        "fail_open",
        "disabled",
        "semconv_cost",
    ):
        if key in raw:
            raw[key] = _bool(key, raw[key])
    if "semconv_metrics" in raw:
        raw["semconv_metrics"] = _semconv(raw["semconv_metrics"])
    if "cardinality_limit" in raw:
        raw["cardinality_limit"] = _int("cardinality_limit", raw["cardinality_limit"], 1)
    if "max_attribute_sets" in raw:
        raw["max_attribute_sets"] = _int("max_attribute_sets", raw["max_attribute_sets"], 1)
    if "customer_metrics" in raw:
        raw["customer_metrics"] = _int("customer_metrics", raw["customer_metrics"], 0)
    if "expected_output_tokens" in raw:
        raw["expected_output_tokens"] = _int("expected_output_tokens", raw["expected_output_tokens"], 0)
    if "capture_content_max_chars" in raw:
        raw["capture_content_max_chars"] = _int("capture_content_max_chars", raw["capture_content_max_chars"], 1)
    if "shutdown_timeout_ms" in raw:
        raw["shutdown_timeout_ms"] = _int("shutdown_timeout_ms", raw["shutdown_timeout_ms"], 0)
    if "metric_export_interval_ms" in raw:
        raw["metric_export_interval_ms"] = _int("metric_export_interval_ms", raw["metric_export_interval_ms"], 1)
    if "tiers" in raw:
        raw["tiers"] = _pairs("tiers", raw["tiers"])
    if "providers" in raw:
        raw["providers"] = parse_providers(raw["providers"])
    if "tiktoken_files" in raw:
        raw["tiktoken_files"] = _pairs("tiktoken_files", raw["tiktoken_files"])
        _paths(raw["tiktoken_files"])
    cache_dir = raw.get("tiktoken_cache_dir")
    if cache_dir is not None and not os.path.isdir(str(cache_dir)):
        raise ConfigError(f"tiktoken_cache_dir {cache_dir!r} is not a directory; create it or drop the option")
    if "metric_attributes" in raw:
        raw["metric_attributes"] = _names("metric_attributes", raw["metric_attributes"])
    if "service_name" in raw and not isinstance(raw["service_name"], str):
        raise ConfigError(f"service_name must be a string, got {raw['service_name']!r}")
    address = raw.get("prometheus_address")
    if address is not None:
        _host, sep, port = str(address).rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"prometheus_address must be 'host:port' with a port 1-65535, such as 127.0.0.1:9464, got {address!r}"
            )
    store = raw.get("store", "memory")
    if not isinstance(store, str) or not (
        store == "memory" or store.startswith("sqlite:///") or store.startswith(("redis://", "rediss://"))
    ):
        raise ConfigError(f"store must be 'memory', 'sqlite:///path' or 'redis://host:port/db', got {store!r}")
    if store != "memory":
        from .governance._stores import check_url

        check_url(store)  # parameters and Redis database, without opening anything
    _ledger_options(raw)
    if "budgets" in raw:
        budgets = raw["budgets"]
        if not isinstance(budgets, Sequence) or isinstance(budgets, str):
            raise ConfigError("budgets must be a list of tokenmeter.Budget objects")
        raw["budgets"] = tuple(budgets)
    return Options(**raw)


def ledger_path(value: str | None) -> str | None:
    """The ledger file of a ``ledger`` option value (``None``: off). ``default``: the user data directory."""
    if value is None or value in ("none", "off", "memory"):
        return None
    if value == "default":
        return default_ledger_path()
    return value[len("sqlite:///") :]


def default_ledger_path() -> str:
    """``<platformdirs user data dir>/tokenmeter/ledger.db`` (platformdirs loads here, not at configure())."""
    from platformdirs import user_data_dir

    return str(Path(user_data_dir("tokenmeter", appauthor=False)) / "ledger.db")


def _ledger_options(raw: dict[str, Any]) -> None:
    ledger = raw.get("ledger", "default")
    if isinstance(ledger, Path):
        ledger = f"sqlite:///{ledger}"
    if not isinstance(ledger, str) or not (
        ledger in ("default", "none", "off", "memory") or (ledger.startswith("sqlite:///") and len(ledger) > 10)
    ):
        raise ConfigError(
            f"ledger must be 'sqlite:///path/ledger.db', 'default' (the user data directory) or "
            f"None / 'none' (off), got {ledger!r}"
        )
    raw["ledger"] = ledger.lower() if ledger.lower() in ("default", "none", "off", "memory") else ledger
    if "ledger_flush_interval" in raw:
        value = raw["ledger_flush_interval"]
        try:
            interval = float(value)
        except (TypeError, ValueError):
            interval = -1.0
        if isinstance(value, bool) or not 0 < interval <= 60:
            raise ConfigError(f"ledger_flush_interval must be seconds in (0, 60], got {value!r}")
        raw["ledger_flush_interval"] = interval
    for key, minimum in (
        ("ledger_queue_size", 1),
        ("ledger_max_pending_runs", 1),
        ("ledger_retention_days", 1),
        ("ledger_run_retention_days", 1),
    ):
        if key in raw:
            raw[key] = _int(key, raw[key], minimum)
