#!/usr/bin/env python3
"""Runs harness.py across contender venvs (interleaved, repeated) and writes the report.

tokenmeter's copy of the shared anchor orchestrator (see README.md), with the tokenmeter contenders
(``tokenmeter_contenders.py``), a verification of tokenmeter's token metrics and a targets section.

    python3 orchestrate.py run [--quick] [--phases verify,startup,timing,memory,content] [--reps 5] [--append]
                               [--only key,key] [--set n_nonstream=5000 --set reps=3]
    python3 orchestrate.py report [--out results/REPORT.md]

Stdlib only; run it with any python3.  Raw results: results/raw.jsonl (one JSON
object per harness process), verify dumps: results/verify/, -X importtime logs:
results/importtime/.

To add a contender: write its setup function in harness.py (or a plugin file),
give it a venv (requirements/<venv>.in + a line in run.sh's VENVS), and add
a Cfg line to CONFIGS below (baseline = the "bare" Cfg of the same openai version).
"""

# The report is Markdown meant for people: typographic dashes, minus and multiplication signs are intended.
# ruff: noqa: RUF001, RUF002
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics as st
import subprocess
import sys
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
RES = os.path.join(HERE, "results")
RAW = os.path.join(RES, "raw.jsonl")
PLUGIN = os.path.join(HERE, "tokenmeter_contenders.py")


@dataclass(frozen=True)
class Cfg:
    key: str  # label in the report
    venv: str  # venvs/<venv>
    contender: str  # harness contender name
    content: str  # "off" | "on"
    baseline: str | None  # key of the bare config with the same openai version
    note: str = ""


CONFIGS = [
    Cfg("bare", "bare", "bare", "off", None, "openai 3.x, no instrumentation"),
    Cfg("otel_v2", "otel_v2", "otel_v2", "off", "bare"),
    Cfg("openllmetry", "openllmetry", "openllmetry", "off", "bare"),
    Cfg("openinference", "openinference", "openinference", "off", "bare"),
    Cfg(
        "openlit@oai3",
        "openlit_oai3",
        "openlit",
        "off",
        "bare",
        "openlit forced onto openai 3.x (--no-deps; outside openlit's declared openai<3)",
    ),
    Cfg("bare@oai2", "openlit", "bare", "off", None, "openai 2.x (openlit's venv), no instrumentation"),
    Cfg("openlit", "openlit", "openlit", "off", "bare@oai2", "openlit on its supported openai 2.x"),
    Cfg("tokenmeter", "tokenmeter", "tokenmeter", "off", "bare", "tokenmeter, no scope in force"),
    Cfg(
        "tokenmeter+workflow",
        "tokenmeter",
        "tokenmeter_workflow",
        "off",
        "bare",
        "tokenmeter, calls inside an open workflow(team=...) + step",
    ),
    Cfg(
        "tokenmeter+budget:memory",
        "tokenmeter",
        "tokenmeter_budget_memory",
        "off",
        "bare",
        "tokenmeter, daily $ budget on the caller's team, in-memory store",
    ),
    Cfg(
        "tokenmeter+budget:sqlite",
        "tokenmeter",
        "tokenmeter_budget_sqlite",
        "off",
        "bare",
        "tokenmeter, daily $ budget on the caller's team, SQLite store",
    ),
    Cfg(
        "tokenmeter+budget:redis",
        "tokenmeter",
        "tokenmeter_budget_redis",
        "off",
        "bare",
        "tokenmeter, daily $ budget on the caller's team, Redis store on loopback",
    ),
    Cfg(
        "otel_floor",
        "tokenmeter",
        "otel_floor",
        "off",
        "bare",
        "reference, not a library: 1 span + 3 semconv histogram records, nothing else (the OTel SDK's share)",
    ),
]
if not os.environ.get("BENCH_REDIS_URL"):
    CONFIGS = [c for c in CONFIGS if c.contender != "tokenmeter_budget_redis"]
ANCHORS = ("otel_v2", "openllmetry", "openinference", "openlit@oai3", "openlit")
# startup and memory are measured for the plain configuration of each library (+ tokenmeter's scopes/budget)
STARTUP_SKIP = {"tokenmeter+workflow", "tokenmeter+budget:sqlite", "tokenmeter+budget:redis", "otel_floor"}
MEMORY_SKIP = {"tokenmeter+budget:sqlite", "tokenmeter+budget:redis", "otel_floor"}
CONTENT_CONFIGS = [
    Cfg("bare", "bare", "bare", "off", None),
    Cfg("bare@oai2", "openlit", "bare", "off", None),
    Cfg("otel_v2+content", "otel_v2", "otel_v2", "on", "bare"),
    Cfg("openllmetry+content", "openllmetry", "openllmetry", "on", "bare"),
    Cfg("openinference+content", "openinference", "openinference", "on", "bare"),
    Cfg("openlit@oai3+content", "openlit_oai3", "openlit", "on", "bare"),
    Cfg("openlit+content", "openlit", "openlit", "on", "bare@oai2"),
    Cfg("tokenmeter+content", "tokenmeter", "tokenmeter", "on", "bare"),
]
STARTUP_EXTRA = [
    Cfg(
        "openlit_default",
        "openlit",
        "openlit_default",
        "off",
        "bare@oai2",
        "openlit.init() with its default instrumentor list",
    ),
]

