"""tokenmeter as a contender of the overhead harness (``harness.py --plugin tokenmeter_contenders.py``).

Every variant configures tokenmeter with the harness' providers and patches ``openai`` globally, as a
user would: ``tokenmeter.configure(tracer_provider=..., meter_provider=...)`` then
``tokenmeter.instrument("openai")``. Imports happen inside the setup functions so the startup mode
measures them.

* ``tokenmeter`` -- no attribution in force (the lightest configuration).
* ``tokenmeter_workflow`` -- every call runs inside an open ``workflow(team=...)`` + ``step`` context:
  team/workflow/depth attribution on spans and metrics and the run's rollup.
* ``tokenmeter_budget_memory`` / ``_sqlite`` / ``_redis`` -- one daily dollar budget on the team that
  every call belongs to (limit never reached), in the given store: each call estimates its cost,
  reserves it before sending and settles it after.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
from typing import Any

from harness import contender

PACKAGES = ("tokenmeter", "wrapt", "genai-prices", "tiktoken")
TEAM = "payments"


def _configure(tracer_provider: Any, meter_provider: Any, capture_content: bool, **options: Any) -> Any:
    import tokenmeter

    meter = tokenmeter.configure(
        service_name="bench",
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        capture_content=capture_content,
        **options,
    )
    tokenmeter.instrument("openai")
    return meter


def _enter_for_process(spec: Any) -> Any:
    # The harness times calls made after setup() returns: entering the scope here and never leaving
    # keeps it in force for every timed call of this process.
    return spec.__enter__()


@contender(
    "tokenmeter",
    import_root="tokenmeter",
    packages=PACKAGES,
    content_default=False,
    desc="tokenmeter.configure(tracer_provider=, meter_provider=) + instrument('openai'), no scope",
)
def _tokenmeter(tracer_provider, meter_provider, logger_provider, capture_content):
    _configure(tracer_provider, meter_provider, capture_content)
    return {"scope": None}


@contender(
    "tokenmeter_workflow",
    import_root="tokenmeter",
    packages=PACKAGES,
    content_default=False,
    desc="tokenmeter, every call inside workflow('refund', team=...) + step('answer')",
)
def _tokenmeter_workflow(tracer_provider, meter_provider, logger_provider, capture_content):
    import tokenmeter

    _configure(tracer_provider, meter_provider, capture_content)
    _enter_for_process(tokenmeter.workflow("refund", team=TEAM))
    scope = _enter_for_process(tokenmeter.step("answer"))
    return {"scope": f"workflow=refund team={scope.team} depth={scope.depth}"}


def _budget_store(kind: str) -> str:
    if kind == "memory":
        return "memory"
    if kind == "sqlite":
        tmp = os.environ.get("BENCH_TMP") or tempfile.gettempdir()
        path = os.path.join(tmp, f"bench-budget-{os.getpid()}.sqlite3")
        for suffix in ("", "-wal", "-shm", "-journal"):
            atexit.register(_remove, path + suffix)
        return f"sqlite:///{path}"
    url = os.environ.get("BENCH_REDIS_URL")
    if not url:
        raise RuntimeError("BENCH_REDIS_URL is not set (run.sh starts a redis-server and sets it)")
    return url


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def _budgeted(tracer_provider: Any, meter_provider: Any, capture_content: bool, kind: str) -> dict[str, Any]:
    import tokenmeter

    store = _budget_store(kind)
    if kind == "redis":
        import redis

        redis.Redis.from_url(store).flushdb()  # a fresh bucket for every process
    budget = tokenmeter.Budget("bench-daily", scope={"team": TEAM}, limit_usd=1_000_000.0, window="1d")
    _configure(tracer_provider, meter_provider, capture_content, budgets=[budget], store=store)
    _enter_for_process(tokenmeter.attributes(team=TEAM))
    return {"store": store.split("://")[0], "budget": "1d, $1,000,000 on team=payments"}


@contender(
    "tokenmeter_budget_memory",
    import_root="tokenmeter",
    packages=PACKAGES,
    content_default=False,
    desc="tokenmeter with a daily dollar budget on the caller's team, in-memory store",
)
def _tokenmeter_budget_memory(tracer_provider, meter_provider, logger_provider, capture_content):
    return _budgeted(tracer_provider, meter_provider, capture_content, "memory")


@contender(
    "tokenmeter_budget_sqlite",
    import_root="tokenmeter",
    packages=PACKAGES,
    content_default=False,
    desc="tokenmeter with a daily dollar budget on the caller's team, SQLite store (file in results/)",
)
def _tokenmeter_budget_sqlite(tracer_provider, meter_provider, logger_provider, capture_content):
    return _budgeted(tracer_provider, meter_provider, capture_content, "sqlite")


@contender(
    "tokenmeter_budget_redis",
    import_root="tokenmeter",
    packages=PACKAGES,
    content_default=False,
    desc="tokenmeter with a daily dollar budget on the caller's team, Redis store (loopback redis-server)",
)
def _tokenmeter_budget_redis(tracer_provider, meter_provider, logger_provider, capture_content):
    return _budgeted(tracer_provider, meter_provider, capture_content, "redis")


@contender(
    "otel_floor",
    import_root="wrapt",
    packages=("wrapt",),
    content_default=False,
    desc="reference, not a library: one span + the three semconv histogram records, nothing else",
)
def _otel_floor(tracer_provider, meter_provider, logger_provider, capture_content):
    """The least any span + GenAI-metrics instrumentation pays on this path (what the OTel SDK costs).

    One CLIENT span without attributes, ``gen_ai.client.token.usage`` recorded twice and
    ``gen_ai.client.operation.duration`` once, with the three semconv attributes; streams go through a
    minimal proxy that looks for the usage chunk. No pricing, attribution, context or safety nets.
    """
    import time

    import wrapt
    from opentelemetry.trace import SpanKind

    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    tokens = meter.create_histogram(
        "gen_ai.client.token.usage", unit="{token}", explicit_bucket_boundaries_advisory=[4.0**i for i in range(14)]
    )
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
    base = {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": ""}
    attrs: dict[str, dict[str, Any]] = {}
    start_attrs: dict[str, Any] | None = None
    end_attrs: dict[str, Any] | None = None
    if os.environ.get("BENCH_FLOOR_ATTRS"):  # profiling aid: the same span attributes as tokenmeter's
        start_attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "tokenmeter.model.tier": "small",
            "tokenmeter.step.depth": 0,
            "tokenmeter.retry.attempt": 0,
            "gen_ai.request.max_tokens": 512,
            "server.address": "test",
        }
        end_attrs = {
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.response.id": "chatcmpl-x",
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.usage.input_tokens": 1234,
            "gen_ai.usage.output_tokens": 210,
            "gen_ai.usage.cache_read.input_tokens": 1024,
            "gen_ai.usage.cache_write.input_tokens": 0,
            "gen_ai.usage.reasoning.output_tokens": 64,
            "tokenmeter.usage.estimated": False,
            "tokenmeter.cost.source": "table:genai-prices@0.2.3",
            "tokenmeter.cost.usd": 0.0002343,
        }

    def finish(span: Any, model: str, t0: float, usage: Any) -> None:
        found = attrs.get(model)
        if found is None:
            found = attrs[model] = {"base": {**base, "gen_ai.request.model": model}}
            found["input"] = {**found["base"], "gen_ai.token.type": "input"}
            found["output"] = {**found["base"], "gen_ai.token.type": "output"}
        if usage is not None:
            tokens.record(usage.prompt_tokens, found["input"])
            tokens.record(usage.completion_tokens, found["output"])
        duration.record(time.perf_counter() - t0, found["base"])
        span.end()

    class Stream(wrapt.ObjectProxy):  # type: ignore[misc]
        def __init__(self, wrapped: Any, span: Any, model: str, t0: float) -> None:
            super().__init__(wrapped)
            self._self_state = (span, model, t0)
            self._self_usage = None
            self._self_iter = iter(wrapped)

        def __iter__(self) -> Any:
            return self

        def __next__(self) -> Any:
            try:
                chunk = next(self._self_iter)
            except StopIteration:
                finish(*self._self_state, self._self_usage)
                raise
            if chunk.usage is not None:
                self._self_usage = chunk.usage
            return chunk

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        t0 = time.perf_counter()
        model = kwargs.get("model", "")
        span = tracer.start_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=start_attrs)
        response = wrapped(*args, **kwargs)
        if kwargs.get("stream"):
            return Stream(response, span, model, t0)
        if end_attrs:
            span.set_attributes(end_attrs)
        finish(span, model, t0, response.usage)
        return response

    wrapt.wrap_function_wrapper("openai.resources.chat.completions.completions", "Completions.create", wrapper)
    return {"reference": "span + 3 histogram records only"}
