"""``MeteredCall``: the one place that turns an LLM call into spans, metrics, cost and ledger entries."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from . import _content, _meter, _orphans, _responses, _safe
from ._call_usage import _provider_cost, extra_usage_attributes, semconv_cost_attributes, unit_cost_attributes
from ._context import Scope, add_scope_attributes, current_frame, current_scope
from ._errors import PolicyViolation
from ._instruments import depth_bucket
from ._prices import UNPRICED, Cost
from ._semconv import other_instrumentation_records
from ._usage import Usage, add_counts, add_modalities

if TYPE_CHECKING:
    from ._meter import Meter


@dataclass
class Request:
    """What an integration knows about a call before it is sent.

    A policy may change ``model`` (downgrade); the integration then sends the new model.
    ``messages`` / ``prompt`` are only read to estimate the cost of the call for budgets.
    """

    provider: str
    model: str
    operation: str = "chat"
    max_tokens: int | None = None
    messages: Sequence[Any] | None = None
    prompt: str | None = None
    stream: bool = False
    server_address: str | None = None
    server_port: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    # False for a request that bills no tokens by itself (a context cache's update or delete): no policy
    # or budget refuses it; what it meters is recorded all the same.
    gated: bool = True


class MeteredCall:
    """One LLM call from ``start`` to ``stop`` or ``fail`` (each safe to call more than once).

    Created by :func:`begin` (which runs the policy gate and opens the span); integrations call
    :meth:`stop` with the provider-reported :class:`Usage` or :meth:`fail` with the exception.
    """

    __slots__ = (
        "_done",
        "_t0",
        "endpoint",
        "first_chunk_s",
        "http_attempts",
        "meter",
        "output",
        "request",
        "requested_model",
        "reservation",
        "scope",
        "semconv",
        "span",
        "started_at",
        "tier",
        "usage_hidden",
    )

    def __init__(self, meter: Meter, request: Request, scope: Scope) -> None:
        self.meter = meter
        self.request = request
        self.scope = scope
        self.requested_model = request.model
        self.tier = scope.tier if scope.tier is not None else "unknown"
        self.span: Any = None
        self._done = False
        self.reservation: Any = None
        self.http_attempts: list[tuple[int | None, str | None]] | None = None
        # The integration's Endpoint (None for record()); its optional error_type() names SDK errors.
        self.endpoint: Any = None
        self.output: list[Any] | None = None  # gen_ai.output.messages, only with capture_content
        # Whether this call records the semconv histograms (False: another instrumentation does).
        self.semconv = True
        self.usage_hidden = False  # a stream chunk carrying usage was hidden from the caller
        self._t0 = time.perf_counter()
        self.first_chunk_s: float | None = None  # seconds from the request to a stream's first chunk
        self.started_at = time.time()  # the request's time: the call is priced at the rates of that moment

    @property
    def model(self) -> str:
        """The model to send (a policy may have rewritten it)."""
        return self.request.model

    # -- start ---------------------------------------------------------------------------------
    def _start(self, *, gated: bool = True, start_time_ns: int | None = None, parent_ctx: Any = None) -> None:
        meter, req = self.meter, self.request
        mode = meter.options.semconv_metrics
        if mode is not True:
            self.semconv = mode == "auto" and not other_instrumentation_records()
        model_tier = meter.tiers.tier(req.provider, req.model)
        if model_tier != "unknown" or self.scope.tier is None:
            self.tier = model_tier
        if gated and req.gated and meter.gate is not None:
            meter.gate.before(self)  # may raise BudgetExceeded / PolicyViolation, may rewrite the model
            if req.model != self.requested_model:
                self.tier = meter.tiers.tier(req.provider, req.model)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": req.operation,
            "gen_ai.provider.name": req.provider,
            "gen_ai.request.model": req.model,
            "tokenmeter.model.tier": self.tier,
            "tokenmeter.step.depth": self.scope.depth,
            "tokenmeter.retry.attempt": self.scope.attempt,
        }
        if req.max_tokens is not None:
            attrs["gen_ai.request.max_tokens"] = req.max_tokens
        if req.stream:
            attrs["gen_ai.request.stream"] = True
        if req.server_address:
            attrs["server.address"] = req.server_address
            if req.server_port:
                attrs["server.port"] = req.server_port
        if req.model != self.requested_model:
            attrs["tokenmeter.request.original_model"] = self.requested_model
        add_scope_attributes(self.scope, attrs)
        options = meter.options
        if options.capture_content:
            _content.add_inputs(attrs, req.provider, req.messages, req.prompt, options.capture_content_max_chars)
        if req.attributes:
            attrs.update(req.attributes)
        self.span = meter.tracer.start_span(
            f"{req.operation} {req.model}",
            context=parent_ctx,
            kind=SpanKind.CLIENT,
            attributes=attrs,
            start_time=start_time_ns,
        )

    def first_chunk(self) -> None:
        """A stream delivered its first chunk (``gen_ai.response.time_to_first_chunk``)."""
        if self.first_chunk_s is None:
            self.first_chunk_s = time.perf_counter() - self._t0

    def http_attempt(self, status: int | None, error_type: str | None) -> None:
        """One HTTP request the SDK sent for this call (``_transport``); more than one means it retried."""
        attempts = self.http_attempts
        if attempts is None:
            self.http_attempts = [(status, error_type)]
        else:
            attempts.append((status, error_type))

    @property
    def sdk_retried(self) -> bool:
        """Whether the SDK sent this call more than once (its own retries)."""
        attempts = self.http_attempts
        return attempts is not None and len(attempts) > 1

    # -- stop / fail ---------------------------------------------------------------------------
    def stop(
        self,
        usage: Usage | None,
        *,
        response_model: str | None = None,
        response_id: str | None = None,
        finish_reasons: Sequence[str] | None = None,
        provider_cost_usd: Decimal | None = None,
    ) -> None:
        """Finish a call that returned. ``usage=None`` means the provider reported none (flagged)."""
        if self._done:
            return
        self._done = True
        try:
            self._finish(usage, None, response_model, response_id, finish_reasons, provider_cost_usd)
        except Exception:
            _safe.log_once("call.stop", "tokenmeter: recording a finished call failed")

    def fail(self, error: BaseException, usage: Usage | None = None) -> None:
        """Finish a call that raised; the exception itself is the caller's to re-raise."""
        if self._done:
            return
        self._done = True
        try:
            self._finish(usage, error, None, None, None, None)
        except Exception:
            _safe.log_once("call.fail", "tokenmeter: recording a failed call failed")

    def _finish(
        self,
        usage: Usage | None,
        error: BaseException | None,
        response_model: str | None,
        response_id: str | None,
        finish_reasons: Sequence[str] | None,
        provider_cost_usd: Decimal | None,
    ) -> None:
        meter, req, scope = self.meter, self.request, self.scope
        duration = time.perf_counter() - self._t0
        if usage is not None and not usage.plausible:
            # The last line of defence (integrations already drop implausible counts): a count no call can
            # have never reaches a metric, span, ledger or budget store; the call is reported without usage.
            _safe.warn_once("call.implausible", "tokenmeter: a usage above MAX_TOKENS was not recorded")
            usage = None
        cost = UNPRICED
        error_type: str | None = None
        # Each sink is isolated: a fault in one never costs the span or the others their record.
        try:
            error_type = None if error is None else _error_type(error, getattr(self.endpoint, "error_type", None))
            if usage is not None:
                cost = meter.prices.cost(req.provider, req.model, usage, self.started_at)
                if provider_cost_usd is None:
                    provider_cost_usd = usage.cost_usd
                if provider_cost_usd is not None:
                    cost = _provider_cost(provider_cost_usd, cost, usage)
        except Exception:
            _safe.log_once("call.price", "tokenmeter: pricing a call failed; it is reported unpriced")
        try:
            self._record_metrics(usage, cost, error_type, duration, response_model)
        except Exception:
            _safe.log_once("call.metrics", "tokenmeter: recording call metrics failed")
        try:
            if scope.node is not None:
                scope.node.add_call(usage, cost.usd, error=error is not None, provider=req.provider)
            # After the rollup: the run guard releases this call's estimate only once its usage is counted.
            if meter.gate is not None:
                meter.gate.after(self, usage, cost, error)
        except Exception:
            _safe.log_once("gate.after", "tokenmeter: settling the rollup or budget reservation failed")
        try:
            meter.ledger.call(
                scope,
                self.tier,
                req.provider,
                req.model,
                req.operation,
                usage,
                cost,
                "ok" if error is None else "error",
                self.started_at,
            )
        except Exception:
            _safe.log_once("call.ledger", "tokenmeter: adding a call to the ledger failed")
        if _responses.TRACK and response_id and usage is not None and not req.attributes.get("tokenmeter.usage.source"):
            _responses.note(response_id)
        try:
            self._end_span(usage, cost, error, error_type, response_model, response_id, finish_reasons)
        except Exception:
            _safe.log_once("call.span", "tokenmeter: ending a call span failed")
            if self.span is not None:
                self.span.end()

    def _end_span(
        self,
        usage: Usage | None,
        cost: Cost,
        error: BaseException | None,
        error_type: str | None,
        response_model: str | None,
        response_id: str | None,
        finish_reasons: Sequence[str] | None,
    ) -> None:
        span = self.span
        if span is not None and span.is_recording():
            attrs: dict[str, Any] = {}
            if response_model:
                attrs["gen_ai.response.model"] = response_model
            if response_id:
                attrs["gen_ai.response.id"] = response_id
            if finish_reasons:
                attrs["gen_ai.response.finish_reasons"] = list(finish_reasons)
            if self.output is not None:
                attrs["gen_ai.output.messages"], cut = _content.attribute(
                    self.output, self.meter.options.capture_content_max_chars
                )
                if cut:
                    attrs["tokenmeter.content.truncated"] = True
            if usage is not None:
                attrs["gen_ai.usage.input_tokens"] = usage.input_total
                attrs["gen_ai.usage.output_tokens"] = usage.output_total
                attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read
                for key in self.meter.cache_write_keys:
                    attrs[key] = usage.cache_write
                attrs["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning
                attrs["tokenmeter.usage.estimated"] = usage.estimated
                if usage.has_extras:
                    extra_usage_attributes(attrs, usage, self.request.provider)
            else:
                attrs["tokenmeter.usage.missing"] = True
            attrs["tokenmeter.cost.source"] = cost.source
            if cost.usd is not None:
                attrs["tokenmeter.cost.usd"] = float(cost.usd)
            if cost.table_usd is not None:
                attrs["tokenmeter.cost.table_usd"] = float(cost.table_usd)
            if cost.units or cost.unpriced_units:
                unit_cost_attributes(attrs, cost)
            if self.first_chunk_s is not None:
                attrs["gen_ai.response.time_to_first_chunk"] = self.first_chunk_s
            if cost.usd is not None and self.meter.options.semconv_cost:
                semconv_cost_attributes(attrs, cost)
            if error_type is not None:
                attrs["error.type"] = error_type
                span.set_status(Status(StatusCode.ERROR, str(error)[:256]))
            attempts = self.http_attempts
            if attempts is not None and len(attempts) > 1:
                attrs["tokenmeter.sdk.attempts"] = len(attempts)
                for i, (status, failure) in enumerate(attempts[:-1]):
                    event: dict[str, Any] = {"tokenmeter.sdk.attempt": i}
                    if status is not None:
                        event["http.response.status_code"] = status
                    if failure is not None:
                        event["error.type"] = failure
                    span.add_event("tokenmeter.sdk.retry", event)
            span.set_attributes(attrs)
        if span is not None:
            span.end()

    def _metric_key(self, error_type: str | None) -> tuple[Any, ...]:
        """The metric dimension values of this call, ordered as ``CALL_DIMENSIONS`` + extras."""
        scope, req = self.scope, self.request
        key: tuple[Any, ...] = (
            req.provider,
            req.operation,
            req.model,
            scope.workflow,
            scope.agent,
            scope.team,
            self.tier,
            scope.env,
            scope.attempt > 0 or self.sdk_retried,
            depth_bucket(scope.depth),
            error_type,
        )
        extra_dimensions = self.meter.instruments.extra_dimensions
        if extra_dimensions:
            extra = dict(scope.extra)
            key += tuple(extra.get(k) for k in extra_dimensions)
        return key

    def _record_metrics(
        self,
        usage: Usage | None,
        cost: Cost,
        error_type: str | None,
        duration: float,
        response_model: str | None = None,
    ) -> None:
        _scope, _req, ins = self.scope, self.request, self.meter.instruments
        a = ins.call_attributes(self._metric_key(error_type))
        with ins.register_lock:
            if error_type is None:
                a.ok_calls += 1
            else:
                a.error_calls += 1
            if usage is not None:
                add_counts(a.tokens, usage)
                if usage.details:
                    add_modalities(a.modal, usage)
                by_class = cost.by_class
                if by_class is not None:
                    c = a.cost
                    for i, part in enumerate(by_class):
                        if part:
                            c[i] += part
                elif usage.total:
                    a.unpriced += usage.total
                if usage.units or cost.units:
                    a.add_units(usage.units, cost.units)
        semconv, semconv_in, semconv_out = a.semconv_with(response_model, _req.server_address)
        if self.semconv:
            ins.duration.record(duration, semconv)
            if self.first_chunk_s is not None:
                ins.time_to_first_chunk.record(self.first_chunk_s, semconv)
        if ins.customers is not None and usage is not None:
            ins.customers.add(self.scope.customer, usage.total, cost.usd)
        if usage is not None and (self.semconv or self.usage_hidden):
            ins.token_usage.record(usage.input_total, semconv_in)
            ins.token_usage.record(usage.output_total, semconv_out)

    # -- blocked -------------------------------------------------------------------------------
    def blocked(self, violation: PolicyViolation) -> None:
        """Record a call the policy refused before sending (no tokens, outcome ``blocked``)."""
        self._done = True
        try:
            ins = self.meter.instruments
            key = self._metric_key(type(violation).__name__)
            reg = ins.call_attributes(key)
            with ins.register_lock:
                reg.blocked_calls += 1
            req = self.request
            self.meter.ledger.call(
                self.scope, self.tier, req.provider, req.model, req.operation, None, UNPRICED, "blocked"
            )
            if self.span is not None:
                self.span.end()
        except Exception:
            _safe.log_once("call.blocked", "tokenmeter: recording a blocked call failed")


def _error_type(error: BaseException, namer: Callable[[BaseException], str | None] | None) -> str:
    """``error.type``: what the integration names the SDK's error, else the exception's class name."""
    if isinstance(error, _NamedError):
        return error.type_name
    if namer is not None:
        try:
            name = namer(error)
        except Exception:
            name = None
            _safe.log_once("call.error_type", "tokenmeter: naming an SDK error failed; using its class name")
        if isinstance(name, str) and name:
            return name
    return type(error).__name__


def begin(request: Request) -> MeteredCall | None:
    """Start metering a call; ``None`` when tokenmeter is not configured (the caller proceeds unmetered).

    Raises only :class:`PolicyViolation` / :class:`BudgetExceeded` when a policy refuses the call;
    the call must then not be sent. Any other fault is logged and the call goes ahead unmetered.
    """

    meter = _meter.active()
    if meter is None:
        return None
    if _orphans._QUEUE:
        _orphans.drain()
    try:
        scope, ctx = current_frame()
        call = MeteredCall(meter, request, scope)
        call._start(parent_ctx=ctx)
        if _responses.WATCH.get() is not None:
            _responses.count_metered()
        return call
    except PolicyViolation as violation:
        call.blocked(violation)
        raise
    except Exception:
        _safe.log_once("call.start", "tokenmeter: starting to meter a call failed; the call is not metered")
        return None


def record(
    provider: str,
    model: str,
    usage: Usage,
    *,
    operation: str = "chat",
    duration_s: float | None = None,
    error: BaseException | str | None = None,
    response_model: str | None = None,
    timestamp: datetime | float | None = None,
    attributes: dict[str, Any] | None = None,
) -> None:
    """Meter a call made with a client tokenmeter does not wrap, through the same path as wrapped calls.

    ``error`` may be the exception the call raised or its type name. ``timestamp`` is when the call was
    made (an aware datetime or epoch seconds; now by default): it is priced at that moment's rates.
    ``attributes`` are added to the call's span. Never raises.
    """

    meter = _meter.active()
    if meter is None:
        return
    try:
        request = Request(provider=provider, model=model, operation=operation, attributes=dict(attributes or {}))
        call = MeteredCall(meter, request, current_scope())
        if timestamp is not None:
            call.started_at = timestamp.timestamp() if isinstance(timestamp, datetime) else float(timestamp)
        start_ns = None
        if duration_s is not None:
            call._t0 = time.perf_counter() - duration_s
            start_ns = time.time_ns() - int(duration_s * 1e9)
        # A call that already happened is metered and settled, never blocked after the fact.
        call._start(gated=False, start_time_ns=start_ns)
        if error is None:
            call.stop(usage, response_model=response_model)
        else:
            exc = error if isinstance(error, BaseException) else _NamedError(str(error))
            call.fail(exc, usage)
    except Exception:
        _safe.log_once("record", "tokenmeter: record() failed")


class _NamedError(Exception):
    """Stands for an error given to ``record()`` by name."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.type_name = name