FULL = dict(
    reps=5,
    content_reps=3,
    n_nonstream=20000,
    w_nonstream=1000,
    n_stream=5000,
    w_stream=300,
    n_memory=100000,
    w_memory=2000,
    startup_reps=5,
)
QUICK = dict(
    reps=1,
    content_reps=1,
    n_nonstream=300,
    w_nonstream=50,
    n_stream=60,
    w_stream=10,
    n_memory=2000,
    w_memory=100,
    startup_reps=1,
)

STRIP_ENV = ("OTEL_", "TRACELOOP_", "OPENLIT_", "OPENINFERENCE_", "OPENAI_", "TOKENMETER_")


def child_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(STRIP_ENV)}
    env["PYTHONHASHSEED"] = "0"
    env.setdefault("BENCH_TMP", os.path.join(HERE, "results"))
    return env


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


def run_harness(cfg: Cfg, mode, extra=(), importtime=False, timeout=1800):
    py = os.path.join(HERE, "venvs", cfg.venv, "bin", "python")
    cmd = (
        [py]
        + (["-X", "importtime"] if importtime else [])
        + [
            os.path.join(HERE, "harness.py"),
            cfg.contender,
            "--mode",
            mode,
            "--content",
            cfg.content,
            "--plugin",
            PLUGIN,
            *extra,
        ]
    )
    la = loadavg()
    t0 = time.time()
    p = subprocess.run(cmd, cwd=HERE, env=child_env(), capture_output=True, text=True, timeout=timeout)
    rec = {
        "key": cfg.key,
        "venv": cfg.venv,
        "baseline": cfg.baseline,
        "cmd": " ".join(cmd[1:]),
        "rc": p.returncode,
        "loadavg_before": la,
        "loadavg_after": loadavg(),
        "elapsed_s": time.time() - t0,
    }
    if p.returncode == 0:
        try:
            rec.update(json.loads(p.stdout.strip().splitlines()[-1]))
        except Exception as e:
            rec.update(rc=-999, error=f"bad json: {e}", stdout_tail=p.stdout[-2000:])
    else:
        rec["stderr_tail"] = p.stderr[-3000:]
    rec["stderr"] = p.stderr if importtime else p.stderr[-1500:]
    return rec


def append(rec, phase, rep=None):
    rec = dict(rec, phase=phase, rep=rep, ts=time.time())
    stderr = rec.pop("stderr", "")
    if rec["rc"] != 0:
        print(
            f"  !! {rec['key']} {phase} rc={rec['rc']}: {rec.get('stderr_tail', rec.get('error', ''))[-800:]}",
            flush=True,
        )
    with open(RAW, "a") as f:
        f.write(json.dumps(rec, default=str) + "\n")
    return rec, stderr


def phase_verify(p):
    os.makedirs(os.path.join(RES, "verify"), exist_ok=True)
    seen = set()
    for cfg in CONFIGS + CONTENT_CONFIGS + STARTUP_EXTRA:
        if cfg.key in seen:
            continue
        seen.add(cfg.key)
        for mode in ("verify-nonstream", "verify-stream"):
            rec = run_harness(cfg, mode)
            rec.pop("stderr", None)
            with open(os.path.join(RES, "verify", f"{cfg.key}.{mode}.json"), "w") as f:
                json.dump(rec, f, indent=1, default=str)
            slim = {
                k: rec.get(k)
                for k in (
                    "key",
                    "venv",
                    "rc",
                    "contender",
                    "mode",
                    "content_capture",
                    "versions",
                    "notes",
                    "http_module",
                    "token_metrics",
                )
            }
            slim["n_spans"] = len(rec.get("spans", []))
            slim["n_logs"] = len(rec.get("log_records", []))
            slim["metric_names"] = [m["name"] for m in rec.get("metrics", [])]
            append(dict(slim, rc=rec["rc"], stderr_tail=rec.get("stderr_tail", "")), "verify")
            print(
                f"  verify {cfg.key:24s} {mode:17s} rc={rec['rc']} spans={slim['n_spans']} "
                f"metrics={len(slim['metric_names'])} logs={slim['n_logs']}",
                flush=True,
            )


def phase_startup(p, rng):
    os.makedirs(os.path.join(RES, "importtime"), exist_ok=True)
    cfgs = [c for c in CONFIGS + STARTUP_EXTRA if c.key not in STARTUP_SKIP]
    for rep in range(p["startup_reps"]):
        order = cfgs[:]
        rng.shuffle(order)
        for cfg in order:
            append(run_harness(cfg, "startup"), "startup", rep)
    for cfg in cfgs:
        _rec, stderr = append(run_harness(cfg, "startup", importtime=True), "startup-importtime")
        with open(os.path.join(RES, "importtime", f"{cfg.key}.txt"), "w") as f:
            f.write(stderr)
    print("  startup done", flush=True)


