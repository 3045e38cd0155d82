"""tokenmeter's scale benchmarks (run with benchmarks/venvs/tokenmeter/bin/python; `run.sh` does).

    python scale.py all [--quick] [--out results/SCALE.md]
    python scale.py rss | cardinality | scopes | redis [--quick]

* ``rss`` -- RSS over 1,000,000 metered calls (``tokenmeter.record()``, after 20,000 warm-up calls),
  sampled every 5%, with the metrics collected every 10% as a periodic reader would; once plain and once
  with every call inside its own ``workflow`` + ``step`` (a new run id, three spans and two contexts per
  call). Flat means the
  second half of the run grows RSS by at most 1 MiB (about one byte per call) and leaves no objects
  behind.
* ``cardinality`` -- ``record()`` under 10,000 distinct attribute combinations with the default
  cardinality cap (100 values per dimension): one dimension with 10,000 values (folds to ``_other``),
  and 100 x 100 values of two dimensions (all within the cap: 10,000 counter series). Compared with
  the same loop on a single combination; also the collection time and the number of points exported.
* ``scopes`` -- µs per ``with workflow(...), step(...)`` around a call, and per call inside them.
* ``redis`` -- Redis round trips per metered openai call with a budget: counted by the client (one
  socket write per round trip, split into the caller's thread and tokenmeter's settle thread) and on the
  server (INFO commandstats).
  Needs ``BENCH_REDIS_URL`` (``run.sh`` starts a private redis-server).

Results: one JSON document (``results/scale.json``) and a Markdown section (``--out``) that
``orchestrate.py report`` appends to the report.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import MESSAGES, MODEL, Pipeline, check_call_result, make_call, make_client, rss_kib  # noqa: E402

import tokenmeter  # noqa: E402

# Each run builds a fresh Pipeline, which re-sets the OTel globals (warned about), and the span-heavy loops outrun
# the batch processor's queue (warned about; the spans exported are reported instead).
logging.getLogger("opentelemetry").setLevel(logging.ERROR)
USAGE = tokenmeter.Usage(input=210, cache_read=1024, output=146, reasoning=64)  # the harness' canned usage
MIB = 1024.0


def _configure(**options: Any) -> tuple[Pipeline, Any]:
    pipe = Pipeline()
    meter = tokenmeter.configure(
        service_name="bench", tracer_provider=pipe.tracer_provider, meter_provider=pipe.meter_provider, **options
    )
    return pipe, meter


def _record() -> None:
    tokenmeter.record("openai", MODEL, USAGE)


def _points(pipe: Pipeline) -> dict[str, int]:
    return {m["name"]: m["points"] for m in pipe.metrics(with_points=False)}


# -- RSS over many calls ------------------------------------------------------------------------


def _rss_run(n: int, label: str, body: Callable[[], None]) -> dict[str, Any]:
    pipe, _meter = _configure()
    # The ledger keeps the last 10,000 runs per workflow (for the report's per-run spread): warm past that.
    for _ in range(20_000):
        body()
    pipe.flush()
    pipe.metric_reader.get_metrics_data()
    gc.collect()
    rss0, objs0 = rss_kib(), len(gc.get_objects())
    samples = [(0, rss0)]
    step, collect_every = max(1, n // 20), max(1, n // 10)
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        body()
        if i % collect_every == 0:
            pipe.metric_reader.get_metrics_data()  # as a periodic exporting reader would
        if i % step == 0:
            samples.append((i, rss_kib()))
    loop_s = time.perf_counter() - t0
    pipe.flush()
    gc.collect()
    rss1, objs1 = rss_kib(), len(gc.get_objects())
    mid = samples[len(samples) // 2][1]
    second_half = (samples[-1][1] - mid) / MIB
    tokenmeter.unconfigure()
    return {
        "label": label,
        "n": n,
        "us_per_call": loop_s / n * 1e6,
        "rss_start_mib": rss0 / MIB,
        "growth_mib": (rss1 - rss0) / MIB,
        "second_half_growth_mib": second_half,
        "objects_start": objs0,
        "objects_growth": objs1 - objs0,
        "samples_mib": [round((kib - rss0) / MIB, 2) for _, kib in samples],
        "spans_exported": pipe.span_count,
        "flat": second_half <= 1.0 and objs1 - objs0 < 1000,
    }


def bench_rss(quick: bool) -> dict[str, Any]:
    n = 20_000 if quick else 1_000_000
    plain = _rss_run(n, "record()", _record)
    wf, st = tokenmeter.workflow("refund", team="payments"), tokenmeter.step("answer")

    def scoped() -> None:
        with wf, st:
            _record()

    scoped_run = _rss_run(n, "record() inside a new workflow + step per call", scoped)
    return {**plain, "flat": plain["flat"] and scoped_run["flat"], "runs": [plain, scoped_run]}


# -- cardinality --------------------------------------------------------------------------------


def _cardinality_run(label: str, specs: list[Any], rounds: int) -> dict[str, Any]:
    pipe, meter = _configure()
    gc.collect()
    rss0 = rss_kib()
    t0 = time.perf_counter()
    for spec in specs:  # first sight of every combination
        with spec:
            _record()
    first = (time.perf_counter() - t0) / len(specs) * 1e6
    t0 = time.perf_counter()
    for _ in range(rounds):
        for spec in specs:
            with spec:
                _record()
    steady = (time.perf_counter() - t0) / (rounds * len(specs)) * 1e6
    gc.collect()
    rss_recorded = rss_kib()
    t0 = time.perf_counter()
    pipe.metric_reader.get_metrics_data()
    collect_ms = (time.perf_counter() - t0) * 1e3
    gc.collect()
    rss_collected = rss_kib()
    points = _points(pipe)
    registers = len(meter.instruments._registers())
    tokenmeter.unconfigure()
    return {
        "label": label,
        "combinations": len({id(s) for s in specs}),
        "calls": len(specs) * (rounds + 1),
        "first_pass_us": first,
        "steady_us": steady,
        "collect_ms": collect_ms,
        "registers": registers,
        "points": {k: v for k, v in points.items() if k.startswith(("tokenmeter.", "gen_ai."))},
        "rss_growth_mib": (rss_recorded - rss0) / MIB,
        "rss_collect_mib": (rss_collected - rss_recorded) / MIB,
    }


def bench_cardinality(quick: bool) -> dict[str, Any]:
    n, rounds = (2_000, 1) if quick else (10_000, 5)
    same = tokenmeter.attributes(workflow="wf-0", team="team-0")
    side = int(n**0.5)
    runs = [
        _cardinality_run("1 combination (reference)", [same] * n, rounds),
        _cardinality_run(
            f"{n:,} workflow names (cap 100: folds to _other)",
            [tokenmeter.attributes(workflow=f"wf-{i}", team="team-0") for i in range(n)],
            rounds,
        ),
        _cardinality_run(
            f"{side} teams x {side} workflows (all within the cap)",
            [tokenmeter.attributes(workflow=f"wf-{i % side}", team=f"team-{i // side}") for i in range(side * side)],
            rounds,
        ),
    ]
    return {"cap": 100, "runs": runs}


# -- scopes -------------------------------------------------------------------------------------


def _per_call(body: Callable[[], None], n: int) -> float:
    for _ in range(min(2_000, n)):
        body()
    t0 = time.perf_counter()
    for _ in range(n):
        body()
    return (time.perf_counter() - t0) / n * 1e6


def bench_scopes(quick: bool) -> dict[str, Any]:
    n = 2_000 if quick else 20_000
    _configure()
    wf, st = tokenmeter.workflow("refund", team="payments"), tokenmeter.step("answer")

    def enter_exit() -> None:
        with wf, st:
            pass

    def inside() -> None:
        with wf, st:
            _record()

    plain = _per_call(_record, n)
    with wf, st:
        in_open = _per_call(_record, n)
    out = {
        "record_us": plain,
        "record_in_open_scope_us": in_open,
        "enter_exit_us": _per_call(enter_exit, n),
        "enter_record_exit_us": _per_call(inside, n),
        "n": n,
    }
    tokenmeter.unconfigure()
    return out


# -- Redis round trips --------------------------------------------------------------------------


class _Sends:
    """Counts socket writes of redis-py connections (one per round trip, pipelines included)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.local = threading.local()

    def install(self) -> None:
        import redis.connection

        original = redis.connection.Connection.send_packed_command
        sends = self

        def counted(conn: Any, command: Any, check_health: bool = True) -> Any:
            # the caller's path (the benchmark's thread) or tokenmeter's settle thread
            phase = "caller" if threading.current_thread() is threading.main_thread() else "background"
            sends.counts[phase] = sends.counts.get(phase, 0) + 1
            return original(conn, command, check_health)

        redis.connection.Connection.send_packed_command = counted  # type: ignore[method-assign]


