"""How long ``PrometheusReader`` takes to read a year of a fleet's counters from a real VictoriaMetrics.

Starts VictoriaMetrics (``scripts/backends.sh install victoriametrics``) on 127.0.0.1 with a fresh data dir, imports
a year of hourly samples of ``tokenmeter_tokens_total`` and ``tokenmeter_cost_USD_total`` for ``--series``
attribute sets (teams x workflows x models x token classes, one process each), then times
``usage(year, granularity="day")`` and ``usage(last 30 days, granularity="hour")`` and checks the totals.

    .venv/bin/python benchmarks/prometheus_reader.py --series 120
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from backends import VictoriaMetrics

from tokenmeter.finops import PrometheusReader

H = 3600


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=120)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    now = int(time.time()) // H * H
    start = now - args.days * 86400
    vm = _YearVM(startup_timeout=60)  # the e2e class keeps one day; a year's samples need a longer retention
    with vm:
        t0 = time.perf_counter()
        total_tokens = 0
        lines: list[str] = []
        for s in range(args.series):
            labels = (
                f'tokenmeter_team_name="team{s % 10}",gen_ai_workflow_name="wf{s % 7}",'
                f'gen_ai_request_model="model{s % 4}",tokenmeter_token_class="{("input", "output")[s % 2]}",'
                f'tokenmeter_env="prod",service_instance_id="i{s}"'
            )
            level, cost = 0, 0.0
            for t in range(start, now, H):
                level += 1000 + s
                cost += (1000 + s) * 2.5e-6
                lines.append(f"tokenmeter_tokens_total{{{labels}}} {level} {t * 1000}")
                lines.append(f"tokenmeter_cost_USD_total{{{labels}}} {cost!r} {t * 1000}")
            total_tokens += level
            if len(lines) > 200_000:
                _import(vm.base_url, lines)
                lines = []
        _import(vm.base_url, lines)
        vm.force_flush()
        print(
            f"imported {args.series} x 2 series x {args.days * 24} hourly samples in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        reader = PrometheusReader(vm.base_url, max_days=args.days + 40)
        for label, since, granularity in (
            ("year by day", timedelta(days=args.days + 1), "day"),
            ("30 days by hour", timedelta(days=30), "hour"),
        ):
            t1 = time.perf_counter()
            rows = list(
                reader.usage(
                    datetime.fromtimestamp(now, UTC) - since,
                    datetime.fromtimestamp(now, UTC) + timedelta(hours=1),
                    granularity=granularity,
                )
            )
            took = time.perf_counter() - t1
            tokens = sum(r.tokens for r in rows)
            print(f"{label}: {len(rows):,} rows, {tokens:,} tokens in {took:.2f} s", flush=True)
            if label == "year by day":
                assert tokens == total_tokens, (tokens, total_tokens)
    return 0


class _YearVM(VictoriaMetrics):
    def _command(self) -> list[str]:
        return [c if not c.startswith("-retentionPeriod=") else "-retentionPeriod=2y" for c in super()._command()]


def _import(base_url: str, lines: list[str]) -> None:
    request = urllib.request.Request(
        base_url + "/api/v1/import/prometheus", data="\n".join(lines).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=120) as r:
        assert r.status == 204


if __name__ == "__main__":
    sys.exit(main())