def phase_timing(p, rng, cfgs, reps, phase):
    for rep in range(reps):
        for mode in ("nonstream", "stream"):
            order = cfgs[:]
            rng.shuffle(order)
            for cfg in order:
                n, w = (p["n_nonstream"], p["w_nonstream"]) if mode == "nonstream" else (p["n_stream"], p["w_stream"])
                rec, _ = append(run_harness(cfg, mode, ["--n", str(n), "--warmup", str(w)]), phase, rep)
                if rec["rc"] == 0:
                    print(
                        f"  {phase} rep{rep} {mode:9s} {cfg.key:24s} mean={rec['loop_mean_us']:8.1f}us "
                        f"p50={rec['p50_us']:8.1f}us spans/call={rec['spans_per_call']:.3f} "
                        f"load={rec['loadavg_before']}",
                        flush=True,
                    )


def phase_memory(p, rng):
    order = [c for c in CONFIGS if c.key not in MEMORY_SKIP]
    rng.shuffle(order)
    for cfg in order:
        rec, _ = append(
            run_harness(cfg, "memory", ["--n", str(p["n_memory"]), "--warmup", str(p["w_memory"])]), "memory"
        )
        if rec["rc"] == 0:
            print(
                f"  memory {cfg.key:24s} growth={rec['rss_growth_kib']}KiB peak+={rec['peak_growth_kib']}KiB",
                flush=True,
            )


def _select(only):
    """Keep only the configs named in ``only`` (plus the bare baselines they are compared with)."""
    global CONFIGS, CONTENT_CONFIGS, STARTUP_EXTRA
    keys = {k.strip() for k in only.split(",") if k.strip()}
    unknown = keys - {c.key for c in CONFIGS + CONTENT_CONFIGS + STARTUP_EXTRA}
    if unknown:
        sys.exit(f"--only: unknown config(s) {', '.join(sorted(unknown))}")

    def keep(cfgs):
        chosen = [c for c in cfgs if c.key in keys]
        wanted = keys | {c.baseline for c in chosen if c.baseline}
        return [c for c in cfgs if c.key in wanted]

    CONFIGS, CONTENT_CONFIGS, STARTUP_EXTRA = keep(CONFIGS), keep(CONTENT_CONFIGS), keep(STARTUP_EXTRA)


def cmd_run(a):
    p = dict(QUICK if a.quick else FULL)
    if a.reps:
        p["reps"] = a.reps
    for item in a.set:
        name, _, value = item.partition("=")
        if name not in p:
            sys.exit(f"--set: unknown parameter {name!r}; known: {', '.join(p)}")
        p[name] = int(value)
    if a.only:
        _select(a.only)
    os.makedirs(RES, exist_ok=True)
    if not a.append and os.path.exists(RAW):
        os.replace(RAW, RAW + ".prev")
    meta = {
        "phase": "meta",
        "rc": 0,
        "key": "-",
        "ts": time.time(),
        "params": p,
        "quick": a.quick,
        "phases": a.phases,
        "host": host_info(),
        "argv": sys.argv,
    }
    with open(RAW, "a") as f:
        f.write(json.dumps(meta) + "\n")
    rng = random.Random(a.seed)
    phases = a.phases.split(",")
    t0 = time.time()
    if "verify" in phases:
        phase_verify(p)
    if "startup" in phases:
        phase_startup(p, rng)
    if "timing" in phases:
        phase_timing(p, rng, CONFIGS, p["reps"], "timing")
    if "memory" in phases:
        phase_memory(p, rng)
    if "content" in phases:
        phase_timing(p, rng, CONTENT_CONFIGS, p["content_reps"], "timing-content")
    print(f"run finished in {(time.time() - t0) / 60:.1f} min", flush=True)


def host_info():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": loadavg(),
    }


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def load_raw():
    recs = []
    with open(RAW) as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    return recs


def med(xs):
    return st.median(xs) if xs else None


def fmt(x, nd=1):
    return "–" if x is None else f"{x:,.{nd}f}"


# The canned usage as disjoint token classes: prompt 1234 = 210 uncached + 1024 cached;
# completion 210 = 146 visible + 64 reasoning.
TOKEN_CLASSES_EXPECTED = {"input": 210, "cache_read": 1024, "output": 146, "reasoning": 64}


def token_check(rec):
    """Whether the token metrics recorded exactly the canned usage over every call of the process.

    A semconv-style metric (``gen_ai.token.type`` = input/output) must sum to 1234 / 210 per call;
    tokenmeter's ``tokenmeter.tokens`` counter (``tokenmeter.token.class``) must sum, per class, to the
    disjoint classes above (cache_write is 0 and emits no point).
    """
    calls = rec.get("total_calls") or (rec.get("n", 0) + rec.get("warmup", 0))
    tm = rec.get("token_metrics") or {}
    found = []
    semconv_done = False
    for name, m in tm.items():
        bt = m.get("by_type", {})
        if name == "tokenmeter.tokens":
            got = {k: v.get("sum") for k, v in bt.items() if v.get("sum")}
            want = {k: n * calls for k, n in TOKEN_CLASSES_EXPECTED.items()}
            if got == want:
                found.append(f"✓ `{name}` {len(want)} classes exact")
            else:
                found.append(f"✗ `{name}` {got} (expected {want})")
            continue
        if semconv_done:
            continue
        inp = bt.get("input", {}).get("sum")
        out = bt.get("output", {}).get("sum")
        if inp == 1234 * calls and out == 210 * calls:
            found.append(f"✓ `{name}` in/out sums exact")
            semconv_done = True
        elif inp is not None or out is not None:
            found.append(f"✗ `{name}` in={inp} out={out} (expected {1234 * calls}/{210 * calls})")
            semconv_done = True
    return "; ".join(found) or "no token metric"


