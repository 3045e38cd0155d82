"""Customers, users, sessions, features: attribution on spans and baggage, per-entity budgets and quotas."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate

import tokenmeter
from tokenmeter import BudgetExceeded, ConfigError, Usage
from tokenmeter.governance import Budget
from tokenmeter.governance._stores import BudgetStore
from tokenmeter.testing import Capture, capture

from ._workers import entity_main
from .conftest import FakeClock, store_url
from .helpers import complete, events, gate, landed, redis_sends, start

OUT = Usage(output=100)


@pytest.fixture
def governed(clock: FakeClock) -> Iterator[Any]:
    with ExitStack() as stack:

        def make(budgets: list[Budget], **options: Any) -> Capture:
            cap = stack.enter_context(capture(budgets=budgets, **options))
            gate(cap).clock = clock
            assert cap.meter.warm_up(60)  # the steady state: exact estimates (test_first_call_bounds: before it)
            return cap

        yield make


def entity_state(cap: Capture, name: str, entity: str) -> Any:
    g = gate(cap)
    assert g.store is not None
    landed(g)
    budget = next(b for b in g.budgets if b.name == name)
    now = g.clock()
    return g.store.state(budget.key(now, entity), now)


def call_as(customer: str | None = None, **kwargs: Any) -> bool:
    """One call of 100 output tokens (estimate 100) as ``customer``; False if a budget refused it."""
    with tokenmeter.attributes(customer=customer):
        try:
            complete(usage=OUT, max_tokens=100, **kwargs)
        except BudgetExceeded:
            return False
    return True


# -- attribution -------------------------------------------------------------------------------------------
def test_entities_go_on_call_and_scope_spans_and_on_the_scope() -> None:
    with capture() as cap:
        assert tokenmeter.current_scope().customer == ""
        with tokenmeter.workflow("support", team="cx", customer="acme", user="u-7", session="s-1", feature="search"):
            assert tokenmeter.current_scope().customer == "acme"
            complete()
    attrs = dict(cap.span("chat gpt-4o-mini").attributes or {})
    wf = dict(cap.span("invoke_workflow support").attributes or {})
    for a in (attrs, wf):
        assert a["tokenmeter.customer.id"] == "acme" and a["user.id"] == "u-7"
        assert a["session.id"] == "s-1" and a["gen_ai.conversation.id"] == "s-1"
        assert a["tokenmeter.feature.name"] == "search"
    # never metric attributes (unbounded)
    for point in cap.points("tokenmeter.tokens"):
        assert "tokenmeter.customer.id" not in point.attributes and "user.id" not in point.attributes


def test_entities_are_optional_and_not_set_when_absent() -> None:
    with capture() as cap, tokenmeter.attributes(team="cx"):
        complete()
    attrs = dict(cap.span("chat gpt-4o-mini").attributes or {})
    assert not {"tokenmeter.customer.id", "user.id", "session.id", "gen_ai.conversation.id"} & set(attrs)


def test_huge_and_control_character_ids_are_cut_and_escaped_never_an_error() -> None:
    with capture() as cap, tokenmeter.attributes(customer="evil\x1b[31m\n" + "x" * 10_000, user=12345):
        complete()
    attrs = dict(cap.span("chat gpt-4o-mini").attributes or {})
    customer = attrs["tokenmeter.customer.id"]
    assert customer.startswith("evil\\x1b[31m\\x0a") and len(customer) == 128 and customer.endswith("…")
    assert customer.isprintable() and attrs["user.id"] == "12345"


class _ServiceB(BaseHTTPRequestHandler):
    """A downstream service: extracts the W3C context from the request and makes a metered call in it."""

    def do_GET(self) -> None:
        token = otel_context.attach(propagate.extract(dict(self.headers)))
        try:
            scope = tokenmeter.current_scope()
            complete()
            body = f"{scope.customer}|{scope.user}|{scope.session}|{scope.feature}|{scope.team}".encode()
        finally:
            otel_context.detach(token)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_entities_travel_as_baggage_to_another_service_over_http() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ServiceB)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with capture() as cap:
            with tokenmeter.attributes(team="cx", customer="acme corp", user="u\n7", session="s-1", feature="faq"):
                headers: dict[str, str] = {}
                propagate.inject(headers)  # what an instrumented HTTP client sends
                assert "tokenmeter.customer=acme" in headers["baggage"]
                reply = httpx.get(f"http://127.0.0.1:{server.server_port}/", headers=headers, timeout=10)
            assert reply.text == "acme corp|u\\x0a7|s-1|faq|cx"
            attrs = dict(cap.span("chat gpt-4o-mini").attributes or {})  # service B's call
            assert (
                attrs["tokenmeter.customer.id"],
                attrs["user.id"],
                attrs["session.id"],
                attrs["tokenmeter.feature.name"],
                attrs["tokenmeter.team.name"],
            ) == ("acme corp", "u\\x0a7", "s-1", "faq", "cx")
    finally:
        server.shutdown()
        server.server_close()


# -- per-entity budgets ------------------------------------------------------------------------------------
def test_a_template_gives_each_customer_its_own_bucket_and_overrides_win(
    governed: Any, store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    budget = Budget(
        "per-customer-daily", scope={"customer": "*"}, limit_tokens=300, window="1d", overrides={"acme": 500}
    )
    cap = governed([budget], store=store_url(store_kind, tmp_path, request))
    assert [call_as("small") for _ in range(4)] == [True, True, True, False]
    assert [call_as("acme") for _ in range(6)] == [True] * 5 + [False]
    assert [call_as("other") for _ in range(3)] == [True] * 3  # unaffected by the others
    assert call_as(None)  # no customer: not in a template's scope
    assert entity_state(cap, "per-customer-daily", "small").spent_tokens == 300
    assert entity_state(cap, "per-customer-daily", "acme").spent_tokens == 500
    state = entity_state(cap, "per-customer-daily", "other")
    assert (state.spent_tokens, state.reservations) == (300, 0)


def test_buckets_reset_at_the_window_boundary(
    governed: Any, clock: FakeClock, store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    budget = Budget("daily", scope={"customer": "*"}, limit_tokens=200, window="1d")
    cap = governed([budget], store=store_url(store_kind, tmp_path, request))
    clock.now = 1_900_000_000 - (1_900_000_000 % 86400) + 86400 - 1  # one second before a UTC midnight
    assert [call_as("c1") for _ in range(3)] == [True, True, False]
    clock.advance(1)  # midnight: a fresh bucket
    assert [call_as("c1") for _ in range(3)] == [True, True, False]
    assert entity_state(cap, "daily", "c1").spent_tokens == 200


def test_request_and_token_quotas_per_minute(
    governed: Any, clock: FakeClock, store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rpm = Budget("rpm", scope={"customer": "*"}, limit_requests=3, window="1m")
    tpm = Budget("tpm", scope={"user": "*"}, limit_tokens=250, window="1m")
    cap = governed([rpm, tpm], store=store_url(store_kind, tmp_path, request))
    clock.now -= clock.now % 60
    assert [call_as("c") for _ in range(4)] == [True, True, True, False]  # the 4th is refused before sending
    assert cap.counter("tokenmeter.calls", **{"tokenmeter.outcome": "blocked"}) == 1
    with tokenmeter.attributes(customer="d"):
        with pytest.raises(BudgetExceeded, match="requests made"):
            for _ in range(4):
                complete(usage=OUT)
    clock.advance(60)
    assert call_as("c")  # a new minute
    with tokenmeter.attributes(user="u2"):
        with pytest.raises(BudgetExceeded, match="tokens spent"):
            for _ in range(3):
                complete(usage=OUT)


def test_a_failed_call_still_counts_as_a_request(governed: Any) -> None:
    cap = governed([Budget("rpm", scope={"customer": "*"}, limit_requests=2, window="1m")])
    with tokenmeter.attributes(customer="c"):
        start().fail(RuntimeError("503"))
    g = gate(cap)
    assert g.store is not None
    key = g.budgets[0].key(g.clock(), "c") + "#req"
    assert g.store.state(key, g.clock()).spent_tokens == 1


def test_scopes_by_model_glob_and_an_allow_listed_attribute(governed: Any) -> None:
    mini = Budget("mini", scope={"model": "gpt-4o-mini*"}, limit_tokens=200, window="1d")
    plan = Budget("free-plan", scope={"plan": "free", "customer": "*"}, limit_tokens=100, window="1d")
    governed([mini, plan], metric_attributes=["plan"])
    assert call_as("a") and call_as("b") and not call_as("c")  # gpt-4o-mini is capped across customers
    assert call_as("a", model="gpt-4o")  # another model: not in scope
    with tokenmeter.attributes(plan="free"):
        assert call_as("x", model="gpt-4o") and not call_as("x", model="gpt-4o")
        assert call_as("y", model="gpt-4o")
    with tokenmeter.attributes(plan="pro"):
        assert call_as("x", model="gpt-4o")


def test_a_scope_key_that_is_not_allow_listed_fails_at_configure() -> None:
    with pytest.raises(ConfigError, match="metric_attributes"):
        with capture(budgets=[Budget("b", scope={"plan": "free"}, limit_tokens=1, window="1d")]):
            pass


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scope": {"customer": "*"}, "limit_usd": 5}, "give a window"),
        ({"scope": {"team": "a"}, "limit_usd": 5, "window": "1d", "overrides": {"acme": 50}}, "template scope"),
        (
            {"scope": {"customer": "*"}, "limit_usd": 5, "window": "1d", "overrides": {"a\n": 5, "a\\x0a": 6}},
            "same entity",
        ),
        ({"scope": {"customer": "*"}, "limit_usd": 5, "window": "1d", "overrides": {"acme": -1}}, "limit"),
        (
            {"scope": {"customer": "*"}, "limit_usd": 5, "window": "1d", "overrides": {"acme": {"limit": 1}}},
            "takes limit_usd",
        ),
        ({"scope": {"customer": "*"}, "limit_requests": 5, "window": "1m", "overrides": {"acme": 9}}, "only requests"),
        ({"scope": {"customer": "*"}, "limit_usd": 5, "window": "1d", "downgrade_at": 1.5}, "downgrade_at"),
        ({"scope": {}, "limit_usd": 5, "window": "1d", "downgrade_at": 0.9, "action": "warn"}, "downgrade_at"),
        ({"scope": {}, "limit_usd": 5, "window": "1d", "owner": ""}, "owner"),
        ({"scope": {}, "limit_requests": 1.5, "window": "1m"}, "limit_requests"),
    ],
)
def test_bad_templates_fail_with_config_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Budget("t", **kwargs)
    with pytest.raises(ConfigError, match=message):
        Budget.from_mapping({"name": "t", **kwargs})


def test_owner_and_escalation_warn_downgrade_block(governed: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "tokenmeter")
    budget = Budget(
        "cx-month",
        scope={"customer": "*"},
        limit_tokens=1000,
        window="month",
        owner="cx-oncall",
        warn_at=(0.8,),
        downgrade_at=0.95,
        downgrade_to="gpt-4o-mini",
        action="block",
    )
    seen: list[Any] = []
    cap = governed([budget], on_budget_warning=seen.append)
    with tokenmeter.attributes(customer="acme:eu"):
        for _ in range(8):
            complete("gpt-4o", usage=OUT)  # 800 tokens: 80 % crossed on the 8th
        [warning] = [r for r in caplog.records if "passed 80%" in r.getMessage()]
        assert "cx-oncall" in warning.getMessage() and "cx-month[acme:eu]" in warning.getMessage()
        assert [(w.entity, w.threshold, w.budget.owner) for w in seen] == [("acme:eu", 0.8, "cx-oncall")]
        warned = [e for s in cap.spans for e in events(s, "tokenmeter.budget.warning")]
        assert warned[0]["tokenmeter.budget.owner"] == "cx-oncall"
        assert warned[0]["tokenmeter.budget.bucket"] == "cx-month[acme:eu]"
        call = start("gpt-4o", max_tokens=100)  # 800 + 100 <= 95 % of 1000: as asked
        assert call.request.model == "gpt-4o"
        call.stop(OUT)
        call = start("gpt-4o", max_tokens=100)  # 900 + 100 > 95 %: sent as the cheaper model, fits the limit
        assert call.request.model == "gpt-4o-mini"
        call.stop(OUT)
        with pytest.raises(BudgetExceeded, match="owner cx-oncall"):
            start("gpt-4o", max_tokens=10)
    downgrades = [e for s in cap.spans for e in events(s) if e["tokenmeter.policy.decision"] == "downgrade"]
    assert downgrades and downgrades[0]["tokenmeter.budget.owner"] == "cx-oncall"
    assert "passed 95%" in downgrades[0]["tokenmeter.policy.reason"]


def test_store_down_fails_open_per_entity(clock: FakeClock) -> None:
    dead = "redis://127.0.0.1:1/0?timeout_s=0.2"
    budget = Budget("pc", scope={"customer": "*"}, limit_tokens=100, window="1d")
    with capture(budgets=[budget], store=dead, fail_open=True) as cap:
        gate(cap).clock = clock
        assert all(call_as(c) for c in ("a", "b", "a"))
    with capture(budgets=[budget], store=dead, fail_open=False) as cap:
        with tokenmeter.attributes(customer="a"), pytest.raises(tokenmeter.BudgetStoreUnavailable):
            start()
        assert call_as(None)  # not in the template's scope: the store is never asked


# -- concurrency: no entity overspends ----------------------------------------------------------------------
def test_threads_never_overspend_any_entity(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    budget = Budget("pc", scope={"customer": "*"}, limit_tokens=1000, window="1d", overrides={"big": 2000})
    customers = ["a", "b", "c", "big"]
    admitted = dict.fromkeys(customers, 0)
    lock = threading.Lock()
    with capture(budgets=[budget], store=store_url(store_kind, tmp_path, request)) as cap:

        def work() -> None:
            for _ in range(15):
                for c in customers:
                    if call_as(c):
                        with lock:
                            admitted[c] += 1

        pool = [threading.Thread(target=tokenmeter.in_context(work)) for _ in range(8)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        assert admitted == {"a": 10, "b": 10, "c": 10, "big": 20}
        for c in customers:
            state = entity_state(cap, "pc", c)
            assert (state.spent_tokens, state.reservations) == (admitted[c] * 100, 0)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_processes_never_overspend_any_entity(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = store_url(kind, tmp_path, request)
    customers = ["a", "b", "big"]
    ctx = multiprocessing.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=entity_main, args=(url, customers, 3, 10, go, results)) for _ in range(3)]
    for p in procs:
        p.start()
    go.set()
    counts = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    total = {c: sum(r[c] for r in counts) for c in customers}
    assert total == {"a": 10, "b": 10, "big": 20}  # 90 attempts each; exactly what fits, in all processes
    from tokenmeter.governance import open_store

    store: BudgetStore = open_store(url)
    budget = Budget("per-customer", scope={"customer": "*"}, limit_tokens=1000, window="1d")
    import time

    for c in customers:
        state = store.state(budget.key(time.time(), c), time.time())
        assert (state.spent_tokens, state.reservations) == (total[c] * 100, 0)
    store.close()


def test_redis_per_entity_budgets_and_quotas_take_one_round_trip_per_call_on_the_callers_path(redis_url: str) -> None:
    import redis

    budgets = [
        Budget("pc", scope={"customer": "*"}, limit_usd=5, window="1d", overrides={"acme": 50}),
        Budget("rpm", scope={"customer": "*"}, limit_requests=1000, limit_tokens=10**6, window="1m"),
        Budget("team", scope={"team": "cx"}, limit_tokens=10**6, window="1d"),
    ]
    with capture(budgets=budgets, store=redis_url) as cap, tokenmeter.attributes(team="cx"):
        call_as("warm")  # loads the scripts
        landed(gate(cap))
        admin = redis.Redis.from_url(redis_url)
        admin.config_resetstat()
        caller = threading.current_thread().name
        with redis_sends() as sends:
            for i in range(50):
                assert call_as(f"c{i}")
            assert sends[caller] == 50  # 4 buckets per call: one round trip each on the caller's path
            landed(gate(cap))  # (the last settle may still be queued)
        stats = admin.info("commandstats")
        admin.close()
        assert set(sends) <= {caller, "tokenmeter-settle"}
        # every settle landed once: carried by the next reserve or batched by the settle thread
        assert stats["cmdstat_evalsha"]["calls"] == sum(sends.values()) <= 100
        assert not {"cmdstat_eval", "cmdstat_multi", "cmdstat_exec", "cmdstat_script|load"} & set(stats)
        assert entity_state(cap, "pc", "c7").spent_tokens == 100
