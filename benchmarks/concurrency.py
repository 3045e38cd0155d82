"""Concurrency: 16 threads of sync calls and an asyncio service with 1,000 concurrent streams, bare vs metered.

    python benchmarks/concurrency.py [--reps 3] [--seconds 8] [--json results/concurrency.json] [--py-spy]

The loopback server runs in its own process (uvicorn + a plain ASGI app, so it does not share the client's
GIL). Its bodies are built once by ``tokenmeter.testing.fakes`` (the OpenAI wire format: a
``chat.completion`` with usage; a stream of ``chat.completion.chunk`` events ending with the usage chunk).
Replies are delayed like a (fast) provider: ``--latency-ms`` before a non-streamed body, ``--chunk-ms``
between stream chunks; ``--latency-ms 0`` measures the CPU-bound worst case instead.

Each measurement is a fresh client process, ``bare`` (openai alone) or ``tokenmeter`` (``configure()``
with a BatchSpanProcessor and a PeriodicExportingMetricReader into discarding exporters, as a service
exporting OTLP would have, the ledger on; ``instrument()``), modes interleaved:

* ``threads`` -- 16 threads share one ``openai.OpenAI`` client and call ``chat.completions.create`` in a
  loop for ``--seconds``; throughput = calls / s.
* ``asyncio`` -- 1,000 tasks share one ``openai.AsyncOpenAI`` client; each streams
  (``stream=True``, usage included) in a loop for ``--seconds``; throughput = streams / s and chunks / s.
  A ticker task sleeps 5 ms at a time and records how late it wakes: the event-loop lag (p50 / p99 /
  max). Lag added = p99(tokenmeter) - p99(bare).

``--py-spy`` also samples an extra (unmeasured) metered ``threads`` run with ``py-spy record --idle
--threads`` and classifies the calling threads' samples: lock wait (and on which line), I/O, running.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics as st
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _concurrency_tools import convoy_report, serve

# -- the client processes ---------------------------------------------------------------------------


def _setup(mode: str) -> Any:
    if mode == "bare":
        return None
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    import tokenmeter

    class Spans(SpanExporter):
        n = 0

        def export(self, spans: Any) -> SpanExportResult:
            Spans.n += len(spans)
            return SpanExportResult.SUCCESS

    class Metrics(MetricExporter):
        def __init__(self) -> None:
            super().__init__()

        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(Spans()))
    mp = MeterProvider([PeriodicExportingMetricReader(Metrics(), export_interval_millis=5_000)])
    meter = tokenmeter.configure(service_name="bench", tracer_provider=tp, meter_provider=mp)
    tokenmeter.instrument()
    meter.warm_up(30)
    return meter, Spans


def _metered(meter: Any) -> int:
    from datetime import UTC, datetime, timedelta

    meter[0].force_flush(10_000)
    now = datetime.now(UTC)
    return sum(r.calls for r in meter[0].reader().usage(now - timedelta(days=1), now + timedelta(days=1)))


def child_threads(mode: str, url: str, seconds: float, threads: int) -> dict[str, Any]:
    import threading

    import openai

    meter = _setup(mode)
    client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
    msgs = [{"role": "user", "content": "Summarise the refund policy for order 1234 in two sentences."}]
    client.chat.completions.create(model="gpt-4o-mini", messages=msgs)  # warm (first call cost is cold_start.py's)
    counts = [0] * threads
    errors = [0] * threads
    stop = time.perf_counter() + seconds
    start_gate = threading.Barrier(threads + 1)

    def work(i: int) -> None:
        start_gate.wait()
        while time.perf_counter() < stop:
            try:
                r = client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
                assert r.usage is not None
                counts[i] += 1
            except Exception:
                errors[i] += 1

    pool = [threading.Thread(target=work, args=(i,), name=f"bench-{i}") for i in range(threads)]
    for t in pool:
        t.start()
    print("READY", os.getpid(), flush=True)
    t0, c0 = time.perf_counter(), time.process_time()
    start_gate.wait()
    stop = time.perf_counter() + seconds
    for t in pool:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out: dict[str, Any] = {"calls": sum(counts), "errors": sum(errors), "wall_s": wall, "cpu_s": cpu}
    out["calls_per_s"] = out["calls"] / wall
    out["cpu_us_per_call"] = cpu / max(out["calls"], 1) * 1e6
    if meter is not None:
        out["metered_calls"] = _metered(meter)
        out["spans"] = meter[1].n
    return out


def child_asyncio(mode: str, url: str, seconds: float, tasks: int) -> dict[str, Any]:
    import asyncio

    import openai

    meter = _setup(mode)

    async def main() -> dict[str, Any]:
        client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0, timeout=120)
        msgs = [{"role": "user", "content": "Stream me a short answer."}]
        streams = chunks = errors = 0
        first_error: list[str] = []
        lags: list[float] = []
        running = True

        async def one_stream() -> None:
            nonlocal chunks
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=msgs, stream=True, stream_options={"include_usage": True}
            )
            async for _chunk in stream:
                chunks += 1

        await client.chat.completions.create(model="gpt-4o-mini", messages=msgs)  # warm (first call: cold_start.py)

        async def worker(delay: float) -> None:
            nonlocal streams, chunks, errors
            await asyncio.sleep(delay)  # staggered start: a steady load, not 1,000 connects at once
            while running:
                try:
                    await one_stream()
                    streams += 1
                except Exception as exc:
                    errors += 1
                    first_error[:] = first_error or [repr(exc)[:300]]

        async def ticker() -> None:
            loop = asyncio.get_running_loop()
            while running:
                t = loop.time()
                await asyncio.sleep(0.005)
                lags.append(loop.time() - t - 0.005)

        ramp = float(os.environ.get("BENCH_RAMP_S", "10"))
        workers = [asyncio.create_task(worker(ramp * i / tasks)) for i in range(tasks)]
        tick = asyncio.create_task(ticker())
        await asyncio.sleep(ramp + 1)  # ramp-up: every task has a stream open
        s0, k0, l0 = streams, chunks, len(lags)
        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        s1, k1, window = streams, chunks, sorted(lags[l0:])
        running = False
        for task in workers:
            task.cancel()  # streams in flight are not waited for
        await asyncio.gather(*workers, tick, return_exceptions=True)
        q = st.quantiles(window, n=100) if len(window) > 1 else [0.0] * 99
        return {
            "streams": s1 - s0,
            "chunks": k1 - k0,
            "errors": errors,
            "wall_s": wall,
            "cpu_s": cpu,
            "streams_per_s": (s1 - s0) / wall,
            "chunks_per_s": (k1 - k0) / wall,
            "lag_p50_ms": q[49] * 1e3,
            "lag_p99_ms": q[98] * 1e3,
            "lag_max_ms": window[-1] * 1e3 if window else 0.0,
            "ticks": len(window),
            "first_error": first_error[0] if first_error else None,
        }

    out = asyncio.run(main())
    if meter is not None:
        out["metered_calls"] = _metered(meter)
        out["spans"] = meter[1].n
    return out


# -- orchestration ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _loadavg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def _run_child(args: argparse.Namespace, kind: str, mode: str, env: dict[str, str], spy: str | None) -> dict[str, Any]:
    here = os.path.abspath(__file__)
    cmd = [sys.executable, here, "child", kind, mode, "--url", args.url, "--seconds", str(args.seconds)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    spy_proc = None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("READY") and spy is not None:
            pid = line.split()[1]
            spy_proc = subprocess.Popen(
                [spy, "record", "--pid", pid, "--idle", "--threads", "--full-filenames", "--format", "raw",
                 "--rate", "200", "--duration", str(max(1, int(args.seconds) - 1)), "--output", args.spy_out,
                 "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
    proc.wait(timeout=args.seconds * 10 + 120)
    err = proc.stderr.read() if proc.stderr else ""
    if spy_proc is not None:
        spy_proc.wait(timeout=120)
    result = next((json.loads(x[7:]) for x in lines if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"{kind}/{mode} failed: {''.join(lines)[-2000:]}\n{err[-3000:]}")
    return dict(result)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd")
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--latency-ms", type=float, default=50)
    s.add_argument("--chunk-ms", type=float, default=1000)
    s.add_argument("--chunks", type=int, default=20)
    c = sub.add_parser("child")
    c.add_argument("kind", choices=["threads", "asyncio"])
    c.add_argument("mode", choices=["bare", "tokenmeter"])
    c.add_argument("--url", required=True)
    c.add_argument("--seconds", type=float, default=8)
    c.add_argument("--threads", type=int, default=16)
    c.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--latency-ms", type=float, default=50)
    ap.add_argument("--chunk-ms", type=float, default=1000)
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--kinds", default="threads,asyncio")
    ap.add_argument("--json", default=None)
    ap.add_argument("--py-spy", action="store_true")
    args = ap.parse_args()
    if args.cmd == "serve":
        serve(args.port, args.latency_ms, args.chunk_ms, args.chunks)  # in its own process
        return
    if args.cmd == "child":
        fn = child_threads if args.kind == "threads" else child_asyncio
        n = args.threads if args.kind == "threads" else args.tasks
        print("RESULT " + json.dumps(fn(args.mode, args.url, args.seconds, n)), flush=True)
        os._exit(0)  # the 1,000 streams' sockets need no orderly close
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # cleanup below runs on kill
    tmp = tempfile.mkdtemp(prefix="tokenmeter-conc-")
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
    env["XDG_DATA_HOME"] = os.path.join(tmp, "xdg")
    for var in [k for k in env if k.startswith(("OTEL_", "TOKENMETER_"))]:
        env.pop(var)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "serve", "--port", str(port), "--latency-ms", str(args.latency_ms),
         "--chunk-ms", str(args.chunk_ms), "--chunks", str(args.chunks)], env=env,
    )  # fmt: skip
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    args.url = f"http://127.0.0.1:{port}/v1"
    args.spy_out = os.path.join(tmp, "spy.txt")
    spy = shutil.which("py-spy") or (
        os.path.join(os.path.dirname(sys.executable), "py-spy")
        if os.path.exists(os.path.join(os.path.dirname(sys.executable), "py-spy"))
        else None
    )
    if args.py_spy and spy is None:
        print("py-spy not found (pip install py-spy): no convoy check")
    kinds = args.kinds.split(",")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {k: {"bare": [], "tokenmeter": []} for k in kinds}
    load_before = _loadavg()
    convoy: dict[str, Any] | None = None
    try:
        rng = random.Random(16)
        for rep in range(args.reps):
            for kind in kinds:
                modes = ["bare", "tokenmeter"]
                rng.shuffle(modes)
                for mode in modes:
                    results[kind][mode].append(_run_child(args, kind, mode, env, None))
                    print(kind, mode, json.dumps(results[kind][mode][-1]), flush=True)
            print(f"rep {rep + 1}/{args.reps} done (load {_loadavg()})", flush=True)
        if args.py_spy and spy is not None and "threads" in kinds:  # extra, unmeasured runs: sampling slows them
            convoy = {}
            for mode in ("bare", "tokenmeter"):
                _run_child(args, "threads", mode, env, spy)
                if os.path.exists(args.spy_out):
                    convoy[mode] = convoy_report(args.spy_out)
                    os.remove(args.spy_out)
    finally:
        server.kill()  # (a graceful stop would wait for the streams still open)
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = _loadavg()
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "load": [load_before, load_after], "raw": results, "convoy": convoy}, f)
    print(render(results, args, load_before, load_after, convoy))


def render(results: dict[str, Any], args: argparse.Namespace, before: str, after: str, convoy: Any) -> str:
    med = st.median
    lines = [
        f"{args.reps} repetitions x {args.seconds:g} s per mode, fresh processes, interleaved; server latency "
        f"{args.latency_ms:g} ms (non-stream), {args.chunks} chunks {args.chunk_ms:g} ms apart (streams); "
        f"load average before {before}, after {after}",
        "",
    ]
    if "threads" in results:
        b, t = results["threads"]["bare"], results["threads"]["tokenmeter"]
        rb, rt = med(r["calls_per_s"] for r in b), med(r["calls_per_s"] for r in t)
        lines.append(
            f"threads (16, sync, non-streaming): bare {rb:.1f} calls/s ({med(r['cpu_us_per_call'] for r in b):.0f} µs "
            f"CPU/call), tokenmeter {rt:.1f} calls/s ({med(r['cpu_us_per_call'] for r in t):.0f} µs CPU/call): "
            f"ratio {rt / rb:.3f}; errors {sum(r['errors'] for r in b + t)}; metered/made "
            f"{sum(r.get('metered_calls', 0) for r in t)}/{sum(r['calls'] for r in t) + len(t)}"
        )
    if "asyncio" in results:
        b, t = results["asyncio"]["bare"], results["asyncio"]["tokenmeter"]
        rb, rt = med(r["chunks_per_s"] for r in b), med(r["chunks_per_s"] for r in t)  # streams may outlast the window
        pb, pt = med(r["lag_p99_ms"] for r in b), med(r["lag_p99_ms"] for r in t)
        lines.append(
            f"asyncio (1,000 concurrent streams): bare {rb:.0f} chunks/s ({med(r['streams_per_s'] for r in b):.1f} "
            f"streams/s), tokenmeter {rt:.0f} chunks/s ({med(r['streams_per_s'] for r in t):.1f} streams/s): ratio "
            f"{rt / rb:.3f}; loop lag p50/p99/max bare {med(r['lag_p50_ms'] for r in b):.2f}/{pb:.2f}/"
            f"{med(r['lag_max_ms'] for r in b):.1f} ms, tokenmeter {med(r['lag_p50_ms'] for r in t):.2f}/{pt:.2f}/"
            f"{med(r['lag_max_ms'] for r in t):.1f} ms: p99 added {pt - pb:+.2f} ms; errors "
            f"{sum(r['errors'] for r in b + t)} {next((r['first_error'] for r in b + t if r.get('first_error')), '')}"
        )
    if convoy is not None:
        for mode, report in convoy.items():
            lines.append(f"py-spy ({mode} threads run, the 16 calling threads, --idle): {json.dumps(report)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