def timing_table(recs, cfgs, phase, mode):
    rows = []
    by = {}
    for r in recs:
        if r.get("phase") == phase and r.get("mode") == mode and r.get("rc") == 0:
            by.setdefault(r["key"], []).append(r)
    base_med = {}
    for cfg in cfgs:
        rs = by.get(cfg.key, [])
        if cfg.baseline is None and rs:
            base_med[cfg.key] = (med([r["loop_mean_us"] for r in rs]), {r["rep"]: r["loop_mean_us"] for r in rs})
    hdr = (
        "| contender | openai | reps | median µs/call | min µs/call | per-call p50 µs | overhead vs bare µs "
        "(paired) | ratio | spans/call | token metric | log records/call |"
    )
    sep = "|" + "---|" * 11
    rows.append(hdr)
    rows.append(sep)
    for cfg in cfgs:
        rs = by.get(cfg.key, [])
        if not rs:
            rows.append(f"| {cfg.key} | | 0 | (no successful run) | | | | | | | |")
            continue
        means = [r["loop_mean_us"] for r in rs]
        m, mn = med(means), min(means)
        p50 = med([r["p50_us"] for r in rs])
        ov = ratio = paired = None
        if cfg.baseline and cfg.baseline in base_med:
            bm, brep = base_med[cfg.baseline]
            ov, ratio = m - bm, m / bm
            pd = [r["loop_mean_us"] - brep[r["rep"]] for r in rs if r["rep"] in brep]
            paired = med(pd) if pd else None
        spc = med([r["spans_per_call"] for r in rs])
        calls = rs[0]["total_calls"]
        lpc = med([r["log_records_exported"] / calls for r in rs])
        tok = (
            token_check(rs[0])
            if cfg.contender not in ("bare", "openinference")
            else ("n/a (spans only; tokens as span attrs)" if cfg.contender == "openinference" else "–")
        )
        ovs = "–" if ov is None else f"{ov:+,.1f} ({fmt(paired)})"
        rows.append(
            f"| {cfg.key} | {rs[0]['versions'].get('openai')} | {len(rs)} | {fmt(m)} | {fmt(mn)} | "
            f"{fmt(p50)} | {ovs} | {fmt(ratio, 2) + '×' if ratio else '–'} | {spc:.3f} | {tok} | {lpc:.2f} |"
        )
    return "\n".join(rows)


def timing_overheads(recs, cfgs, phase, mode):
    """key -> paired overhead in µs (median over repetitions of contender − bare of the same repetition)."""
    by = {}
    for r in recs:
        if r.get("phase") == phase and r.get("mode") == mode and r.get("rc") == 0:
            by.setdefault(r["key"], {})[r["rep"]] = r["loop_mean_us"]
    out = {}
    for cfg in cfgs:
        mine, base = by.get(cfg.key), by.get(cfg.baseline or "")
        if mine and base:
            paired = [v - base[rep] for rep, v in mine.items() if rep in base]
            if paired:
                out[cfg.key] = med(paired)
    return out


def _verdict(ok):
    return "**met**" if ok else "**missed**"


