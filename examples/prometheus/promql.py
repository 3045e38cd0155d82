"""A tiny PromQL builder: the dashboard's and the rules' expressions are written once, as objects.

Each object renders to PromQL (``render()``); the end-to-end tests also evaluate the same objects over the
metrics the demo exposed, and require Prometheus to return exactly that. Only what the dashboard and the
rules use is here: selectors, ``rate`` / ``increase``, ``sum``/``max by``, ratios, scaling, histogram
quantiles, ``deriv`` / ``predict_linear`` on gauges, recorded series and alert comparisons.

Metric names are those of OpenTelemetry's Prometheus exporter and of VictoriaMetrics' OTLP ingestion with
``-opentelemetry.usePrometheusNaming`` (dots become ``_``, counters get ``_total``, a ``USD`` unit becomes a
``_USD`` suffix, ``{token}`` units are dropped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

# Metric names (see docs/backends.md for how OTel names map to Prometheus names).
TOKENS = "tokenmeter_tokens_total"
COST = "tokenmeter_cost_USD_total"
UNPRICED = "tokenmeter_tokens_unpriced_total"
CALLS = "tokenmeter_calls_total"
WASTED_TOKENS = "tokenmeter_tokens_wasted_total"
WASTED_COST = "tokenmeter_cost_wasted_USD_total"
RUN_TOKENS = "tokenmeter_run_tokens_bucket"
RUN_COST = "tokenmeter_run_cost_USD_bucket"
RUN_STEPS = "tokenmeter_run_steps_bucket"
BUDGET = "tokenmeter_budget_utilization"
DECISIONS = "tokenmeter_policy_decisions_total"
TOKEN_USAGE = "gen_ai_client_token_usage_bucket"
DURATION = "gen_ai_client_operation_duration_seconds_bucket"

# Label names.
TEAM = "tokenmeter_team_name"
WORKFLOW = "gen_ai_workflow_name"
AGENT = "gen_ai_agent_name"
TIER = "tokenmeter_model_tier"
MODEL = "gen_ai_request_model"
PROVIDER = "gen_ai_provider_name"
TOKEN_CLASS = "tokenmeter_token_class"
OUTCOME = "tokenmeter_outcome"
DECISION = "tokenmeter_policy_decision"
BUDGET_NAME = "tokenmeter_budget_name"
BUDGET_OWNER = "tokenmeter_budget_owner"
WASTE_REASON = "tokenmeter_waste_reason"
TOKEN_TYPE = "gen_ai_token_type"

RATE_INTERVAL = "$__rate_interval"  # Grafana's window for rate() panels
RANGE = "$__range"  # Grafana's whole dashboard time range


@dataclass(frozen=True)
class Render:
    """How to render: ``window`` replaces every range window, ``inline`` expands recorded series into their
    expression, ``variables`` replaces dashboard variables such as ``$team`` (the tests use these)."""

    window: str | None = None
    inline: bool = False
    variables: Mapping[str, str] = field(default_factory=dict)


DEFAULT = Render()


class Expr:
    """A PromQL expression."""

    def render(self, how: Render = DEFAULT) -> str:
        """The expression as PromQL text."""
        raise NotImplementedError

    def __truediv__(self, other: Expr) -> Div:
        return Div(self, other)

    def __mul__(self, factor: float) -> Scale:
        return Scale(self, factor)


@dataclass(frozen=True)
class Selector(Expr):
    """``metric{label op "value", ...}``; ``op`` is ``=``, ``!=``, ``=~`` or ``!~``."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...] = ()

    def where(self, label: str, op: str, value: str) -> Selector:
        """This selector with one more matcher."""
        return replace(self, matchers=(*self.matchers, (label, op, value)))

    def render(self, how: Render = DEFAULT) -> str:
        if not self.matchers:
            return self.metric
        parts = []
        for label, op, value in self.matchers:
            parts.append(f'{label}{op}"{how.variables.get(value, value)}"')
        return f"{self.metric}{{{', '.join(parts)}}}"


