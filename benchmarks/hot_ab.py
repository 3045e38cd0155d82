"""Interleaved repetitions of ``ab_cpu.py`` across contenders and tokenmeter trees (issue 16's hot-path figures).

    python benchmarks/hot_ab.py [--reps 3] [--modes nonstream,stream] [--tree DIR] [--base /tmp/tm-ef54b20]
                                [--rows tokenmeter,tokenmeter:transport,otel_v2,otel_floor]

Each repetition runs every row once, in a freshly shuffled order, each in its own process (``ab_cpu.py``:
patches toggled in one process, CPU time, median of paired block differences); the report gives, per row,
the median over repetitions of the paired overhead per call and per chunk, and the 1-minute load average
seen around the runs (the machine is shared: CPU time holds up under load far better than wall time, but
not perfectly). ``tokenmeter`` rows import the tokenmeter of this work tree (or of ``--tree DIR``); with
``--base LABEL=DIR,...`` every tokenmeter row is also run against each tree DIR (e.g. a ``git worktree add
/tmp/tm-ef54b20 ef54b20``), labelled ``@LABEL``. Under a fluctuating load (a shared machine: other processes
on the sibling hyperthread slow this one's instructions), many short blocks (``--ab``) pair better than a few
long ones. A row ``NAME:transport`` runs ``ab_cpu.py NAME --toggle transport``. The ledger is written
to a private directory (``XDG_DATA_HOME``), so runs never share a ledger file with anything else.
Needs ``benchmarks/venvs/{tokenmeter,otel_v2}`` (``bash benchmarks/run.sh --venvs-only``).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
_VENV = {"otel_v2": "otel_v2", "openllmetry": "openllmetry", "openinference": "openinference"}
_LINE = re.compile(r"paired overhead\s+(-?[\d.]+) µs")


def _run(row: str, mode: str, tree: str | None, xdg: str, extra: list[str]) -> float:
    name, _, toggle = row.partition(":")
    venv = _VENV.get(name, "tokenmeter")
    cmd = [os.path.join(HERE, "venvs", venv, "bin", "python"), os.path.join(HERE, "ab_cpu.py"), name, "--mode", mode]
    if toggle:
        cmd += ["--toggle", toggle]
    cmd += extra
    env = {**os.environ, "XDG_DATA_HOME": xdg, "PYTHONDONTWRITEBYTECODE": ""}
    env.pop("PYTHONPATH", None)
    if tree is not None:
        env["PYTHONPATH"] = tree
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=HERE)
    found = _LINE.search(out.stdout)
    if found is None:
        raise RuntimeError(f"{row} {mode}: {out.stdout}\n{out.stderr}")
    return float(found.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--modes", default="nonstream,stream")
    ap.add_argument("--rows", default="tokenmeter,tokenmeter:transport,otel_v2,otel_floor")
    ap.add_argument("--tree", default=ROOT, help="the tokenmeter tree of the plain rows (default: this one)")
    ap.add_argument(
        "--base",
        default=None,
        help="other tokenmeter trees to compare, LABEL=DIR[,LABEL=DIR] (main=/tmp/tm-main,ef54b20=/tmp/tm-ef54b20)",
    )
    ap.add_argument(
        "--ab",
        default="",
        help="ab_cpu.py block sizes per mode, e.g. 'nonstream:--blocks 150 --block 20;stream:--blocks 150 --block 4'",
    )
    args = ap.parse_args()
    jobs: list[tuple[str, str, str | None]] = []
    for row in args.rows.split(","):
        is_tm = row.split(":")[0].startswith("tokenmeter")
        jobs.append((row, "", args.tree if is_tm else None))
        if is_tm and args.base:
            for item in args.base.split(","):
                label, _, tree = item.rpartition("=")
                jobs.append((row, f"@{label or 'base'}", tree))
    ab: dict[str, list[str]] = {}
    for part in filter(None, args.ab.split(";")):
        mode, _, options = part.partition(":")
        ab[mode] = options.split()
    results: dict[tuple[str, str], list[float]] = {}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tm-hot-ab-") as xdg:
        for rep in range(args.reps):
            for mode in args.modes.split(","):
                order = list(jobs)
                random.shuffle(order)
                for row, label, tree in order:
                    loads.append(os.getloadavg()[0])
                    us = _run(row, mode, tree, xdg, ab.get(mode, []))
                    results.setdefault((row + label, mode), []).append(us)
                    print(f"rep {rep} {mode:9s} {row + label:28s} {us:8.1f} µs  load {loads[-1]:.2f}", flush=True)
    print(
        f"\nload average (1 min) during the runs: {min(loads):.2f} to {max(loads):.2f}, "
        f"median {statistics.median(loads):.2f}"
    )
    print(f"{'row':30s} {'mode':9s} {'median µs/call':>15s} {'µs/chunk':>9s}  all")
    for (row, mode), values in sorted(results.items()):
        med = statistics.median(values)
        per_chunk = f"{med / 50:9.2f}" if mode == "stream" else " " * 9
        print(f"{row:30s} {mode:9s} {med:15.1f} {per_chunk}  {' '.join(f'{v:.1f}' for v in values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