def targets_section(recs):
    """The issue's targets, each with the measured figures and met / missed."""
    rows = ["| target | measured | verdict |", "|---|---|---|"]
    notes = []
    for mode, label, per in (("nonstream", "per-call overhead", 1), ("stream", "per-chunk stream overhead", 50)):
        ov = timing_overheads(recs, CONFIGS, "timing", mode)
        anchors = {k: ov[k] / per for k in ANCHORS if k in ov}
        if not anchors:
            continue
        lightest = min(anchors, key=anchors.get)
        limit = anchors[lightest] / 2
        unit = "µs/call" if per == 1 else "µs/chunk (stream overhead ÷ 50)"
        for key in [c.key for c in CONFIGS if c.venv == "tokenmeter" and c.key != "otel_floor"]:
            if key not in ov:
                continue
            mine = ov[key] / per
            ratios = ", ".join(f"{a} {mine / v:.2f}×" for a, v in anchors.items() if v > 0)
            rows.append(
                f"| {label} of `{key}` ≤ ½ × lightest anchor ({lightest}: {anchors[lightest]:.2f} {unit}"
                f" → ≤ {limit:.2f}) | {mine:.2f} {unit}; vs each anchor's overhead: {ratios} | "
                f"{_verdict(mine <= limit)} |"
            )
        if "otel_floor" in ov:
            floor = ov["otel_floor"] / per
            rows.append(
                f"| (reference) `otel_floor`, {label}: 1 span + 3 histogram records with the SDK, nothing "
                f"else | {floor:.2f} {unit} = {floor / anchors[lightest]:.2f}× the lightest anchor's | – |"
            )
    ns = timing_overheads(recs, CONFIGS, "timing", "nonstream")
    st_ov = timing_overheads(recs, CONFIGS, "timing", "stream")
    marginal = {k: (st_ov[k] - ns[k]) / 50 for k in st_ov if k in ns}
    if marginal:
        shown = ", ".join(f"{k} {v:.2f}" for k, v in marginal.items())
        rows.append(
            f"| (information) marginal per-chunk overhead = (stream overhead − non-stream overhead) ÷ 50, "
            f"µs/chunk | {shown} | – |"
        )
    startup, first = {}, {}
    for cfg in CONFIGS:
        rs = [r for r in recs if r.get("phase") == "startup" and r.get("key") == cfg.key and r.get("rc") == 0]
        if rs:
            startup[cfg.key] = med([r["setup_total_ms"] for r in rs])
            first[cfg.key] = med([r["first_call_ms"] for r in rs])
    anchors = {k: v for k, v in startup.items() if k in ANCHORS}
    if anchors and "tokenmeter" in startup:
        lightest = min(anchors, key=anchors.get)
        for key in [k for k in startup if k.startswith("tokenmeter")]:
            rows.append(
                f"| import + configure of `{key}` ≤ lightest anchor's import + instrument ({lightest}: "
                f"{anchors[lightest]:.1f} ms; its first call {first[lightest]:.1f} ms) | "
                f"{startup[key]:.1f} ms (first call {first[key]:.1f} ms) | "
                f"{_verdict(startup[key] <= anchors[lightest])} |"
            )
    for cfg in CONFIGS:
        rs = [r for r in recs if r.get("phase") == "memory" and r.get("key") == cfg.key and r.get("rc") == 0]
        if cfg.venv != "tokenmeter" or cfg.key == "otel_floor" or not rs:
            continue
        r = rs[-1]
        samples = [kib for _, kib in r["rss_samples"]]
        half = samples[len(samples) // 2 :]
        tail = (half[-1] - half[0]) / 1024
        queue = (
            "; spans/call < 1: the batch span processor's queue (≤ 2,048 spans) filled up and dropped spans, "
            "its size is part of the growth"
            if r["spans_per_call"] < 0.999
            else ""
        )
        rows.append(
            f"| RSS flat over {r['n']:,} openai calls (`{cfg.key}`) | second half of the run "
            f"{tail:+.2f} MiB, whole run {r['rss_growth_kib'] / 1024:+.2f} MiB{queue} | "
            f"{_verdict(tail <= 1.0)} (second-half growth ≤ 1 MiB) |"
        )
    scale = os.path.join(RES, "scale.json")
    if os.path.exists(scale):
        with open(scale) as f:
            sc = json.load(f)
        rss = sc.get("rss")
        if rss:
            rows.append(
                f"| RSS flat over {rss['n']:,} metered calls (`record()`, scale.py) | second half "
                f"{rss['second_half_growth_mib']:+.2f} MiB, whole run {rss['growth_mib']:+.2f} MiB | "
                f"{_verdict(rss['flat'])} |"
            )
        for rt in sc.get("redis", []):
            rows.append(
                f"| ≤ 1 Redis round trip per reserve and per settle ({rt['label']}) | "
                f"{rt['round_trips_per_call']:.2f} round trips per call (server commandstats: "
                f"{rt['commands_per_call']:.2f} commands per call) | {_verdict(rt['ok'])} |"
            )
    else:
        notes.append(
            "scale.py results (results/scale.json) not found: RSS over 1M calls and Redis round trips "
            "are not in this table."
        )
    return "\n".join(rows) + ("\n\n" + "\n".join(notes) if notes else "")


def parse_importtime(text):
    lines = text.splitlines()
    try:
        b = lines.index("##BENCH_SETUP_BEGIN##")
        e = lines.index("##BENCH_SETUP_END##")
    except ValueError:
        return None
    total_self = 0
    top = []
    n = 0
    for line in lines[b + 1 : e]:
        mo = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)", line)
        if not mo:
            continue
        n += 1
        total_self += int(mo.group(1))
        if len(mo.group(3)) == 1:
            top.append((int(mo.group(2)), mo.group(4)))
    top.sort(reverse=True)
    return {"modules": n, "self_total_ms": total_self / 1e3, "top": top[:4]}