@dataclass(frozen=True)
class Range(Expr):
    """``fn(selector[window])`` for ``fn`` in rate, increase, deriv."""

    fn: str
    selector: Selector
    window: str

    def render(self, how: Render = DEFAULT) -> str:
        return f"{self.fn}({self.selector.render(how)}[{how.window or self.window}])"


@dataclass(frozen=True)
class PredictLinear(Expr):
    """``predict_linear(selector[window], seconds)``: where a gauge is heading."""

    selector: Selector
    window: str
    seconds: int

    def render(self, how: Render = DEFAULT) -> str:
        return f"predict_linear({self.selector.render(how)}[{how.window or self.window}], {self.seconds})"


@dataclass(frozen=True)
class Aggregate(Expr):
    """``op by (labels) (inner)`` for ``op`` in sum, max."""

    op: str
    by: tuple[str, ...]
    inner: Expr

    def render(self, how: Render = DEFAULT) -> str:
        by = f" by ({', '.join(self.by)})" if self.by else ""
        return f"{self.op}{by} ({self.inner.render(how)})"


@dataclass(frozen=True)
class Div(Expr):
    """``a / b`` (one-to-one on identical label sets)."""

    a: Expr
    b: Expr

    def render(self, how: Render = DEFAULT) -> str:
        return f"{_group(self.a, how)} / {_group(self.b, how)}"


@dataclass(frozen=True)
class Scale(Expr):
    """``inner * factor`` (e.g. per second -> per hour)."""

    inner: Expr
    factor: float

    def render(self, how: Render = DEFAULT) -> str:
        return f"{_group(self.inner, how)} * {self.factor:g}"


@dataclass(frozen=True)
class Quantile(Expr):
    """``histogram_quantile(q, sum by (le, labels) (rate(bucket[window])))``."""

    q: float
    inner: Aggregate

    def render(self, how: Render = DEFAULT) -> str:
        return f"histogram_quantile({self.q:g}, {self.inner.render(how)})"


@dataclass(frozen=True)
class Recorded(Expr):
    """A recording rule's series: renders as its name, or (``Render.inline``) as its expression."""

    name: str
    expr: Expr

    def render(self, how: Render = DEFAULT) -> str:
        return self.expr.render(how) if how.inline else self.name


@dataclass(frozen=True)
class Compare(Expr):
    """``inner op threshold``: an alert condition (the series for which it holds)."""

    inner: Expr
    op: str
    threshold: float

    def render(self, how: Render = DEFAULT) -> str:
        return f"{_group(self.inner, how)} {self.op} {self.threshold:g}"


def _group(expr: Expr, how: Render) -> str:
    text = expr.render(how)
    return (
        f"({text})" if isinstance(expr, (Div, Scale, Compare)) or (isinstance(expr, Recorded) and how.inline) else text
    )


# -- shorthands ------------------------------------------------------------------------------------------
def sel(metric: str, **equal: str) -> Selector:
    """A selector with ``label="value"`` matchers."""
    return Selector(metric, tuple((k, "=", v) for k, v in equal.items()))


def rate(selector: Selector, window: str = RATE_INTERVAL) -> Range:
    """``rate(selector[window])``."""
    return Range("rate", selector, window)


def increase(selector: Selector, window: str = RANGE) -> Range:
    """``increase(selector[window])``."""
    return Range("increase", selector, window)


def deriv(selector: Selector, window: str) -> Range:
    """``deriv(selector[window])``: per-second slope of a gauge."""
    return Range("deriv", selector, window)


def sum_by(labels: tuple[str, ...] | list[str], inner: Expr) -> Aggregate:
    """``sum by (labels) (inner)``."""
    return Aggregate("sum", tuple(labels), inner)


def max_by(labels: tuple[str, ...] | list[str], inner: Expr) -> Aggregate:
    """``max by (labels) (inner)``."""
    return Aggregate("max", tuple(labels), inner)


def quantile(q: float, bucket: Selector, labels: tuple[str, ...] | list[str], window: str = RATE_INTERVAL) -> Quantile:
    """``histogram_quantile(q, sum by (le, labels) (rate(bucket[window])))``."""
    return Quantile(q, sum_by(("le", *labels), rate(bucket, window)))
