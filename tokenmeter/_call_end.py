"""The end of a metered call: price it, then record it in each sink (metrics, rollup, budget, ledger, span).

``MeteredCall.stop`` / ``fail`` / ``blocked`` (``_call``) hand the call here once; each sink is isolated,
so a fault in one never costs the span or the others their record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Status, StatusCode

from . import _content, _responses, _safe
from ._call_usage import _provider_cost, extra_usage_attributes, semconv_cost_attributes, unit_cost_attributes
from ._errors import PolicyViolation
from ._instruments import depth_bucket
from ._prices import UNPRICED, Cost
from ._usage import Usage, add_counts, add_modalities

if TYPE_CHECKING:
    from ._call import MeteredCall


def finish(
    call: MeteredCall,
    usage: Usage | None,
    error: BaseException | None,
    response_model: str | None,
    response_id: str | None,
    finish_reasons: Sequence[str] | None,
    provider_cost_usd: Decimal | None,
) -> None:
    """Price a returned (``error=None``) or failed call and record it in every sink."""
    meter, req, scope = call.meter, call.request, call.scope
    duration = time.perf_counter() - call._t0
    if usage is not None and not usage.plausible:
        # The last line of defence (integrations already drop implausible counts): a count no call can
        # have never reaches a metric, span, ledger or budget store; the call is reported without usage.
        _safe.warn_once("call.implausible", "tokenmeter: a usage above MAX_TOKENS was not recorded")
        usage = None
    cost = UNPRICED
    error_type: str | None = None
    # Each sink is isolated: a fault in one never costs the span or the others their record.
    try:
        error_type = None if error is None else error_type_of(error, getattr(call.endpoint, "error_type", None))
        if usage is not None:
            cost = meter.prices.cost(req.provider, req.model, usage, call.started_at)
            if provider_cost_usd is None:
                provider_cost_usd = usage.cost_usd
            if provider_cost_usd is not None:
                cost = _provider_cost(provider_cost_usd, cost, usage)
    except Exception:
        _safe.log_once("call.price", "tokenmeter: pricing a call failed; it is reported unpriced")
    try:
        record_metrics(call, usage, cost, error_type, duration, response_model)
    except Exception:
        _safe.log_once("call.metrics", "tokenmeter: recording call metrics failed")
    try:
        if scope.node is not None:
            scope.node.add_call(usage, cost.usd, error=error is not None, provider=req.provider)
        # After the rollup: the run guard releases this call's estimate only once its usage is counted.
        if meter.gate is not None:
            meter.gate.after(call, usage, cost, error)
    except Exception:
        _safe.log_once("gate.after", "tokenmeter: settling the rollup or budget reservation failed")
    try:
        meter.ledger.call(
            scope,
            call.tier,
            req.provider,
            req.model,
            req.operation,
            usage,
            cost,
            "ok" if error is None else "error",
            call.started_at,
        )
    except Exception:
        _safe.log_once("call.ledger", "tokenmeter: adding a call to the ledger failed")
    if _responses.TRACK and response_id and usage is not None and not req.attributes.get("tokenmeter.usage.source"):
        _responses.note(response_id)
    try:
        end_span(call, usage, cost, error, error_type, response_model, response_id, finish_reasons)
    except Exception:
        _safe.log_once("call.span", "tokenmeter: ending a call span failed")
        if call.span is not None:
            call.span.end()


def end_span(
    call: MeteredCall,
    usage: Usage | None,
    cost: Cost,
    error: BaseException | None,
    error_type: str | None,
    response_model: str | None,
    response_id: str | None,
    finish_reasons: Sequence[str] | None,
) -> None:
    """Set the call span's response, usage and cost attributes (one ``set_attributes``) and end it."""
    span = call.span
    if span is not None and span.is_recording():
        attrs: dict[str, Any] = {}
        if response_model:
            attrs["gen_ai.response.model"] = response_model
        if response_id:
            attrs["gen_ai.response.id"] = response_id
        if finish_reasons:
            attrs["gen_ai.response.finish_reasons"] = list(finish_reasons)
        if call.output is not None:
            attrs["gen_ai.output.messages"], cut = _content.attribute(
                call.output, call.meter.options.capture_content_max_chars
            )
            if cut:
                attrs["tokenmeter.content.truncated"] = True
        if usage is not None:
            attrs["gen_ai.usage.input_tokens"] = usage.input_total
            attrs["gen_ai.usage.output_tokens"] = usage.output_total
            attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read
            for key in call.meter.cache_write_keys:
                attrs[key] = usage.cache_write
            attrs["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning
            attrs["tokenmeter.usage.estimated"] = usage.estimated
            if usage.has_extras:
                extra_usage_attributes(attrs, usage, call.request.provider)
        else:
            attrs["tokenmeter.usage.missing"] = True
        attrs["tokenmeter.cost.source"] = cost.source
        if cost.usd is not None:
            attrs["tokenmeter.cost.usd"] = float(cost.usd)
        if cost.table_usd is not None:
            attrs["tokenmeter.cost.table_usd"] = float(cost.table_usd)
        if cost.units or cost.unpriced_units:
            unit_cost_attributes(attrs, cost)
        if call.first_chunk_s is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = call.first_chunk_s
        if cost.usd is not None and call.meter.options.semconv_cost:
            semconv_cost_attributes(attrs, cost)
        if error_type is not None:
            attrs["error.type"] = error_type
            span.set_status(Status(StatusCode.ERROR, str(error)[:256]))
        attempts = call.http_attempts
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


def metric_key(call: MeteredCall, error_type: str | None) -> tuple[Any, ...]:
    """The metric dimension values of ``call``, ordered as ``CALL_DIMENSIONS`` + extras."""
    scope, req = call.scope, call.request
    key: tuple[Any, ...] = (
        req.provider,
        req.operation,
        req.model,
        scope.workflow,
        scope.agent,
        scope.team,
        call.tier,
        scope.env,
        scope.attempt > 0 or call.sdk_retried,
        depth_bucket(scope.depth),
        error_type,
    )
    extra_dimensions = call.meter.instruments.extra_dimensions
    if extra_dimensions:
        extra = dict(scope.extra)
        key += tuple(extra.get(k) for k in extra_dimensions)
    return key


def record_metrics(
    call: MeteredCall,
    usage: Usage | None,
    cost: Cost,
    error_type: str | None,
    duration: float,
    response_model: str | None = None,
) -> None:
    """The call's counter registers, the semconv histogram points and the customer totals."""
    req, ins = call.request, call.meter.instruments
    a = ins.call_attributes(metric_key(call, error_type))
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
    semconv, semconv_in, semconv_out = a.semconv_with(response_model, req.server_address)
    if call.semconv:
        ins.duration.record(duration, semconv)
        if call.first_chunk_s is not None:
            ins.time_to_first_chunk.record(call.first_chunk_s, semconv)
    if ins.customers is not None and usage is not None:
        ins.customers.add(call.scope.customer, usage.total, cost.usd)
    if usage is not None and (call.semconv or call.usage_hidden):
        ins.token_usage.record(usage.input_total, semconv_in)
        ins.token_usage.record(usage.output_total, semconv_out)


def blocked(call: MeteredCall, violation: PolicyViolation) -> None:
    """Record a call the policy refused before sending (no tokens, outcome ``blocked``)."""
    try:
        ins = call.meter.instruments
        reg = ins.call_attributes(metric_key(call, type(violation).__name__))
        with ins.register_lock:
            reg.blocked_calls += 1
        req = call.request
        call.meter.ledger.call(call.scope, call.tier, req.provider, req.model, req.operation, None, UNPRICED, "blocked")
        if call.span is not None:
            call.span.end()
    except Exception:
        _safe.log_once("call.blocked", "tokenmeter: recording a blocked call failed")


def error_type_of(error: BaseException, namer: Callable[[BaseException], str | None] | None) -> str:
    """``error.type``: what the integration names the SDK's error, else the exception's class name."""
    if isinstance(error, NamedError):
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


class NamedError(Exception):
    """Stands for an error given to ``record()`` by name."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.type_name = name