def startup_table(recs):
    rows = [
        "| contender | venv | instr. import ms (median) | instrument()/init ms | setup total ms | "
        "first call ms | modules imported by setup (-X importtime) | Σ self import ms (-X importtime) | "
        "top imports (cumulative ms) |",
        "|" + "---|" * 9,
    ]
    keys = []
    for cfg in CONFIGS + STARTUP_EXTRA:
        keys.append(cfg)
    base_mods = {}
    for cfg in keys:
        rs = [r for r in recs if r.get("phase") == "startup" and r.get("key") == cfg.key and r.get("rc") == 0]
        if not rs:
            continue
        it = None
        path = os.path.join(RES, "importtime", f"{cfg.key}.txt")
        if os.path.exists(path):
            with open(path) as f:
                it = parse_importtime(f.read())
        top = ", ".join(f"{name} {us / 1e3:.0f}" for us, name in (it or {}).get("top", []))
        rows.append(
            f"| {cfg.key} | {cfg.venv} | {fmt(med([r['instr_import_ms'] for r in rs]))} | "
            f"{fmt(med([r['instrument_ms'] for r in rs]))} | {fmt(med([r['setup_total_ms'] for r in rs]))} | "
            f"{fmt(med([r['first_call_ms'] for r in rs]))} | {it['modules'] if it else '–'} | "
            f"{fmt(it['self_total_ms']) if it else '–'} | {top} |"
        )
        base_mods[cfg.key] = med([r["modules_loaded"] for r in rs])
    return "\n".join(rows)


def memory_table(recs):
    rows = [
        "| contender | calls | RSS at start MiB | RSS growth end−start MiB | peak (VmHWM) growth MiB | "
        "RSS after each 10% of calls (MiB, Δ from start) | spans/call |",
        "|" + "---|" * 7,
    ]
    for cfg in CONFIGS:
        rs = [r for r in recs if r.get("phase") == "memory" and r.get("key") == cfg.key and r.get("rc") == 0]
        if not rs:
            continue
        r = rs[-1]
        s0 = r["rss_start_kib"]
        samples = " ".join(f"{(kib - s0) / 1024:+.1f}" for _, kib in r["rss_samples"][1:])
        rows.append(
            f"| {cfg.key} | {r['n']:,} | {s0 / 1024:.1f} | {r['rss_growth_kib'] / 1024:+.2f} | "
            f"{r['peak_growth_kib'] / 1024:+.2f} | {samples} | {r['spans_per_call']:.3f} |"
        )
    return "\n".join(rows)


def telemetry_section():
    out = []
    vdir = os.path.join(RES, "verify")
    seen = set()
    for cfg in CONFIGS + CONTENT_CONFIGS + STARTUP_EXTRA:
        if cfg.key in seen or cfg.contender == "bare":
            continue
        seen.add(cfg.key)
        for mode in ("verify-nonstream", "verify-stream"):
            path = os.path.join(vdir, f"{cfg.key}.{mode}.json")
            if not os.path.exists(path):
                continue
            with open(path) as f:
                d = json.load(f)
            if d.get("rc") != 0:
                out.append(f"- **{cfg.key} / {mode}**: FAILED rc={d.get('rc')}")
                continue
            spans = d.get("spans", [])
            s_desc = "; ".join(f"`{s['name']}` (scope `{s['scope']}`, {len(s['attributes'])} attrs)" for s in spans)
            tok_attrs = {}
            for s in spans:
                for k, v in s["attributes"].items():
                    if "token" in k.lower() and k != "gen_ai.request.max_tokens":
                        tok_attrs[k] = v
            mets = []
            for m in d.get("metrics", []):
                keys = sorted({k for p in m["points"] for k in p["attributes"]})
                mets.append(
                    f"`{m['name']}` ({m['type']}, {m['unit'] or '-'}; {len(m['points'])} pt; attrs: {', '.join(keys)})"
                )
            logs = d.get("log_records", [])
            l_desc = ", ".join(sorted({str(rec.get("event_name")) for rec in logs})) if logs else "none"
            content_keys = sorted(
                {
                    k
                    for s in spans
                    for k in s["attributes"]
                    if any(
                        x in k
                        for x in (
                            "messages",
                            "input.value",
                            "output.value",
                            "system_instructions",
                            "prompt",
                            "completion.",
                        )
                    )
                    and "token" not in k
                }
            )
            out.append(
                f"- **{cfg.key} / {mode.replace('verify-', '')}** (content capture "
                f"{'on' if d.get('content_capture') else 'off'}): spans: {s_desc}\n"
                f"  - span attribute keys: "
                f"{', '.join('`' + k + '`' for k in sorted(spans[0]['attributes'])) if spans else '–'}\n"
                f"  - token attributes on span: {json.dumps(tok_attrs)}\n"
                f"  - content-bearing attributes: {', '.join(content_keys) or 'none'}\n"
                f"  - metrics: {'; '.join(mets) or 'none'}\n"
                f"  - log records / events: {len(logs)} ({l_desc})"
            )
    return "\n".join(out)


