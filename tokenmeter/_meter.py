"""The configured meter: OTel providers, instruments, prices, tiers, ledger and (optional) governance."""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace

from . import _orphans, _safe
from ._config import Options, resolve_options
from ._errors import ConfigError
from ._instruments import instruments_for
from ._ledger import Ledger
from ._prices import PriceBook
from ._tiers import TierResolver
from ._tokens import Tokenizer, set_default_tokenizer

_log = logging.getLogger("tokenmeter")
SCOPE_NAME = "tokenmeter"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tokenmeter")
    except Exception:
        return "0.0.0"


class Meter:
    """What ``configure()`` returns: the live meter. Use it to flush, shut down and read the ledger."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._owned: list[Any] = []
        self.gate: Any = None
        self.prices = PriceBook(options.prices)
        self.tiers = TierResolver(options.tiers, self.prices.input_price_mtok)
        self.tokenizer = Tokenizer(options.tiktoken_cache_dir, options.tiktoken_files)
        self.tracer_provider, self.meter_provider = self._providers(options)
        version = _version()
        self.tracer = self.tracer_provider.get_tracer(SCOPE_NAME, version)
        otel_meter = self.meter_provider.get_meter(SCOPE_NAME, version)
        self.instruments = instruments_for(
            self.meter_provider,
            otel_meter,
            cardinality_limit=options.cardinality_limit,
            extra_dimensions=options.metric_attributes,
            max_attribute_sets=options.max_attribute_sets,
        )
        self.ledger = Ledger()
        from ._governance import build_gate

        # Always built: the per-run guard (workflow(max_tokens=...)) needs it even without budgets;
        # with nothing configured its before() returns at once.
        self.gate = build_gate(self, options, otel_meter)

    # -- providers -----------------------------------------------------------------------------
    def _providers(self, options: Options) -> tuple[Any, Any]:
        tp = options.tracer_provider
        mp = options.meter_provider
        if tp is None:
            global_tp = otel_trace.get_tracer_provider()
            if not isinstance(global_tp, otel_trace.ProxyTracerProvider) and not isinstance(
                global_tp, otel_trace.NoOpTracerProvider
            ):
                tp = global_tp
        if mp is None:
            global_mp = otel_metrics.get_meter_provider()
            if type(global_mp).__name__ not in ("_ProxyMeterProvider", "NoOpMeterProvider"):
                mp = global_mp
        if mp is not None and options.prometheus_address:
            _log.warning("tokenmeter: prometheus_address=%r not served: metrics go to the meter provider in use "
                         "(add a PrometheusMetricReader to it)", options.prometheus_address)
        if tp is not None and mp is not None:
            if options.exporter != "none" and options.tracer_provider is None and options.meter_provider is None:
                _log.info("tokenmeter: using the application's OpenTelemetry providers; exporter=%r not applied",
                          options.exporter)
            return tp, mp
        from ._exporters import build_meter_provider, build_tracer_provider

        try:
            if tp is None:
                tp = build_tracer_provider(options)
                self._owned.append(tp)
            if mp is None:
                mp = build_meter_provider(options)
                self._owned.append(mp)
        except BaseException:
            self.shutdown()  # what was built so far (e.g. a port already in use for Prometheus)
            raise
        return tp, mp

    # -- lifecycle -----------------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        """Export everything recorded so far (spans and metrics). Returns False on timeout or error."""
        _orphans.drain()
        ok = True
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)
            if flush is not None:
                try:
                    ok = bool(flush(timeout_millis)) and ok
                except Exception:
                    _safe.log_once("force_flush", "tokenmeter: flushing failed")
                    ok = False
        return ok

    def shutdown(self) -> None:
        """Flush and stop what this meter created (never the application's own providers)."""
        if self.gate is not None:
            try:
                self.gate.close()
            except Exception:
                _safe.log_once("gate.close", "tokenmeter: closing the budget store failed")
        for provider in self._owned:
            try:
                provider.shutdown()
            except Exception:
                _safe.log_once("shutdown", "tokenmeter: shutting a provider down failed")
        self._owned.clear()

    def report(self) -> str:
        """A plain-text report of everything metered in this process (the embedded ledger)."""
        return self.ledger.format()


_ACTIVE: Meter | None = None
_LOCK = threading.Lock()


def active() -> Meter | None:
    """The configured meter, or ``None`` before ``configure()`` (everything is then a no-op)."""
    return _ACTIVE


def configure(**options: Any) -> Meter:
    """Set tokenmeter up; call again to reconfigure (the previous meter is shut down cleanly).

    Options (each also settable as the ``TOKENMETER_<NAME>`` environment variable; standard
    ``OTEL_*`` variables are honoured):

    * ``service_name`` -- ``service.name`` of the resource (default ``OTEL_SERVICE_NAME``).
    * ``exporter`` -- ``"otlp"``, ``"console"`` or ``"none"`` (default: ``"otlp"`` if an OTLP endpoint
      is set, else ``"none"``: metering goes to the embedded ledger only).
    * ``endpoint`` -- OTLP endpoint base URL (default ``OTEL_EXPORTER_OTLP_ENDPOINT``); ``protocol``
      ``"http/protobuf"`` (default) or ``"grpc"``.
    * ``tracer_provider``, ``meter_provider`` -- use these. Without them, providers the application
      installed globally are used; only when there are none does tokenmeter create its own.
    * ``prices`` -- price overrides: a mapping or a TOML/JSON file path (see :class:`PriceBook`).
    * ``tiers`` -- ``{"model-glob": "tier"}``; unmatched models get a tier from their price.
    * ``capture_content`` -- record prompts and completions on spans (default False).
    * ``cardinality_limit`` -- distinct values per metric dimension before ``"_other"`` (default 100).
    * ``max_attribute_sets`` -- distinct attribute sets (dimension combinations) of the call counters
      before new ones are counted under ``otel.metric.overflow=true`` (default 2000, as the OTel SDK's
      own default cardinality limit).
    * ``metric_attributes`` -- extra ``attributes(**extra)`` keys allowed on metrics.
    * ``tiktoken_cache_dir``, ``tiktoken_files`` -- where local tiktoken encodings are.
    * ``prometheus_address`` -- ``"127.0.0.1:9464"`` serves a Prometheus scrape endpoint.
    * ``instrument_threads`` -- make ``ThreadPoolExecutor`` carry the context (default True).
    * ``inject_stream_usage`` -- ask OpenAI streams for usage (default True).
    * ``semconv_metrics`` -- record the semantic-convention histograms ``gen_ai.client.token.usage`` and
      ``gen_ai.client.operation.duration``: ``"auto"`` (default) skips them for a call another GenAI
      instrumentation (opentelemetry-instrumentation-openai-v2, OpenLLMetry, pydantic-ai...) already
      records, so a dashboard summing them counts each call once; ``True`` always, ``False`` never.
      tokenmeter's own counters (``tokenmeter.tokens``...) are recorded in every case.
    * ``budgets``, ``policy``, ``store``, ``fail_open``, ``on_budget_warning``,
      ``expected_output_tokens`` -- governance (see :class:`Budget` and :class:`Policy`).
    * ``disabled`` -- configure nothing (also ``OTEL_SDK_DISABLED=true``).

    Raises :class:`ConfigError` naming the option to fix. Never raises afterwards.
    """
    global _ACTIVE
    resolved = resolve_options(options)
    with _LOCK:
        previous = _ACTIVE
        _ACTIVE = None
        if previous is not None:
            previous.shutdown()
        if resolved.disabled:
            return Meter(_disabled(resolved))
        try:
            meter = Meter(resolved)
        except ConfigError:
            raise
        except ImportError as exc:
            raise ConfigError(f"a package needed by this configuration is missing: {exc}") from exc
        set_default_tokenizer(meter.tokenizer)
        _orphans.start_reaper()
        from ._threads import instrument_executors, uninstrument_executors

        if resolved.instrument_threads:
            instrument_executors()
        else:
            uninstrument_executors()
        _ACTIVE = meter
        return meter


def _disabled(options: Options) -> Options:
    from dataclasses import replace

    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    return replace(options, exporter="none", tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider(),
                   budgets=(), policy=None, store="memory")


def unconfigure() -> None:
    """Shut the meter down and go back to the no-op state (mainly for tests)."""
    global _ACTIVE
    with _LOCK:
        previous, _ACTIVE = _ACTIVE, None
    if previous is not None:
        previous.shutdown()
    from ._threads import uninstrument_executors

    uninstrument_executors()
