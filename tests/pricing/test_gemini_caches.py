"""Gemini explicit context caching through the real ``google-genai`` SDK over loopback (``cachedContents``).

Google bills a cache's tokens at the model's standard input rate when it is created, and its storage per
token-hour while it lives (ai.google.dev/gemini-api/docs/pricing, "storage price"). gemini-2.5-flash:
$0.30 per million input tokens, $1.00 per 1,000,000 tokens per hour of storage; gemini-2.5-pro: $1.25 and
$4.50. Every figure is checked to 1e-9 USD against the times the server's own response states.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from google import genai
from google.genai import types

import tokenmeter
from tokenmeter.testing import Capture
from tokenmeter.testing.fakes import FakeProvider, Reply

M = 10**6
HOUR_MTOK = Decimal(3600) * M  # token-seconds in a million token-hours


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    tokenmeter.instrument("gemini")
    yield
    tokenmeter.uninstrument("gemini")


def _client(fp: FakeProvider) -> genai.Client:
    retry = types.HttpRetryOptions(attempts=1)
    return genai.Client(
        api_key="test-key", http_options=types.HttpOptions(base_url=fp.url, api_version="v1beta", retry_options=retry)
    )


def _seconds(later: Any, earlier: Any) -> Decimal:
    return Decimal(str(round((later - earlier).total_seconds(), 6)))


def _span(cap: Capture, operation: str) -> dict[str, Any]:
    (span,) = [s for s in cap.spans if s.name.startswith(operation)]
    return dict(span.attributes or {})


def _config(ttl: str) -> types.CreateCachedContentConfig:
    return types.CreateCachedContentConfig(contents=["the whole handbook"], system_instruction="answer", ttl=ttl)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_creation_bills_the_tokens_at_the_input_rate_and_storage_for_the_ttl(
    fp: FakeProvider, cap: Capture, mode: str
) -> None:
    fp.enqueue(Reply(input_tokens=40_000))
    client = _client(fp)
    if mode == "sync":
        cache = client.caches.create(model="gemini-2.5-flash", config=_config("300s"))
    else:
        cache = asyncio.run(client.aio.caches.create(model="gemini-2.5-flash", config=_config("300s")))
    assert cache.usage_metadata is not None and cache.usage_metadata.total_token_count == 40_000
    ttl = _seconds(cache.expire_time, cache.create_time)
    assert ttl == 300
    attrs = _span(cap, "create_cached_content")
    assert attrs["gen_ai.operation.name"] == "create_cached_content"
    assert attrs["gen_ai.provider.name"] == "gcp.gemini"
    assert attrs["gen_ai.usage.input_tokens"] == 40_000
    assert attrs["tokenmeter.usage.estimated"] is False
    assert attrs["tokenmeter.usage.cache_storage"] == 40_000 * 300  # token-seconds
    assert attrs["tokenmeter.cache.name"] == cache.name
    creation = Decimal("0.3") * 40_000 / M
    storage = Decimal(1) * 40_000 * 300 / HOUR_MTOK
    assert attrs["tokenmeter.cost.unit.cache_storage_usd"] == pytest.approx(float(storage), abs=1e-9)
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(creation + storage), abs=1e-9)
    assert cap.counter("tokenmeter.units", **{"tokenmeter.unit": "cache_storage"}) == 40_000 * 300
    assert cap.counter("tokenmeter.cost", **{"tokenmeter.token.class": "cache_storage"}) == pytest.approx(
        float(storage), abs=1e-9
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_later_expiry_meters_the_extension_and_a_delete_releases_the_rest(
    fp: FakeProvider, cap: Capture, mode: str
) -> None:
    fp.enqueue(Reply(input_tokens=50_000))
    client = _client(fp)

    async def run() -> tuple[Any, Any]:
        created = await client.aio.caches.create(model="gemini-2.5-pro", config=_config("600s"))
        assert created.name is not None
        updated = await client.aio.caches.update(name=created.name, config=types.UpdateCachedContentConfig(ttl="3600s"))
        await client.aio.caches.delete(name=created.name)
        return created, updated

    if mode == "sync":
        created = client.caches.create(model="gemini-2.5-pro", config=_config("600s"))
        assert created.name is not None
        updated = client.caches.update(name=created.name, config=types.UpdateCachedContentConfig(ttl="3600s"))
        client.caches.delete(name=created.name)
    else:
        created, updated = asyncio.run(run())
    added = _seconds(updated.expire_time, created.expire_time)
    assert added > 2000  # 3600 s from the update instead of 600 s from the creation
    update = _span(cap, "update_cached_content")
    assert update["gen_ai.request.model"] == "gemini-2.5-pro"
    token_seconds = round(50_000 * added)
    assert update["tokenmeter.usage.cache_storage"] == token_seconds
    assert update["gen_ai.usage.input_tokens"] == 0  # an update bills no tokens
    assert update["tokenmeter.cost.usd"] == pytest.approx(float(Decimal("4.5") * token_seconds / HOUR_MTOK), abs=1e-9)
    delete = _span(cap, "delete_cached_content")
    assert delete["tokenmeter.cost.usd"] == 0.0
    # Deleted about 3,600 s before its expiry: that storage is released (on the span, counters never go down).
    released = delete["tokenmeter.cache.released_token_seconds"]
    assert 50_000 * 3500 < released <= 50_000 * 3600
    assert delete["tokenmeter.cost.released_usd"] == pytest.approx(
        float(Decimal("4.5") * released / HOUR_MTOK), abs=1e-9
    )
    # The whole metered storage: the TTL at creation plus the extension.
    assert cap.counter("tokenmeter.units", **{"tokenmeter.unit": "cache_storage"}) == 50_000 * 600 + token_seconds


def test_a_shorter_ttl_releases_storage_and_meters_none(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(input_tokens=10_000))
    client = _client(fp)
    created = client.caches.create(model="gemini-2.5-flash", config=_config("7200s"))
    assert created.name is not None
    updated = client.caches.update(name=created.name, config=types.UpdateCachedContentConfig(ttl="60s"))
    update = _span(cap, "update_cached_content")
    assert "tokenmeter.usage.cache_storage" not in update
    assert update["tokenmeter.cache.released_token_seconds"] == round(
        10_000 * _seconds(created.expire_time, updated.expire_time)
    )


def test_storage_of_a_model_without_a_published_storage_rate_is_unpriced_not_zero(
    fp: FakeProvider, cap: Capture
) -> None:
    fp.enqueue(Reply(input_tokens=2_000))
    client = _client(fp)
    client.caches.create(model="gemini-2.0-flash-lite", config=_config("300s"))
    attrs = _span(cap, "create_cached_content")
    assert attrs["tokenmeter.usage.cache_storage"] == 2_000 * 300
    assert attrs["tokenmeter.cost.unpriced_units"] == ("cache_storage",)
    assert "tokenmeter.cost.unit.cache_storage_usd" not in attrs
    # the creation's tokens are priced at the table's input rate (gemini-2.0-flash-lite: $0.075 per million)
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(Decimal("0.075") * 2_000 / M), abs=1e-9)


def test_a_cache_this_process_did_not_create_meters_no_storage(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(input_tokens=1_000))
    client = _client(fp)
    tokenmeter.uninstrument("gemini")
    created = client.caches.create(model="gemini-2.5-flash", config=_config("300s"))  # before instrument()
    tokenmeter.instrument("gemini")
    assert created.name is not None
    client.caches.update(name=created.name, config=types.UpdateCachedContentConfig(ttl="900s"))
    client.caches.delete(name=created.name)
    update, delete = _span(cap, "update_cached_content"), _span(cap, "delete_cached_content")
    assert update["tokenmeter.cache.expiry_unknown"] is True
    assert delete["tokenmeter.cache.expiry_unknown"] is True
    assert "tokenmeter.usage.cache_storage" not in update
    assert update["gen_ai.request.model"] == "gemini-2.5-flash"  # named by the cache the server returned
    assert cap.counter("tokenmeter.units") == 0


def test_a_failed_create_is_an_error_call_and_the_caller_sees_the_sdk_error(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(status=400))
    client = _client(fp)
    with pytest.raises(genai.errors.ClientError):
        client.caches.create(model="gemini-2.5-flash", config=_config("300s"))
    attrs = _span(cap, "create_cached_content")
    assert attrs["error.type"] == "400"
    assert cap.counter("tokenmeter.units") == 0


def test_a_policy_refuses_a_creation_but_never_an_update_or_delete(fp: FakeProvider) -> None:
    from tokenmeter.governance import Policy
    from tokenmeter.testing import capture

    fp.enqueue(Reply(input_tokens=1_000))
    client = _client(fp)
    created = client.caches.create(model="gemini-2.5-pro", config=_config("300s"))  # before the policy
    assert created.name is not None
    policy = Policy(team_tiers={"support": ["small"]})  # gemini-2.5-pro ($1.25 per M input) is "standard"
    with capture(policy=policy) as cap, tokenmeter.attributes(team="support"):
        with pytest.raises(tokenmeter.PolicyViolation):
            client.caches.create(model="gemini-2.5-pro", config=_config("300s"))
        client.caches.update(name=created.name, config=types.UpdateCachedContentConfig(ttl="600s"))
        client.caches.delete(name=created.name)  # the user's cleanup always goes through
        outcomes = {s.name.split(" ")[0]: (s.attributes or {}).get("error.type") for s in cap.spans}
    assert fp.requests[-1].method == "DELETE"
    assert outcomes["update_cached_content"] is None and outcomes["delete_cached_content"] is None
    assert len([r for r in fp.requests if r.method == "POST"]) == 1  # the refused creation was never sent
