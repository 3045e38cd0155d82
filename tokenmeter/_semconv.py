"""Whether another GenAI instrumentation records the semantic-convention histograms of the call in progress.

opentelemetry-instrumentation-openai-v2, OpenLLMetry, pydantic-ai's instrumentation and others record
``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration`` for the calls they wrap. Their
patch layers sit above tokenmeter's (``_patch`` puts tokenmeter's layer innermost), so while tokenmeter
starts metering the call, their ``CLIENT`` span for that very call is the current span. Seeing one, the
``semconv_metrics="auto"`` mode leaves those two histograms to them; tokenmeter's own counters are
always recorded.
"""

from __future__ import annotations

from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind

from . import _safe
from ._meter import SCOPE_NAME

# Operations of a model call (a span of an agent, tool or workflow around the call does not count).
_CALL_OPERATIONS = frozenset(
    {"chat", "text_completion", "embeddings", "generate_content", "responses", "completion", "create_response"}
)


def other_instrumentation_records() -> bool:
    """Whether the current span is another instrumentation's GenAI client span (the same call, wrapped)."""
    try:
        span = otel_trace.get_current_span()
        if not span.is_recording() or getattr(span, "kind", None) is not SpanKind.CLIENT:
            return False
        scope = getattr(span, "instrumentation_scope", None)
        if scope is not None and getattr(scope, "name", None) == SCOPE_NAME:
            return False
        attrs = getattr(span, "attributes", None)
        if not attrs:
            return False
        operation = attrs.get("gen_ai.operation.name")
        if operation is None:
            return "gen_ai.system" in attrs or "llm.request.type" in attrs
        return operation in _CALL_OPERATIONS
    except Exception:
        _safe.log_once("semconv.detect", "tokenmeter: detecting another GenAI instrumentation failed")
        return False