def emitted_table():
    """Per contender, what one non-streaming call emitted (from the verify dumps)."""
    rows = [
        "| contender | spans | span attributes | token counts on span | metric instruments | metric points | "
        "log records | cost | token classes on metrics |",
        "|" + "---|" * 9,
    ]
    vdir = os.path.join(RES, "verify")
    for cfg in CONFIGS:
        path = os.path.join(vdir, f"{cfg.key}.verify-nonstream.json")
        if cfg.contender == "bare" or not os.path.exists(path):
            continue
        with open(path) as f:
            d = json.load(f)
        if d.get("rc") != 0:
            continue
        spans, metrics = d.get("spans", []), d.get("metrics", [])
        attrs = max((len(sp["attributes"]) for sp in spans), default=0)
        tok = sorted(
            {
                k
                for sp in spans
                for k in sp["attributes"]
                if re.search(r"tokens$|token_count", k) and "max_tokens" not in k
            }
        )
        points = sum(len(m["points"]) for m in metrics)
        cost = any("cost" in k for sp in spans for k in sp["attributes"]) or any("cost" in m["name"] for m in metrics)
        classes = sorted(
            {
                str(p["attributes"][k])
                for m in metrics
                for p in m["points"]
                for k in ("gen_ai.token.type", "tokenmeter.token.class")
                if k in p["attributes"]
            }
        )
        rows.append(
            f"| {cfg.key} | {len(spans)} | {attrs} | {len(tok)} | {len(metrics)} | {points} | "
            f"{len(d.get('log_records', []))} | {'yes' if cost else 'no'} | {', '.join(classes) or '–'} |"
        )
    return "\n".join(rows)


def versions_section(recs):
    out = []
    locks = os.path.join(HERE, "requirements")
    for v in ("bare", "otel_v2", "openllmetry", "openinference", "openlit", "openlit_oai3", "tokenmeter"):
        path = os.path.join(locks, f"{v}.lock.txt")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            pins = [line.strip() for line in f if line.strip() and not line.startswith("#")]
        key = [
            x
            for x in pins
            if re.match(
                r"(?i)(openai|openlit|openinference|opentelemetry|httpx|httpcore|"
                r"pydantic|wrapt|anyio|jiter|genai|tiktoken|redis)",
                x,
            )
        ]
        out.append(
            f"- **venv `{v}`** ({len(pins)} packages; full list `requirements/{v}.lock.txt`): "
            + ", ".join(f"`{x}`" for x in key)
        )
        chk = os.path.join(RES, f"pipcheck-{v}.txt")
        if os.path.exists(chk):
            with open(chk) as f:
                c = f.read().strip()
            if c and "No broken requirements" not in c:
                out.append(f"  - `pip check`: {c}")
    return "\n".join(out)


