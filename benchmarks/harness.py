#!/usr/bin/env python3
"""Per-call overhead micro-benchmark for LLM telemetry on the OpenAI Python client.

tokenmeter's own copy of the shared anchor harness (see README.md): the canned traffic, pipeline and
modes are unchanged so its numbers stay comparable with the anchors' published ones; the changes are
that token metrics are also read by ``tokenmeter.token.class`` and lint fixes.

One process = one contender x one mode x one repetition.  The orchestrator
(orchestrate.py) runs this file with each contender's own virtualenv python and
interleaves contenders / repetitions.

    python harness.py --list
    python harness.py CONTENDER --mode nonstream --n 20000 --warmup 1000 [--content on]
    python harness.py CONTENDER --mode stream    --n 5000  --warmup 300
    python harness.py CONTENDER --mode memory    --n 100000
    python harness.py CONTENDER --mode startup
    python harness.py CONTENDER --mode verify-nonstream | verify-stream

Every run prints exactly one JSON object (the result) on stdout.

No network is used: the OpenAI client gets an httpx(2).MockTransport that
returns canned, realistic chat.completions responses (JSON or SSE).  What is
timed is therefore only openai-client + instrumentation + OTel SDK work.

Adding a contender
------------------
A contender is a function

    def setup(tracer_provider, meter_provider, logger_provider, capture_content) -> dict | None

registered with ``@contender("name", import_root="pkg.module", ...)``.  It must do
its own imports *inside* the function (so startup cost is measurable), must
instrument the ``openai`` module globally using the providers it is given
(they are also installed as the OTel global providers, for libraries that only
read globals), and should honour ``capture_content`` (prompt/completion
capture on/off).  It may return a dict of notes, which ends up in the result.

Contenders can live in this file or in a plugin file passed with
``--plugin path/to/file.py`` (or env BENCH_PLUGINS=a.py:b.py); a plugin does
``from harness import contender`` and decorates its functions.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.metadata as md
import importlib.util
import json
import os
import platform
import random
import sys
import tempfile
import time

# --------------------------------------------------------------------------
# Contender registry
# --------------------------------------------------------------------------

CONTENDERS: dict = {}


class Contender:
    def __init__(self, name, fn, import_root=None, packages=(), content_default=None, emits_metrics=True, desc=""):
        self.name = name
        self.fn = fn
        self.import_root = import_root  # module whose import cost = "instrumentation import"
        self.packages = tuple(packages)  # distributions whose versions are reported
        self.content_default = content_default  # library default for content capture
        self.emits_metrics = emits_metrics  # False: library has no OTel metrics at all
        self.desc = desc


def contender(name, *, import_root=None, packages=(), content_default=None, emits_metrics=True, desc=""):
    """Decorator registering a contender setup function."""

    def deco(fn):
        CONTENDERS[name] = Contender(
            name, fn, import_root, packages, content_default, emits_metrics, desc or (fn.__doc__ or "").strip()
        )
        return fn

    return deco


def _onoff(b):
    return "true" if b else "false"


@contender(
    "bare",
    packages=("openai",),
    emits_metrics=False,
    desc="openai client, no instrumentation (OTel SDK pipeline still built, unused)",
)
def _bare(tracer_provider, meter_provider, logger_provider, capture_content):
    return {"instrumented": False}


@contender(
    "otel_v2",
    import_root="opentelemetry.instrumentation.openai_v2",
    packages=("opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai"),
    content_default=False,
    desc="official contrib opentelemetry-instrumentation-openai-v2 (util-genai TelemetryHandler path)",
)
def _otel_v2(tracer_provider, meter_provider, logger_provider, capture_content):
    # With opentelemetry-util-genai >= 1.1b0 is_experimental_mode() is hard-wired
    # to True, so the instrumentation always takes the gen_ai_latest_experimental
    # (TelemetryHandler) path; we set the opt-in explicitly for clarity.
    # Content modes on that path: NO_CONTENT / SPAN_ONLY / EVENT_ONLY / SPAN_AND_EVENT.
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY" if capture_content else "NO_CONTENT"
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider, logger_provider=logger_provider
    )
    from opentelemetry.util.genai.utils import is_experimental_mode

    return {
        "experimental_path": is_experimental_mode(),
        "content_env": os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"],
    }


@contender(
    "openllmetry",
    import_root="opentelemetry.instrumentation.openai",
    packages=("opentelemetry-instrumentation-openai", "opentelemetry-semantic-conventions-ai"),
    content_default=True,
    desc="Traceloop OpenLLMetry opentelemetry-instrumentation-openai, OpenAIInstrumentor().instrument() "
    "(no traceloop-sdk)",
)
def _openllmetry(tracer_provider, meter_provider, logger_provider, capture_content):
    os.environ["TRACELOOP_TRACE_CONTENT"] = _onoff(capture_content)
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider, logger_provider=logger_provider
    )
    return {"TRACELOOP_TRACE_CONTENT": os.environ["TRACELOOP_TRACE_CONTENT"]}


def _openlit_pricing_file():
    # openlit.init() downloads pricing.json from GitHub unless given a file; we
    # give it a local one (with the benchmark model) so no network is touched.
    path = os.path.join(os.environ.get("BENCH_TMP", tempfile.gettempdir()), "bench_openlit_pricing.json")
    if not os.path.exists(path):
        with open(path, "w") as f:
            json.dump(
                {
                    "chat": {MODEL: {"promptPrice": 0.00015, "completionPrice": 0.0006, "cacheReadPrice": 0.000075}},
                    "embeddings": {},
                    "images": {},
                    "audio": {},
                },
                f,
            )
    return path


def _openlit_common(tracer_provider, meter_provider, logger_provider, capture_content, only_openai):
    import logging

    import openlit

    disabled = None
    if only_openai:
        from openlit._instrumentors import MODULE_NAME_MAP

        disabled = [k for k in MODULE_NAME_MAP if k != "openai"]
    # openlit reuses the global SDK TracerProvider/MeterProvider/LoggerProvider
    # when they are already set (the harness installs ours as globals).
    logging.getLogger("openlit").setLevel(logging.WARNING)
    openlit.init(
        service_name="bench",
        environment="bench",
        capture_message_content=capture_content,
        disabled_instrumentors=disabled,
        pricing_json=_openlit_pricing_file(),
        collect_gpu_stats=False,
        collect_system_metrics=False,
    )
    return {"only_openai_instrumentor": only_openai, "disabled_instrumentors": len(disabled) if disabled else 0}


@contender(
    "openlit",
    import_root="openlit",
    packages=("openlit",),
    content_default=True,
    desc="openlit.init() reusing the harness' global providers, only the 'openai' instrumentor enabled, "
    "local pricing file",
)
def _openlit(tracer_provider, meter_provider, logger_provider, capture_content):
    return _openlit_common(tracer_provider, meter_provider, logger_provider, capture_content, True)


@contender(
    "openlit_default",
    import_root="openlit",
    packages=("openlit",),
    content_default=True,
    desc="openlit.init() with default instrumentor set (also instruments httpx, requests, urllib3, ...), "
    "local pricing file",
)
def _openlit_default(tracer_provider, meter_provider, logger_provider, capture_content):
    return _openlit_common(tracer_provider, meter_provider, logger_provider, capture_content, False)


@contender(
    "openinference",
    import_root="openinference.instrumentation.openai",
    packages=(
        "openinference-instrumentation-openai",
        "openinference-instrumentation",
        "openinference-semantic-conventions",
    ),
    content_default=True,
    emits_metrics=False,
    desc="Arize openinference-instrumentation-openai (spans only; no OTel metrics)",
)
def _openinference(tracer_provider, meter_provider, logger_provider, capture_content):
    from openinference.instrumentation import TraceConfig
    from openinference.instrumentation.openai import OpenAIInstrumentor

    hide = not capture_content
    cfg = TraceConfig(hide_inputs=hide, hide_outputs=hide, hide_input_messages=hide, hide_output_messages=hide)
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, config=cfg)
    return {"hide_inputs/outputs": hide}


# --------------------------------------------------------------------------
# Canned OpenAI traffic
# --------------------------------------------------------------------------

MODEL = "gpt-4o-mini"
RESP_MODEL = "gpt-4o-mini-2024-07-18"
USAGE = {
    "prompt_tokens": 1234,
    "completion_tokens": 210,
    "total_tokens": 1444,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 64,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
SYSTEM_PROMPT = (
    "You are a meticulous assistant for an e-commerce support team. Answer "
    "concisely, cite the order id when relevant and never invent tracking numbers."
)
USER_PROMPT = (
    "Hi, I ordered a pair of trail-running shoes (order #A-20931) ten days ago. "
    "The tracking page still says 'label created' and the carrier site has no record "
    "of the parcel. I need them for a race on Saturday. Can you tell me what is going "
    "on, whether it is still possible to receive them before the weekend, and if not, "
    "what my options are for a refund or an express replacement? Thanks a lot."
)
MESSAGES = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": USER_PROMPT}]
COMPLETION_WORDS = (
    "Thanks for reaching out, and sorry about the delay with order #A-20931. The status "
    "'label created' means the warehouse printed the shipping label but the carrier has not "
    "scanned the parcel yet. I have escalated this to our fulfilment team. If the parcel is not "
    "scanned by tomorrow noon, it cannot arrive before Saturday. In that case you can choose "
    "either a full refund or a free express replacement shipped today, which usually arrives "
    "within one business day. Just reply with your preferred option and I will take care of it "
    "right away."
).split(" ")
COMPLETION_TEXT = " ".join(COMPLETION_WORDS)

RESP_HEADERS = [
    ("date", "Mon, 23 Nov 2026 12:00:00 GMT"),
    ("openai-organization", "bench-org"),
    ("openai-processing-ms", "812"),
    ("openai-project", "proj_bench"),
    ("openai-version", "2020-10-01"),
    ("x-ratelimit-limit-requests", "30000"),
    ("x-ratelimit-limit-tokens", "150000000"),
    ("x-ratelimit-remaining-requests", "29999"),
    ("x-ratelimit-remaining-tokens", "149998766"),
    ("x-ratelimit-reset-requests", "2ms"),
    ("x-ratelimit-reset-tokens", "0s"),
    ("x-request-id", "req_0123456789abcdef0123456789abcdef"),
    ("cf-cache-status", "DYNAMIC"),
    ("server", "cloudflare"),
]


def _json(o):
    return json.dumps(o, separators=(",", ":"))


def canned_nonstream_body() -> bytes:
    return _json(
        {
            "id": "chatcmpl-BENCH0123456789abcdefABCDEF",
            "object": "chat.completion",
            "created": 1795000000,
            "model": RESP_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": COMPLETION_TEXT, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
            "service_tier": "default",
            "system_fingerprint": "fp_0ba0d124f1",
        }
    ).encode()


def canned_sse_chunks(n_chunks=50) -> list:
    """n_chunks SSE events: role, (n-3) content deltas, finish_reason, usage; then [DONE]."""
    base = {
        "id": "chatcmpl-BENCH0123456789abcdefABCDEF",
        "object": "chat.completion.chunk",
        "created": 1795000000,
        "model": RESP_MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_0ba0d124f1",
    }
    n_content = n_chunks - 3
    words = COMPLETION_WORDS
    per = len(words) / n_content
    pieces = []
    for i in range(n_content):
        seg = words[round(i * per) : round((i + 1) * per)]
        pieces.append((" " if i else "") + " ".join(seg))
    events = [
        dict(
            base,
            choices=[
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": "", "refusal": None},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
            usage=None,
        )
    ]
    for p in pieces:
        events.append(
            dict(
                base,
                choices=[{"index": 0, "delta": {"content": p}, "logprobs": None, "finish_reason": None}],
                usage=None,
            )
        )
    events.append(
        dict(base, choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], usage=None)
    )
    events.append(dict(base, choices=[], usage=USAGE))
    assert "".join(pieces) == COMPLETION_TEXT and len(events) == n_chunks
    out = [("data: " + _json(e) + "\n\n").encode() for e in events]
    out.append(b"data: [DONE]\n\n")
    return out


def http_module():
    """openai>=3 ships on httpx2, older releases on httpx: use whichever it imported."""
    import openai  # noqa: F401

    if (
        "httpx2" in sys.modules
        and "openai._base_client" in sys.modules
        and getattr(sys.modules["openai._base_client"], "httpx2", None) is not None
    ):
        return sys.modules["httpx2"]
    import httpx

    return httpx


def make_client(stream: bool):
    import openai

    hx = http_module()
    if stream:
        chunks = canned_sse_chunks()
        headers = [*RESP_HEADERS, ("content-type", "text/event-stream; charset=utf-8")]

        def handler(request):
            # a fresh iterator per response: the body arrives as one network chunk per event
            return hx.Response(200, headers=headers, content=iter(chunks))
    else:
        body = canned_nonstream_body()
        headers = [*RESP_HEADERS, ("content-type", "application/json")]

        def handler(request):
            return hx.Response(200, headers=headers, content=body)

    client = openai.OpenAI(
        api_key="x", base_url="http://test/v1", http_client=hx.Client(transport=hx.MockTransport(handler))
    )
    return client, hx.__name__


def make_call(client, stream: bool):
    if not stream:

        def call():
            r = client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.2, max_tokens=512)
            return r.usage.completion_tokens
    else:

        def call():
            s = client.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                temperature=0.2,
                max_tokens=512,
                stream=True,
                stream_options={"include_usage": True},
            )
            n = 0
            last = None
            for last in s:  # noqa: B007 -- the last chunk is returned
                n += 1
            return n, last

    return call


def check_call_result(stream, res):
    if not stream:
        assert res == USAGE["completion_tokens"], res
    else:
        n, last = res
        assert n == 50, n
        assert last.usage is not None and last.usage.prompt_tokens == USAGE["prompt_tokens"], last


# --------------------------------------------------------------------------
# Telemetry pipeline: SDK providers with discarding (counting) exporters
# --------------------------------------------------------------------------


class Pipeline:
    def __init__(self, processor="batch", keep=False):
        from opentelemetry import _logs, metrics, trace
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs import export as logs_export
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        LogExp = getattr(logs_export, "LogRecordExporter", None) or logs_export.LogExporter
        LogRes = getattr(logs_export, "LogRecordExportResult", None) or logs_export.LogExportResult
        pipe = self

        class CountingSpanExporter(SpanExporter):
            def export(self, spans):
                pipe.span_count += len(spans)
                for s in spans:
                    pipe.span_names[s.name] = pipe.span_names.get(s.name, 0) + 1
                if keep:
                    pipe.spans.extend(spans)
                return SpanExportResult.SUCCESS

            def force_flush(self, timeout_millis=30000):
                return True

            def shutdown(self):
                pass

        class CountingLogExporter(LogExp):
            def export(self, batch):
                pipe.log_count += len(batch)
                if keep:
                    pipe.logs.extend(batch)
                return LogRes.SUCCESS

            def force_flush(self, timeout_millis=30000):
                return True

            def shutdown(self):
                pass

        self.span_count = 0
        self.span_names = {}
        self.log_count = 0
        self.spans = []
        self.logs = []
        self.processor = processor
        res = Resource.create({"service.name": "bench"})
        self.tracer_provider = TracerProvider(resource=res)
        sp = BatchSpanProcessor if processor == "batch" else SimpleSpanProcessor
        self.tracer_provider.add_span_processor(sp(CountingSpanExporter()))
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(resource=res, metric_readers=[self.metric_reader])
        self.logger_provider = LoggerProvider(resource=res)
        lp = logs_export.BatchLogRecordProcessor if processor == "batch" else logs_export.SimpleLogRecordProcessor
        self.logger_provider.add_log_record_processor(lp(CountingLogExporter()))
        # also install as globals (openlit and some code paths only read globals)
        trace.set_tracer_provider(self.tracer_provider)
        metrics.set_meter_provider(self.meter_provider)
        _logs.set_logger_provider(self.logger_provider)

    def flush(self):
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()

    def metrics(self, with_points=True):
        data = self.metric_reader.get_metrics_data()
        out = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    pts = []
                    for dp in m.data.data_points:
                        d = {"attributes": {k: _jsonable(v) for k, v in (dp.attributes or {}).items()}}
                        if hasattr(dp, "bucket_counts"):
                            d.update(count=dp.count, sum=dp.sum)
                        elif hasattr(dp, "value"):
                            d.update(value=dp.value)
                        pts.append(d)
                    out.append(
                        {
                            "scope": sm.scope.name,
                            "name": m.name,
                            "unit": m.unit,
                            "type": type(m.data).__name__,
                            "points": pts if with_points else len(pts),
                        }
                    )
        return out


def _jsonable(v, maxlen=160):
    if isinstance(v, (list, tuple)):
        return [_jsonable(x, maxlen) for x in v]
    if isinstance(v, str) and len(v) > maxlen:
        return v[:maxlen] + f"...<{len(v)} chars>"
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)[:maxlen]


def token_metric_summary(metrics):
    """Per metric with 'token' in its name: total count/sum/value over all points, and per token type."""
    out = {}
    for m in metrics:
        if "token" not in m["name"].lower():
            continue
        agg = out.setdefault(m["name"], {"type": m["type"], "by_type": {}})
        for p in m["points"]:
            t = None
            for key in ("gen_ai.token.type", "tokenmeter.token.class", "llm.usage.token_type", "token_type", "type"):
                if key in p["attributes"]:
                    t = str(p["attributes"][key])
                    break
            slot = agg["by_type"].setdefault(t or "?", {"count": 0, "sum": 0})
            if "count" in p:
                slot["count"] += p["count"]
                slot["sum"] += p["sum"]
            else:
                slot["sum"] += p.get("value", 0)
    return out


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def hwm_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def versions(extra=()):
    names = [
        "openai",
        "httpx",
        "httpx2",
        "httpcore",
        "httpcore2",
        "pydantic",
        "pydantic-core",
        "wrapt",
        "opentelemetry-api",
        "opentelemetry-sdk",
        "opentelemetry-semantic-conventions",
        "opentelemetry-instrumentation",
        *extra,
    ]
    out = {}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            pass
    return out


def percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return sorted_vals[i]


def load_plugins(paths):
    sys.modules.setdefault("harness", sys.modules[__name__])
    for p in paths:
        if not p:
            continue
        spec = importlib.util.spec_from_file_location(f"bench_plugin_{abs(hash(p))}", p)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)


# --------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------


def setup_contender(c, args, keep=False):
    pipe = Pipeline(args.processor, keep=keep)
    content = {"on": True, "off": False}.get(args.content, c.content_default or False)
    t0 = time.perf_counter_ns()
    notes = c.fn(pipe.tracer_provider, pipe.meter_provider, pipe.logger_provider, content) or {}
    setup_ns = time.perf_counter_ns() - t0
    return pipe, content, notes, setup_ns


def mode_timing(c, args, stream):
    pipe, content, notes, setup_ns = setup_contender(c, args)
    client, hxname = make_client(stream)
    call = make_call(client, stream)
    check_call_result(stream, call())
    for _ in range(args.warmup - 1):
        call()
    n = args.n
    timings = [0] * n
    pc = time.perf_counter_ns
    gc.collect()
    rss0 = rss_kib()
    t_start = pc()
    for i in range(n):
        t0 = pc()
        call()
        timings[i] = pc() - t0
    total_ns = pc() - t_start
    rss1 = rss_kib()
    pipe.flush()
    ms = pipe.metrics()
    ts = sorted(timings)
    total_calls = n + args.warmup
    return {
        "n": n,
        "warmup": args.warmup,
        "total_calls": total_calls,
        "loop_mean_us": total_ns / n / 1e3,
        "sum_mean_us": sum(timings) / n / 1e3,
        "p50_us": percentile(ts, 0.5) / 1e3,
        "p90_us": percentile(ts, 0.9) / 1e3,
        "p99_us": percentile(ts, 0.99) / 1e3,
        "min_us": ts[0] / 1e3,
        "rss_before_kib": rss0,
        "rss_after_kib": rss1,
        "content_capture": content,
        "setup_ms": setup_ns / 1e6,
        "notes": notes,
        "http_module": hxname,
        "spans_exported": pipe.span_count,
        "span_names": pipe.span_names,
        "log_records_exported": pipe.log_count,
        "metric_names": sorted({m["name"] for m in ms}),
        "token_metrics": token_metric_summary(ms),
        "spans_per_call": pipe.span_count / total_calls,
    }


def mode_memory(c, args):
    pipe, content, notes, _setup_ns = setup_contender(c, args)
    client, _hxname = make_client(False)
    call = make_call(client, False)
    check_call_result(False, call())
    for _ in range(args.warmup - 1):
        call()
    gc.collect()
    pipe.flush()
    rss0 = rss_kib()
    hwm_reset = reset_hwm()
    samples = [(0, rss0)]
    step = max(1, args.n // 10)
    t0 = time.perf_counter_ns()
    for i in range(1, args.n + 1):
        call()
        if i % step == 0:
            samples.append((i, rss_kib()))
    loop_s = (time.perf_counter_ns() - t0) / 1e9
    peak = hwm_kib()
    gc.collect()
    pipe.flush()
    rss_end = rss_kib()
    return {
        "n": args.n,
        "warmup": args.warmup,
        "content_capture": content,
        "notes": notes,
        "rss_start_kib": rss0,
        "rss_end_kib": rss_end,
        "peak_kib": peak,
        "hwm_was_reset": hwm_reset,
        "rss_growth_kib": rss_end - rss0,
        "peak_growth_kib": peak - rss0,
        "rss_samples": samples,
        "loop_s": loop_s,
        "spans_exported": pipe.span_count,
        "log_records_exported": pipe.log_count,
        "spans_per_call": pipe.span_count / (args.n + args.warmup),
    }


def mode_startup(c, args):
    # Common part (openai + OTel SDK) is imported first; then the instrumentation
    # package import, then setup()/instrument().  Markers go to fd 2 so they
    # interleave correctly with `-X importtime` output.
    t0 = time.perf_counter_ns()
    import openai  # noqa: F401

    pipe = Pipeline(args.processor)
    t1 = time.perf_counter_ns()
    os.write(2, b"##BENCH_SETUP_BEGIN##\n")
    if c.import_root:
        importlib.import_module(c.import_root)
    t2 = time.perf_counter_ns()
    content = {"on": True, "off": False}.get(args.content, c.content_default or False)
    notes = c.fn(pipe.tracer_provider, pipe.meter_provider, pipe.logger_provider, content) or {}
    t3 = time.perf_counter_ns()
    os.write(2, b"##BENCH_SETUP_END##\n")
    client, _ = make_client(False)
    call = make_call(client, False)
    t4 = time.perf_counter_ns()
    check_call_result(False, call())
    t5 = time.perf_counter_ns()
    return {
        "common_import_ms": (t1 - t0) / 1e6,
        "instr_import_ms": (t2 - t1) / 1e6,
        "instrument_ms": (t3 - t2) / 1e6,
        "setup_total_ms": (t3 - t1) / 1e6,
        "first_call_ms": (t5 - t4) / 1e6,
        "notes": notes,
        "modules_loaded": len(sys.modules),
        "rss_kib": rss_kib(),
    }


def mode_verify(c, args, stream):
    pipe, content, notes, _ = setup_contender(c, args, keep=True)
    client, hxname = make_client(stream)
    res = make_call(client, stream)()
    check_call_result(stream, res)
    pipe.flush()
    spans = []
    for s in pipe.spans:
        spans.append(
            {
                "name": s.name,
                "kind": str(s.kind),
                "scope": s.instrumentation_scope.name if s.instrumentation_scope else None,
                "status": str(s.status.status_code),
                "attributes": {k: _jsonable(v) for k, v in (s.attributes or {}).items()},
                "events": [
                    {"name": e.name, "attributes": {k: _jsonable(v) for k, v in (e.attributes or {}).items()}}
                    for e in s.events
                ],
            }
        )
    logs = []
    for lr in pipe.logs:
        rec = getattr(lr, "log_record", lr)
        logs.append(
            {
                "event_name": getattr(rec, "event_name", None),
                "attributes": {k: _jsonable(v) for k, v in (rec.attributes or {}).items()},
                "body": _jsonable(
                    rec.body if isinstance(rec.body, (str, int, float)) else json.dumps(rec.body, default=str)
                ),
            }
        )
    ms = pipe.metrics()
    return {
        "content_capture": content,
        "notes": notes,
        "http_module": hxname,
        "spans": spans,
        "log_records": logs,
        "metrics": ms,
        "token_metrics": token_metric_summary(ms),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("contender", nargs="?")
    ap.add_argument(
        "--mode",
        default="nonstream",
        choices=["nonstream", "stream", "memory", "startup", "verify-nonstream", "verify-stream"],
    )
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--content", choices=["on", "off", "default"], default="off")
    ap.add_argument("--processor", choices=["batch", "simple"], default="batch")
    ap.add_argument("--plugin", action="append", default=[])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    load_plugins(args.plugin + os.environ.get("BENCH_PLUGINS", "").split(":"))
    if args.list:
        for c in CONTENDERS.values():
            print(f"{c.name:18s} {c.desc}")
        return 0
    if args.contender not in CONTENDERS:
        ap.error(f"unknown contender {args.contender!r}; known: {', '.join(CONTENDERS)}")
    c = CONTENDERS[args.contender]
    defaults = {"nonstream": (20000, 1000), "stream": (5000, 300), "memory": (100000, 2000)}
    n, w = defaults.get(args.mode, (1, 0))
    args.n = args.n if args.n is not None else n
    args.warmup = max(1, args.warmup if args.warmup is not None else w)
    random.seed(args.seed)

    t0 = time.time()
    if args.mode == "nonstream":
        res = mode_timing(c, args, False)
    elif args.mode == "stream":
        res = mode_timing(c, args, True)
    elif args.mode == "memory":
        res = mode_memory(c, args)
    elif args.mode == "startup":
        res = mode_startup(c, args)
    else:
        res = mode_verify(c, args, args.mode == "verify-stream")
    out = {
        "contender": c.name,
        "mode": args.mode,
        "processor": args.processor,
        "content_arg": args.content,
        "python": platform.python_version(),
        "pid": os.getpid(),
        "wall_s": time.time() - t0,
        "versions": versions(c.packages),
        **res,
    }
    sys.stdout.write(json.dumps(out, default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
