"""The warm-up thread configure() starts connects to the Redis budget store and loads its scripts, so the first
metered call makes only EVALSHAs (no NOSCRIPT reply, no SCRIPT LOAD)."""

from __future__ import annotations

import redis

import tokenmeter
from tokenmeter._call import Request, begin
from tokenmeter.testing import capture


def test_warm_up_loads_the_redis_scripts_before_the_first_call(redis_url: str) -> None:
    server = redis.Redis.from_url(redis_url)
    server.script_flush()
    budget = tokenmeter.Budget("b", scope={"model": "*"}, limit_usd=100, window="1d")
    with capture(budgets=[budget], store=redis_url) as cap:
        assert cap.meter.warm_up(60)
        assert "budget store" in cap.meter._warmup.timings
        store = cap.meter.gate.store
        assert server.script_exists(store._exchange.sha) == [True]
        server.config_resetstat()
        call = begin(Request("openai", "gpt-4o-mini", max_tokens=100))
        assert call is not None and call.reservation is not None and call.reservation.rid is not None
        call.stop(tokenmeter.Usage(input=20, output=10))
        assert cap.meter.force_flush(10_000)  # the settle too (it may be queued for the next reserve)
        stats = server.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] >= 1
        assert "cmdstat_script" not in stats  # nothing loaded by the calls: no NOSCRIPT, no SCRIPT LOAD
    server.close()