def cmd_report(a):
    recs = load_raw()
    metas = [r for r in recs if r.get("phase") == "meta"]
    # the run that measured the timing tables describes the method (phases may come from several runs)
    meta = next((m for m in reversed(metas) if "timing" in m.get("phases", "timing")), metas[-1] if metas else {})
    p = meta.get("params", {})
    host = meta.get("host", {})
    loads = [r.get("loadavg_before") for r in recs if r.get("loadavg_before") is not None]
    failed = [r for r in recs if r.get("rc") not in (0, None)]
    parts = []
    quick = " (QUICK smoke run — numbers not meaningful)" if meta.get("quick") else ""
    parts.append("# tokenmeter vs the bare openai client and the other OTel LLM instrumentations\n")
    parts.append(
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `orchestrate.py report` "
        f"from `results/raw.jsonl`{quick}. Runs: "
        + "; ".join(f"`{' '.join(m.get('argv', [])[1:])}`" for m in metas)
        + "\n"
    )
    parts.append("## Targets (issue 6)\n")
    parts.append(targets_section(recs) + "\n")
    parts.append("## Machine and method\n")
    parts.append(
        f"- Host: {host.get('cpu')} × {host.get('nproc')} cores, kernel {host.get('kernel')}, "
        f"CPython {host.get('python')}. Shared and noisy: 1-min load average during the runs "
        f"min {min(loads) if loads else '?'} / median {med(loads) if loads else '?'} / "
        f"max {max(loads) if loads else '?'}.\n"
        f"- Each number comes from a fresh process: `venvs/<venv>/bin/python harness.py <contender> "
        f"--mode nonstream|stream`. Non-streaming: {p.get('w_nonstream')} warm-up + "
        f"{p.get('n_nonstream')} timed calls; streaming: {p.get('w_stream')} + {p.get('n_stream')} calls "
        f"of 50 SSE chunks each. "
        f"Each call is timed with `time.perf_counter_ns`; 'µs/call' = wall time of the timed loop / N "
        f"(includes GC and the exporter thread's share); 'per-call p50' = median of individual call times.\n"
        f"- {p.get('reps')} repetitions (content off) / {p.get('content_reps')} (content on), contenders "
        f"interleaved: every repetition runs all contenders once per mode in a freshly shuffled order "
        f"(seeded). 'median' and 'min' are over the repetitions' µs/call. Overhead = median(contender) − "
        f"median(bare with the same openai version); '(paired)' = median over repetitions of "
        f"(contender − bare of the same repetition). Ratio = median / median(bare).\n"
        f"- Transport: `openai.OpenAI(api_key='x', base_url='http://test/v1', http_client=<httpx>.Client("
        f"transport=<httpx>.MockTransport(handler)))`, where `<httpx>` is `httpx2` for openai 3.x (which "
        f"ships on httpx2) and `httpx` for openai 2.x. The handler returns pre-encoded bytes: a "
        f"`chat.completion` JSON (~1 KB, usage with prompt_tokens=1234, completion_tokens=210, "
        f"cached_tokens=1024, reasoning_tokens=64) or an SSE body of 50 `chat.completion.chunk` events "
        f"(role, 47 content deltas, finish_reason, usage-only chunk as with `stream_options="
        f"{{'include_usage': True}}`) + `[DONE]`, one network chunk per event. No socket is opened.\n"
        f"- Telemetry pipeline (same for every contender, including bare where it stays unused): "
        f"`TracerProvider` + **`BatchSpanProcessor`** (SDK defaults: 2048 queue, 512 batch, 5 s) → "
        f"counting exporter that discards; `MeterProvider` + `InMemoryMetricReader` (cumulative, read once "
        f"at the end); `LoggerProvider` + `BatchLogRecordProcessor` → counting exporter (for GenAI events). "
        f"All three are passed to `instrument()` and also set as the OTel globals (openlit only reads "
        f"globals). Spans/log records are counted after `force_flush()`; metrics are read from the reader.\n"
        f"- Content capture (prompt/completion text) is OFF in the main tables; ON in the 'content on' "
        f"table.\n"
    )
    parts.append("## Reproduce\n")
    parts.append(
        "```\nbash benchmarks/run.sh            # full run (make bench-full); venvs from the lock files\n"
        "bash benchmarks/run.sh --quick    # smoke run (make bench)\n"
        "bash benchmarks/run.sh --resolve  # re-resolve requirements/*.in to the newest allowed versions\n"
        "cd benchmarks && venvs/tokenmeter/bin/python harness.py tokenmeter --plugin tokenmeter_contenders.py "
        "--mode nonstream --n 20000   # one measurement\n```\n"
    )
    for title, cfgs, phase in (("Non-streaming, content capture off", CONFIGS, "timing"),):
        parts.append(f"## Results: {title} (µs per call)\n")
        parts.append(timing_table(recs, cfgs, phase, "nonstream") + "\n")
    parts.append("## Results: streaming (50 chunks, usage in last chunk), content capture off (µs per call)\n")
    parts.append(timing_table(recs, CONFIGS, "timing", "stream") + "\n")
    if any(r.get("phase") == "timing-content" for r in recs):
        parts.append("## Results: content capture ON\n")
        parts.append("Non-streaming:\n\n" + timing_table(recs, CONTENT_CONFIGS, "timing-content", "nonstream") + "\n")
        parts.append("Streaming:\n\n" + timing_table(recs, CONTENT_CONFIGS, "timing-content", "stream") + "\n")
    else:
        parts.append("## Results: content capture ON\n\nNot measured in this run (phase `content`).\n")
    parts.append("## Startup cost (import + instrument), fresh process, openai + OTel SDK already imported\n")
    parts.append(startup_table(recs) + "\n")
    mem = [r for r in recs if r.get("phase") == "memory" and r.get("rc") == 0]
    parts.append(f"## Memory: RSS over {mem[-1]['n'] if mem else 0:,} non-streaming calls (content off)\n")
    parts.append(memory_table(recs) + "\n")
    parts.append("## What each contender emitted for one call\n")
    parts.append(emitted_table() + "\n")
    parts.append(telemetry_section() + "\n")
    parts.append("## Versions\n")
    parts.append(
        f"CPython {host.get('python')}. Exact pins per venv (installed with `pip install --no-deps -r "
        f"requirements/<venv>.lock.txt`):\n\n" + versions_section(recs) + "\n"
    )
    if failed:
        parts.append("## Failed runs\n")
        for r in failed:
            parts.append(
                f"- {r.get('phase')} {r.get('key')} {r.get('mode', '')} rc={r.get('rc')}: "
                f"`{(r.get('stderr_tail') or r.get('error') or '')[-300:]}`"
            )
    scale = os.path.join(RES, "SCALE.md")
    if os.path.exists(scale):
        with open(scale) as f:
            parts.append(f.read())
    extra = os.path.join(HERE, "report_notes.md")
    if os.path.exists(extra):
        with open(extra) as f:
            parts.append(f.read())
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(parts) + "\n")
    print(f"wrote {a.out}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--quick", action="store_true")
    r.add_argument("--phases", default="verify,startup,timing,memory,content")
    r.add_argument("--reps", type=int, default=None)
    r.add_argument("--seed", type=int, default=20261123)
    r.add_argument("--append", action="store_true")
    r.add_argument("--only", default="", help="comma-separated config keys (bare baselines are added)")
    r.add_argument("--set", action="append", default=[], help="override a parameter, e.g. n_nonstream=5000")
    rp = sub.add_parser("report")
    rp.add_argument("--out", default=os.environ.get("BENCH_REPORT", "results/REPORT.md"))
    a = ap.parse_args()
    return cmd_run(a) if a.cmd == "run" else cmd_report(a)


if __name__ == "__main__":
    sys.exit(main())
