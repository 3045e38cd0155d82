"""Per-entity budgets at scale: 100,000 customers, each with its own bucket of one template budget.

    python benchmarks/entities.py [--customers 100000] [--stores memory,sqlite,redis] [--json out.json]

For each store: one metered call per customer (``begin`` -> ``stop`` through the budget gate, inside
``attributes(customer=...)``) under ``Budget("per-customer-daily", scope={"customer": "*"},
limit_usd=5, window="1d", overrides={...})``, with the top-20 customer metrics on. Reported:
µs per call (reserve + settle included), RSS growth of the process, buckets kept, and -- for Redis --
the round trips per call on the caller's path and in the settle thread (client requests, server ``INFO commandstats``),
the server's memory and key count. Then the clock moves to the next UTC day and 1,000 more customers
call: the previous window's buckets go (memory store sweep, Redis key TTLs, SQLite cleanup), so what
is kept stays bounded by the entities active in a window. A private ``redis-server`` on a free
loopback port is started (and killed by pid) unless ``--redis-url`` is given.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import threading
import time
from typing import Any

from _redis import start_redis

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tokenmeter
from tokenmeter import Budget, Request, Usage
from tokenmeter._call import begin

DAY = 86400.0


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Clock:
    def __init__(self) -> None:
        now = time.time()
        self.now = now - now % DAY + 3600  # 01:00 UTC today: the run never crosses midnight by itself

    def __call__(self) -> float:
        return self.now


def _calls(first: int, n: int) -> None:
    usage = Usage(input=50, output=100)
    for i in range(first, first + n):
        with tokenmeter.attributes(customer=f"customer-{i:06d}"):
            call = begin(Request("openai", "gpt-4o-mini", max_tokens=100))
            assert call is not None and call.reservation is not None
            call.stop(usage)


def run(kind: str, url: str, customers: int) -> dict[str, Any]:
    budget = Budget(
        "per-customer-daily",
        scope={"customer": "*"},
        limit_usd=5,
        window="1d",
        overrides={f"customer-{i:06d}": 50 for i in range(0, customers, 1000)},
    )
    meter = tokenmeter.configure(budgets=[budget], store=url, exporter="none", customer_metrics=20)
    gate = meter.gate
    clock = Clock()
    gate.clock = clock
    store = gate.store
    out: dict[str, Any] = {"store": kind, "customers": customers}
    admin = None
    sent = {"n": 0, "background": 0}
    if kind == "redis":
        import redis

        admin = redis.Redis.from_url(url)
        _calls(customers * 10, 10)  # load the scripts
        admin.config_resetstat()
        original = store._client.execute_command

        caller = threading.current_thread()

        def counting(*args: Any, **kwargs: Any) -> Any:
            # the caller's round trips; settles batched by the settle thread are counted apart
            sent["n" if threading.current_thread() is caller else "background"] += 1
            return original(*args, **kwargs)

        store._client.execute_command = counting
    gc.collect()
    rss0 = _rss_mib()
    t0 = time.perf_counter()
    _calls(0, customers)
    elapsed = time.perf_counter() - t0
    flush = getattr(gate, "flush", None)
    if flush is not None:
        flush(30_000)  # queued settles (Redis) land before the server is asked
    gc.collect()
    out["us_per_call"] = round(elapsed / customers * 1e6, 1)
    out["rss_growth_mib"] = round(_rss_mib() - rss0, 1)
    t1 = time.perf_counter()
    top = meter.instruments.customers.snapshot()[1]
    out["top_n_collect_ms"] = round((time.perf_counter() - t1) * 1000, 1)
    out["top_n_series"] = len(top)
    if kind == "memory":
        out["buckets"] = len(store)
    if kind == "sqlite":
        out["buckets"] = store.buckets()
    if admin is not None:
        stats = admin.info("commandstats")
        out["client_round_trips_per_call"] = round(sent["n"] / customers, 3)
        out["background_round_trips_per_call"] = round(sent["background"] / customers, 3)
        out["server_evalsha_per_call"] = round(stats["cmdstat_evalsha"]["calls"] / customers, 3)
        out["server_requests_other"] = sorted(
            k for k in stats if k.startswith("cmdstat_") and k not in ("cmdstat_evalsha", "cmdstat_config|resetstat")
        )
        info = admin.info("memory")
        out["redis_used_memory_mib"] = round(info["used_memory"] / 2**20, 1)
        out["redis_keys"] = admin.dbsize()
        ttl = admin.pttl(f"{{tokenmeter}}:b:{budget.key(clock(), 'customer-000001')}")
        out["redis_key_ttl_h"] = round(ttl / 3600_000, 2)
    # The next UTC day: a new window for everyone; the old buckets go.
    clock.now += DAY + 3601  # past the previous window's end + its keep-margin (1 h)
    _calls(customers * 20, 1000)
    if kind == "memory":
        out["buckets_next_day"] = len(store)
    if kind == "sqlite":
        store._next_cleanup = 0.0
        _calls(customers * 30, 1)
        out["buckets_next_day"] = store.buckets()
    tokenmeter.unconfigure()
    if admin is not None:
        admin.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--stores", default="memory,sqlite,redis")
    parser.add_argument("--redis-url")
    parser.add_argument("--json")
    args = parser.parse_args()
    results = []
    proc = None
    try:
        for kind in args.stores.split(","):
            if kind == "memory":
                url = "memory"
            elif kind == "sqlite":
                url = f"sqlite://{tempfile.mkdtemp()}/budgets.db"
            else:
                if args.redis_url is None:
                    proc, args.redis_url = start_redis()
                url = args.redis_url
            result = run(kind, url, args.customers)
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "python": sys.version.split()[0],
                    "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                    "results": results,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
