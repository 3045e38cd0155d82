"""The configured meter: OTel providers, instruments, prices, tiers, ledger and (optional) governance."""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace

from . import _lifecycle, _orphans, _safe
from ._call_usage import cache_write_keys
from ._config import Options, resolve_options
from ._errors import ConfigError
from ._instruments import instruments_for
from ._prices import PriceBook
from ._tiers import TierResolver
from ._tokens import Tokenizer, set_default_tokenizer

_log = logging.getLogger("tokenmeter")
SCOPE_NAME = "tokenmeter"


@functools.cache
def _version() -> str:  # package metadata: ≈ 1 ms a lookup, asked by every configure() and fork
    try:
        from importlib.metadata import version

        return version("tokenmeter")
    except Exception:
        return "0.0.0"


class Meter:
    """What ``configure()`` returns: the live meter. Use it to flush, shut down and read the ledger."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._warmup: Any = None  # started by configure() (see _warmup)
        self._owned: list[Any] = []
        self.gate: Any = None
        self.prices = PriceBook(options.prices)
        self.tiers = TierResolver(options.tiers, self.prices.input_price_mtok)
        self.tokenizer = Tokenizer(options.tiktoken_cache_dir, options.tiktoken_files)
        self._check_downgrades(options)
        try:
            self._build(options)
        except BaseException:  # a bad configuration leaves no writer thread behind (nor, later, a file)
            ledger = getattr(self, "ledger", None)
            if ledger is not None:
                ledger.close()
            raise

    def _check_downgrades(self, options: Options) -> None:
        """A downgrade must name a model tokenmeter can price or that ``tiers`` declares (never sent blind)."""
        import fnmatch

        policy = options.policy
        mapped = dict(getattr(policy, "downgrade", None) or {})
        for budget in options.budgets:
            if getattr(budget, "action", None) != "downgrade":
                continue
            target = budget.downgrade_to
            if target is None and not mapped:
                raise ConfigError(
                    f"Budget {budget.name!r}: action='downgrade' needs a target: give downgrade_to="
                    "'<cheaper model>' or a Policy(downgrade={...}) map"
                )
        targets = [
            (f"Budget {b.name!r}: downgrade_to", b.downgrade_to)
            for b in options.budgets
            if getattr(b, "downgrade_to", None)
        ]
        targets += [(f"Policy: downgrade[{k!r}]", v) for k, v in mapped.items()]
        for where, model in targets:
            declared = any(fnmatch.fnmatchcase(model, glob) for glob in options.tiers)
            if not declared and self.prices.input_price_mtok("", model) is None:
                raise ConfigError(
                    f"{where}={model!r} is neither priced nor declared: check the model name, add "
                    f"its price (configure(prices={{{model!r}: {{...}}}})) or its tier "
                    f"(configure(tiers={{{model!r}: 'economy'}}))"
                )

    def _build(self, options: Options, *, resource: Any = None) -> None:
        """The per-process part: providers (if tokenmeter owns them), instruments, ledger and gate."""
        self.tracer_provider, self.meter_provider = self._providers(options, resource)
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
        self.ledger = _build_ledger(options)
        if options.customer_metrics:
            from ._customers import TopCustomers

            self.instruments.customers = TopCustomers(options.customer_metrics, time.time)
        prices = self.prices
        self.instruments.prices_info = lambda: (prices.table_version, prices.data_date)  # at collection
        self.cache_write_keys = cache_write_keys(os.environ)
        from .governance import build_gate

        # Always built: the per-run guard (workflow(max_tokens=...)) needs it even without budgets;
        # with nothing configured its before() returns at once.
        self.gate = build_gate(self, options, otel_meter, forked=resource is not None)

    def _after_fork(self) -> None:
        """In a forked child: start afresh so the child neither reuses nor re-exports the parent's state.

        Providers tokenmeter built are rebuilt (the parent's copies stay silent: their exporters only
        export in the process that made them) with a ``service.instance.id`` of this process, and so
        are the instruments, the ledger and the budget gate (a new store connection). Providers the
        application owns are the application's to handle after a fork; then only the ledger and the gate
        (its store connection) restart (tokenmeter's locks were re-initialised already).
        """
        # The parent's gate stays referenced, never closed nor collected here: closing an SQLite connection
        # copied mid-transaction would roll the parent's transaction back under it.
        _PARENTS_STATE.append((self.gate, list(self._owned)))
        if not self._owned:
            from .governance import build_gate

            self.ledger = _build_ledger(self.options)
            # A store connection is never shared with the parent (SQLite forbids it; Redis pools re-dial).
            self.gate = build_gate(
                self, self.options, self.meter_provider.get_meter(SCOPE_NAME, _version()), forked=True
            )
            return
        from ._exporters import child_resource

        owned = self._owned[0]
        parent = getattr(owned, "resource", None) or owned._sdk_config.resource  # tracer / meter provider
        self._owned = []  # the parent's: never flushed nor shut down from here
        self._build(self.options, resource=child_resource(parent))

    # -- providers -----------------------------------------------------------------------------
    def _providers(self, options: Options, resource: Any = None) -> tuple[Any, Any]:
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
            _log.warning(
                "tokenmeter: prometheus_address=%r not served: metrics go to the meter provider in use "
                "(add a PrometheusMetricReader to it)",
                options.prometheus_address,
            )
        if tp is not None and mp is not None:
            if options.exporter != "none" and options.tracer_provider is None and options.meter_provider is None:
                _log.info(
                    "tokenmeter: using the application's OpenTelemetry providers; exporter=%r not applied",
                    options.exporter,
                )
            return tp, mp
        from ._exporters import build_meter_provider, build_tracer_provider

        forked = resource is not None

        try:
            if tp is None:
                tp = build_tracer_provider(options, resource)
                self._owned.append(tp)
            if mp is None:
                mp = build_meter_provider(options, resource, serve_prometheus=not forked)
                self._owned.append(mp)
        except BaseException:
            self.shutdown()  # what was built so far (e.g. a port already in use for Prometheus)
            raise
        return tp, mp

    # -- lifecycle -----------------------------------------------------------------------------
    def warm_up(self, timeout: float | None = None) -> bool:
        """Wait until the set-up ``configure()`` started in the background is done (price table, and with
        budgets the tokenizer and the store connection); ``True`` if it is, ``False`` after ``timeout`` s.

        Never needed for correctness (a call that needs a part first loads it or waits for it): use it
        where a service should not take traffic before its first call is as fast as the others (a
        readiness probe).
        """
        warmup = self._warmup
        return True if warmup is None else bool(warmup.wait(timeout))

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        """Export everything recorded so far (spans and metrics) within ``timeout_millis``.

        Returns False when the exporters did not finish in time (e.g. the collector is down) or failed;
        the export goes on in the background and the caller is not held longer than the timeout.
        """
        return _lifecycle.run_bounded(f"flush-{id(self):x}", self._flush_now, timeout_millis)

    def _flush_now(self, timeout_millis: int) -> bool:
        _orphans.drain()
        ok = True
        if self.gate is not None:  # budget settles queued off the callers' path (Redis)
            ok = self.gate.flush(timeout_millis)
        try:
            ok = self.ledger.flush()
        except Exception:
            _safe.log_once("ledger.flush", "tokenmeter: flushing the ledger failed")
            ok = False
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)
            if flush is not None:
                try:
                    ok = bool(flush(timeout_millis)) and ok
                except Exception:
                    _safe.log_once("force_flush", "tokenmeter: flushing failed")
                    ok = False
        return ok

    def shutdown(self, timeout_millis: int | None = None) -> bool:
        """Flush and stop what this meter created (never the application's own providers).

        Bounded by ``timeout_millis`` (default ``configure(shutdown_timeout_ms=...)``); returns False
        when that was not enough.
        """
        budget = self.options.shutdown_timeout_ms if timeout_millis is None else timeout_millis
        return _lifecycle.run_bounded(f"shutdown-{id(self):x}", self._shutdown_now, budget)

    def _shutdown_now(self, timeout_millis: int) -> bool:
        ok = True
        ledger = getattr(self, "ledger", None)
        if ledger is not None:
            try:
                ledger.close()
            except Exception:
                ok = False
                _safe.log_once("ledger.close", "tokenmeter: closing the ledger failed")
        if self.gate is not None:
            try:
                self.gate.close()
            except Exception:
                ok = False
                _safe.log_once("gate.close", "tokenmeter: closing the budget store failed")
        _orphans.drain()
        owned, self._owned = list(self._owned), []
        for provider in owned:
            try:
                if hasattr(provider, "get_meter"):  # the SDK MeterProvider takes a timeout
                    provider.shutdown(timeout_millis=timeout_millis)
                else:
                    provider.shutdown()
            except Exception:
                ok = False
                _safe.log_once("shutdown", "tokenmeter: shutting a provider down failed")
        return ok

    def report(self) -> str:
        """A plain-text FinOps report of everything metered in this process (see ``tokenmeter report``)."""
        from .finops.report import build_report, render_text

        return render_text(build_report(self.reader(), prices=self.prices))

    def reader(self) -> Any:
        """A :class:`tokenmeter.finops.Reader` over what this process metered (in memory)."""
        from .finops._memory import MemoryReader

        return MemoryReader(self)


def _build_ledger(options: Options) -> Any:
    """The ledger sink; its file (and, for ``"default"``, its location) is opened by its writer thread."""
    from ._config import default_ledger_path, ledger_path
    from .finops._agg import default_env
    from .finops._sink import LedgerSink

    return LedgerSink(
        default_ledger_path if options.ledger == "default" else ledger_path(options.ledger),
        flush_interval=options.ledger_flush_interval,
        queue_size=options.ledger_queue_size,
        max_pending_runs=options.ledger_max_pending_runs,
        retention_days=options.ledger_retention_days,
        run_retention_days=options.ledger_run_retention_days,
        list_prices=PriceBook(None),
        env=default_env(),
    )


def _MeterProviderType() -> type:
    from opentelemetry.sdk.metrics import MeterProvider

    return MeterProvider


_ACTIVE: Meter | None = None
_LOCK = _lifecycle.lock()
_PARENTS_STATE: list[Any] = []  # in a forked child: what the parent's meter held (see Meter._after_fork)


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
    * ``metric_attributes`` -- extra ``attributes(**extra)`` keys allowed on metrics (and as budget scopes).
    * ``customer_metrics`` -- ``N > 0`` adds the gauges ``tokenmeter.customer.cost`` / ``.tokens``: the
      day-to-date spend of the top ``N`` customers plus ``_other`` and ``_none`` (default 0: off).
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
    * ``ledger`` -- the durable FinOps ledger: ``"sqlite:///path/ledger.db"``, ``"default"`` (the platform's
      user data directory, e.g. ``~/.local/share/tokenmeter/ledger.db``) or ``None`` / ``"none"`` (off: the
      report then covers this process only). Written by a background thread; read with ``tokenmeter report``.
    * ``ledger_flush_interval`` -- seconds between ledger writes (default 1.0: at most that much is lost if
      the process is killed); ``ledger_queue_size`` (default 65536 events before folding in memory);
      ``ledger_max_pending_runs`` (default 10000 finished runs kept one by one while the writer is behind or
      the file cannot be written; the next fold into per-hour sums, table ``runs_folded``: the bound on the
      ledger's memory however far its writer falls behind);
      ``ledger_retention_days`` (hourly rows, default 400; daily and monthly rows stay) and
      ``ledger_run_retention_days`` (per-run rows, default 90).
    * ``shutdown_timeout_ms`` -- the most :func:`shutdown` (and the exit hook) may take (default 5000).
    * ``disabled`` -- configure nothing (also ``OTEL_SDK_DISABLED=true``).
    * ``semconv_cost`` -- also record the proposed ``gen_ai.usage.cost.amount`` / ``.currency`` /
      ``.source`` span attributes beside ``tokenmeter.cost.usd`` (default False, until accepted).
    * ``providers`` -- ``{"host-glob": "provider-name"}``: the ``gen_ai.provider.name`` (and price table)
      of OpenAI-compatible servers by host (``{"llm.internal:8000": "vllm"}``); well-known hosts
      (DeepSeek, Groq, xAI, Mistral, OpenRouter, Together, Fireworks, Perplexity, Ollama) need none.

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
            disabled = Meter(_disabled(resolved))
            disabled.ledger.close()  # never active: nothing is metered into it, no writer thread kept
            return disabled
        try:
            meter = Meter(resolved)
        except ConfigError:
            raise
        except ImportError as exc:
            raise ConfigError(f"a package needed by this configuration is missing: {exc}") from exc
        set_default_tokenizer(meter.tokenizer)
        _orphans.start_reaper()
        _lifecycle.set_timeout_ms(resolved.shutdown_timeout_ms)
        _lifecycle.hook_multiprocessing()
        from ._threads import instrument_executors, uninstrument_executors

        if resolved.instrument_threads:
            instrument_executors()
        else:
            uninstrument_executors()
        _ACTIVE = meter
        from ._warmup import Warmup, tasks_for

        meter._warmup = Warmup(tasks_for(meter)).start()  # off the caller's path: see tokenmeter/_warmup.py
        return meter


def _disabled(options: Options) -> Options:
    from dataclasses import replace

    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    return replace(
        options,
        exporter="none",
        tracer_provider=NoOpTracerProvider(),
        meter_provider=NoOpMeterProvider(),
        budgets=(),
        policy=None,
        store="memory",
        ledger="none",
    )


def unconfigure() -> None:
    """Shut the meter down and go back to the no-op state (mainly for tests)."""
    global _ACTIVE
    with _LOCK:
        previous, _ACTIVE = _ACTIVE, None
    if previous is not None:
        previous.shutdown()
    from ._threads import uninstrument_executors

    uninstrument_executors()


def shutdown(timeout_millis: int | None = None) -> bool:
    """Flush and shut down everything tokenmeter runs, within ``timeout_millis``; then it is a no-op.

    Covers the meter's exporters and budget store and every other registered component (the FinOps
    ledger writer...). Bounded by ``timeout_millis`` (default ``configure(shutdown_timeout_ms=...)``,
    5 s): returns False when something did not finish in time (an unreachable collector) instead of
    holding the process. It runs by itself at interpreter exit and in ``multiprocessing`` children;
    call it from a pre-fork server's worker-exit hook and before ``os._exit`` in a bare ``os.fork()`` child.
    """
    return _lifecycle.shutdown(timeout_millis)


def _flush_hook(timeout_millis: int) -> bool:
    meter = _ACTIVE
    return True if meter is None else meter._flush_now(timeout_millis)


def _shutdown_hook(timeout_millis: int) -> bool:
    global _ACTIVE
    with _LOCK:
        meter, _ACTIVE = _ACTIVE, None
    if meter is None:
        return True
    ok = meter._flush_now(timeout_millis)
    return meter._shutdown_now(timeout_millis) and ok


def _after_fork_hook() -> None:
    global _ACTIVE
    meter = _ACTIVE
    if meter is None:
        return
    try:
        meter._after_fork()
        from ._warmup import Warmup, tasks_for

        meter._warmup = Warmup(tasks_for(meter)).start()  # the parent's thread is not in the child
    except Exception:
        _ACTIVE = None
        _safe.log_once("fork", "tokenmeter: rebuilding the meter in a forked child failed; the child is not metered")


_lifecycle.register("meter", _lifecycle.Hooks(after_fork=_after_fork_hook, flush=_flush_hook, shutdown=_shutdown_hook))