def _redis_scenario(url: str, label: str, budgets: list[Any], n: int, sends: _Sends) -> dict[str, Any]:
    import redis

    server = redis.Redis.from_url(url)
    server.flushdb()
    pipe, meter = _configure(budgets=budgets, store=url)
    via = "openai client (tokenmeter.instrument('openai'))"
    try:
        tokenmeter.instrument("openai")
        client, _ = make_client(False)
        call = make_call(client, False)
        check_call_result(False, call())
    except Exception as exc:  # the integration may be missing: meter through the core's gated path
        via = f"core begin()/stop() (openai integration unavailable: {type(exc).__name__})"
        from tokenmeter._call import Request, begin

        def call() -> None:
            metered = begin(Request(provider="openai", model=MODEL, max_tokens=512, messages=MESSAGES))
            if metered is not None:
                metered.stop(USAGE)

    with tokenmeter.attributes(team="payments", workflow="refund"):
        for _ in range(20):
            call()
        server.config_resetstat()
        sends.counts.clear()
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        loop_us = (time.perf_counter() - t0) / n * 1e6
        caller = sends.counts.get("caller", 0) / n
        meter.gate.flush(10_000)  # settles still queued (at most the last few)
        counts = dict(sends.counts)
        stats = server.info("commandstats")
    tokenmeter.unconfigure()
    tokenmeter.uninstrument()
    commands = {
        k.removeprefix("cmdstat_"): v["calls"]
        for k, v in stats.items()
        if not k.startswith(("cmdstat_config", "cmdstat_info"))
    }
    total_commands = sum(commands.values())
    scripts = sum(v for k, v in commands.items() if k.startswith(("eval", "fcall")))
    background = counts.get("background", 0) / n
    rtt = sum(counts.values()) / n
    return {
        "label": label,
        "via": via,
        "n": n,
        "us_per_call": loop_us,
        "round_trips_per_call": rtt,
        "caller_round_trips": caller,
        "background_round_trips": background,
        "commands_per_call": total_commands / n,
        "scripts_per_call": scripts / n,
        "server_commands": commands,
        "ok": caller <= 1.0,
        "spans_exported": pipe.span_count,
    }


