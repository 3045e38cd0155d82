"""A reference evaluator for the dashboard's and rules' expressions (``examples/prometheus/promql.py`` objects).

It computes what each expression must return from two scrapes of the application's own ``/metrics``
endpoint: ``before`` (a scrape taken when the window starts) and ``after`` (when it ends). Counters and
histogram buckets contribute ``after - before``: Prometheus returns exactly that for ``increase`` when the
range starts and ends on scrape samples (no extrapolation), and ``rate`` is that over the window. Gauges
contribute their ``after`` value. ``deriv`` / ``predict_linear`` fit a line through every sample in the
window, which two scrapes cannot reproduce: they yield :class:`Rising`, a lower bound, when the gauge grew.
"""

from __future__ import annotations

import math
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from examples.prometheus.promql import (
    Aggregate,
    Compare,
    Div,
    Expr,
    PredictLinear,
    Quantile,
    Range,
    Recorded,
    Scale,
    Selector,
)

Labels = frozenset[tuple[str, str]]
Samples = dict[str, dict[Labels, float]]


@dataclass(frozen=True)
class Rising:
    """A value Prometheus computes from the samples in between: known only to be above ``floor``."""

    floor: float


Value = float | Rising
Result = dict[Labels, Value]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def parse_exposition(text: str) -> Samples:
    """``{sample name: {labels: value}}`` of a Prometheus text exposition."""
    out: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name][frozenset(s.labels.items())] = float(s.value)
    return dict(out)


class Reference:
    """Evaluates expressions over the counters' increase between two scrapes ``window_s`` seconds apart."""

    def __init__(self, before: Samples, after: Samples, window_s: float, variables: Mapping[str, str]) -> None:
        self.before, self.after, self.window_s, self.variables = before, after, window_s, variables

    def evaluate(self, expr: Expr) -> Result:
        """The series ``expr`` must return (labels -> value)."""
        if isinstance(expr, Selector):
            return dict(self._select(expr, self.after))
        if isinstance(expr, Range):
            return self._range(expr)
        if isinstance(expr, PredictLinear):
            return {
                k: Rising(a) if a > self._before(expr.selector, k) else a
                for k, a in self._select(expr.selector, self.after)
            }
        if isinstance(expr, Aggregate):
            return self._aggregate(expr)
        if isinstance(expr, Div):
            a, b = self.evaluate(expr.a), self.evaluate(expr.b)
            out: Result = {}
            for key in a.keys() & b.keys():
                num, den = a[key], b[key]
                assert isinstance(num, float) and isinstance(den, float) and den != 0, (expr.render(), key, num, den)
                out[key] = num / den
            return out
        if isinstance(expr, Scale):
            return {
                k: Rising(v.floor * expr.factor) if isinstance(v, Rising) else v * expr.factor
                for k, v in self.evaluate(expr.inner).items()
            }
        if isinstance(expr, Quantile):
            return self._quantile(expr)
        if isinstance(expr, Recorded):
            return self.evaluate(expr.expr)
        if isinstance(expr, Compare):
            # A Rising value is treated as passing: the demo's budgets grow by tens of percent in seconds,
            # orders of magnitude above the alert thresholds.
            test = _COMPARE[expr.op]
            return {
                k: v for k, v in self.evaluate(expr.inner).items() if isinstance(v, Rising) or test(v, expr.threshold)
            }
        raise TypeError(f"no reference semantics for {type(expr).__name__}")

    # -- parts -----------------------------------------------------------------------------------------
    def _select(self, selector: Selector, samples: Samples) -> list[tuple[Labels, float]]:
        matchers = [(label, op, self.variables.get(value, value)) for label, op, value in selector.matchers]
        out = []
        for key, v in samples.get(selector.metric, {}).items():
            labels = dict(key)
            if all(_matches(labels.get(label, ""), op, value) for label, op, value in matchers):
                out.append((key, v))
        return out

    def _before(self, selector: Selector, key: Labels) -> float:
        value = self.before.get(selector.metric, {}).get(key)
        assert value is not None, f"{selector.metric}{dict(key)} has no sample at the start of the window"
        return value

    def _range(self, expr: Range) -> Result:
        out: Result = {}
        for key, a in self._select(expr.selector, self.after):
            delta = a - self._before(expr.selector, key)
            if expr.fn == "increase":
                out[key] = delta
            elif expr.fn == "rate":
                out[key] = delta / self.window_s
            elif expr.fn == "deriv":
                out[key] = Rising(0.0) if delta > 0 else 0.0
            else:
                raise TypeError(expr.fn)
        return out

    def _aggregate(self, expr: Aggregate) -> Result:
        groups: dict[Labels, list[Value]] = defaultdict(list)
        for key, v in self.evaluate(expr.inner).items():
            groups[frozenset((k, val) for k, val in key if k in expr.by)].append(v)
        out: Result = {}
        for key, values in groups.items():
            if any(isinstance(v, Rising) for v in values):
                floors = [v.floor if isinstance(v, Rising) else v for v in values]
                out[key] = Rising(max(floors) if expr.op == "max" else sum(floors))
            else:
                numbers = [float(v) for v in values if isinstance(v, float)]
                out[key] = max(numbers) if expr.op == "max" else math.fsum(numbers)
        return out

    def _quantile(self, expr: Quantile) -> Result:
        buckets: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
        for key, v in self.evaluate(expr.inner).items():
            labels = dict(key)
            le = float(labels.pop("le"))
            assert isinstance(v, float)
            buckets[frozenset(labels.items())].append((le, v))
        return {k: bucket_quantile(expr.q, b) for k, b in buckets.items()}


def _matches(actual: str, op: str, value: str) -> bool:
    """One PromQL label matcher (regular expressions are anchored at both ends)."""
    if op in ("=~", "!~"):
        return (re.fullmatch(value, actual) is not None) == (op == "=~")
    return (actual == value) == (op == "=")


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' ``histogram_quantile`` over (upper bound, cumulative count) pairs."""
    buckets = sorted(buckets)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]) or buckets[-1][1] == 0:
        return math.nan
    rank = q * buckets[-1][1]
    b = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], buckets[b][1]
    if b > 0:
        start = buckets[b - 1][0]
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    return start + (end - start) * (rank / count)
