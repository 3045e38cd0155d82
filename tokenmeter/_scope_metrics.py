"""The GenAI conventions' duration histograms of agent, tool and workflow scopes.

``gen_ai.invoke_agent.duration`` (``gen_ai.agent.name``), ``gen_ai.execute_tool.duration``
(``gen_ai.tool.name``) and ``gen_ai.invoke_workflow.duration`` (``gen_ai.workflow.name``), each with
``error.type`` when the scope failed and the conventions' bucket advisories. Names are folded by the
meter's cardinality limiter like every other metric dimension.
"""

from __future__ import annotations

import weakref
from typing import Any

_AGENT_BUCKETS = [0.1 * 2**i for i in range(13)]  # 0.1 ... 409.6 s
_TOOL_BUCKETS = [0.01 * 2**i for i in range(14)]  # 0.01 ... 81.92 s
_WORKFLOW_BUCKETS = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200]

_SPECS: dict[str, tuple[str, str, list[Any], str]] = {
    "agent": ("gen_ai.invoke_agent.duration", "gen_ai.agent.name", _AGENT_BUCKETS, "GenAI agent invocation duration."),
    "tool": ("gen_ai.execute_tool.duration", "gen_ai.tool.name", _TOOL_BUCKETS, "GenAI tool execution duration."),
    "workflow": (
        "gen_ai.invoke_workflow.duration",
        "gen_ai.workflow.name",
        _WORKFLOW_BUCKETS,
        "GenAI workflow invocation duration.",
    ),
}
_BY_PROVIDER: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _histograms(meter: Any) -> dict[str, Any]:
    provider = meter.meter_provider
    found = _BY_PROVIDER.get(provider)
    if found is None:
        from ._meter import SCOPE_NAME, _version

        otel_meter = provider.get_meter(SCOPE_NAME, _version())
        found = {
            kind: otel_meter.create_histogram(name, unit="s", description=doc, explicit_bucket_boundaries_advisory=b)
            for kind, (name, _, b, doc) in _SPECS.items()
        }
        _BY_PROVIDER[provider] = found
    return found


def record_scope_duration(meter: Any, kind: str, name: str, seconds: float, error: BaseException | None) -> None:
    """One point of the scope kind's duration histogram (steps have none)."""
    spec = _SPECS.get(kind)
    if spec is None:
        return
    attrs: dict[str, Any] = {spec[1]: meter.instruments.limiter.fold(spec[1], name)}
    if error is not None:
        attrs["error.type"] = type(error).__name__
    _histograms(meter)[kind].record(seconds, attrs)