def bench_redis(quick: bool) -> list[dict[str, Any]]:
    url = os.environ.get("BENCH_REDIS_URL")
    if not url:
        return []
    sends = _Sends()
    sends.install()
    n = 200 if quick else 2_000
    team = tokenmeter.Budget("team-daily", scope={"team": "payments"}, limit_usd=1_000_000.0, window="1d")
    flow = tokenmeter.Budget("workflow-monthly", scope={"workflow": "refund"}, limit_tokens=10**12, window="month")
    return [
        _redis_scenario(url, "1 budget (team, $/day)", [team], n, sends),
        _redis_scenario(url, "2 budgets (team $/day + workflow tokens/month)", [team, flow], n, sends),
    ]


# -- report -------------------------------------------------------------------------------------


def markdown(res: dict[str, Any], quick: bool) -> str:
    out = ["## Scale (scale.py, tokenmeter only)\n"]
    if quick:
        out.append("QUICK run: sizes reduced, numbers not meaningful.\n")
    rss = res.get("rss")
    if rss:
        out.append("### RSS over metered calls\n")
        out.append(
            "| loop | calls | µs/call | RSS at start MiB | growth MiB (whole / second half) | objects left "
            "| RSS Δ every 5% (MiB) | spans exported | flat |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        for r in rss["runs"]:
            out.append(
                f"| {r['label']} | {r['n']:,} | {r['us_per_call']:.1f} | {r['rss_start_mib']:.1f} | "
                f"{r['growth_mib']:+.2f} / {r['second_half_growth_mib']:+.2f} | {r['objects_growth']:+,} | "
                f"{' '.join(f'{x:+.1f}' for x in r['samples_mib'][1:])} | {r['spans_exported']:,} | "
                f"{'yes' if r['flat'] else 'NO'} |"
            )
        out.append("")
    card = res.get("cardinality")
    if card:
        out.append(f"### 10,000 attribute combinations (cardinality cap {card['cap']} per dimension)\n")
        out.append(
            "| combinations | calls | µs/call first pass | µs/call steady | counter registers | "
            "points at collection | collection ms (SDK reader) | "
            "RSS growth MiB (recording / first collection) |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        for r in card["runs"]:
            pts = ", ".join(f"`{k}` {v:,}" for k, v in sorted(r["points"].items()))
            out.append(
                f"| {r['label']} | {r['calls']:,} | {r['first_pass_us']:.1f} | {r['steady_us']:.1f} | "
                f"{r['registers']:,} | {pts} | {r['collect_ms']:.1f} | {r['rss_growth_mib']:+.2f} / "
                f"{r['rss_collect_mib']:+.2f} |"
            )
        out.append(
            "\nEach call enters its `tokenmeter.attributes(...)` scope and calls `record()`; the reference "
            "row does the same with one combination.\n"
        )
    sc = res.get("scopes")
    if sc:
        out.append("### Workflow + step scopes\n")
        out.append(
            f"- `record()` alone: {sc['record_us']:.1f} µs; inside an open workflow + step: "
            f"{sc['record_in_open_scope_us']:.1f} µs"
        )
        out.append(
            f"- entering and leaving `workflow` + `step` (two spans, run id, rollup, run metrics): "
            f"{sc['enter_exit_us']:.1f} µs; with one `record()` inside: {sc['enter_record_exit_us']:.1f} µs\n"
        )
    red = res.get("redis")
    if red is not None:
        out.append("### Redis round trips per metered call with a budget\n")
        if not red:
            out.append("Skipped: no BENCH_REDIS_URL (redis-server not found).\n")
        else:
            out.append(
                "| budgets | path | calls | µs/call | round trips/call, client: caller's path (settle thread) | "
                "scripts/call, server | commands/call, server (incl. inside scripts) | "
                "INFO commandstats | ≤ 1 on the caller's path |"
            )
            out.append("|---|---|---|---|---|---|---|---|---|")
            for r in red:
                cmds = ", ".join(f"{k} {v:,}" for k, v in sorted(r["server_commands"].items()))
                out.append(
                    f"| {r['label']} | {r['via']} | {r['n']:,} | {r['us_per_call']:.0f} | "
                    f"{r['caller_round_trips']:.2f} ({r['background_round_trips']:.2f}) | "
                    f"{r.get('scripts_per_call', 0):.2f} | {r['commands_per_call']:.2f} | {cmds} | "
                    f"{'yes' if r['ok'] else 'NO'} |"
                )
            out.append(
                "\nRound trips are counted on the client as socket writes of redis-py connections (a "
                "pipeline or script is one), split by thread: the caller's (the reserve, carrying the settles "
                "still queued) and tokenmeter's settle thread (queued settles no reserve took within 2 ms, "
                "batched; the final flush). On the server, after "
                "`CONFIG RESETSTAT`, each EVALSHA is one request; commandstats also counts the commands "
                "the Lua scripts run inside the server, which cost no round trip.\n"
            )
    return "\n".join(out) + "\n"


BENCHES: dict[str, Callable[[bool], Any]] = {
    "rss": bench_rss,
    "cardinality": bench_cardinality,
    "scopes": bench_scopes,
    "redis": bench_redis,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", choices=[*BENCHES, "all"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "SCALE.md"))
    args = ap.parse_args(argv)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    json_path = os.path.join(HERE, "results", "scale.json")
    res: dict[str, Any] = {}
    if args.bench != "all" and os.path.exists(json_path):
        with open(json_path) as f:
            res = json.load(f)  # re-running one benchmark keeps the others' results
    for name in BENCHES if args.bench == "all" else [args.bench]:
        t0 = time.time()
        res[name] = BENCHES[name](args.quick)
        print(f"scale: {name} done in {time.time() - t0:.0f} s", flush=True)
    res["quick"] = args.quick
    with open(json_path, "w") as f:
        json.dump(res, f, indent=1)
    with open(args.out, "w") as f:
        f.write(markdown(res, args.quick))
    print(f"wrote {args.out} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
