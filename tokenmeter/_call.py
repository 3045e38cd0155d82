"""``MeteredCall``: the one place that turns an LLM call into spans, metrics, cost and ledger entries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind

from . import _call_end, _content, _meter, _orphans, _responses, _safe
from ._context import Scope, add_scope_attributes, current_frame, current_scope
from ._errors import PolicyViolation
from ._semconv import other_instrumentation_records
from ._usage import Usage

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
            _call_end.finish(self, usage, None, response_model, response_id, finish_reasons, provider_cost_usd)
        except Exception:
            _safe.log_once("call.stop", "tokenmeter: recording a finished call failed")

    def fail(self, error: BaseException, usage: Usage | None = None) -> None:
        """Finish a call that raised; the exception itself is the caller's to re-raise."""
        if self._done:
            return
        self._done = True
        try:
            _call_end.finish(self, usage, error, None, None, None, None)
        except Exception:
            _safe.log_once("call.fail", "tokenmeter: recording a failed call failed")

    # -- blocked -------------------------------------------------------------------------------
    def blocked(self, violation: PolicyViolation) -> None:
        """Record a call the policy refused before sending (no tokens, outcome ``blocked``)."""
        self._done = True
        _call_end.blocked(self, violation)


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
            exc = error if isinstance(error, BaseException) else _call_end.NamedError(str(error))
            call.fail(exc, usage)
    except Exception:
        _safe.log_once("record", "tokenmeter: record() failed")
