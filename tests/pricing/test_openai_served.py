"""OpenAI responses of real shapes, served over loopback to the real ``openai`` SDK: the served tier,
audio details and OpenRouter's reported cost are metered and priced as published.

Rates (USD per million tokens, OpenAI's pricing page): gpt-5 standard 1.25 in / 0.125 cached / 10 out,
flex 0.625 / 0.0625 / 5, priority 2.5 / 0.25 / 20; gpt-audio text 2.5 in / 10 out, audio 32 in / 64 out.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest

import tokenmeter
from tokenmeter.testing import Capture, capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from ..integration.checks import only_call_span


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    tokenmeter.instrument("openai")
    yield
    tokenmeter.uninstrument("openai")


def _client(fp: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(base_url=fp.url + "/v1", api_key="sk-test", max_retries=0)


def _chat(model: str, usage: dict[str, Any], service_tier: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-rec1",
        "object": "chat.completion",
        "created": 1760000000,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop", "logprobs": None}
        ],
        "usage": usage,
        "system_fingerprint": None,
    }
    if service_tier is not None:
        body["service_tier"] = service_tier
    return body


USAGE = {
    "prompt_tokens": 12000,
    "completion_tokens": 3000,
    "total_tokens": 15000,
    "prompt_tokens_details": {"cached_tokens": 2000, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 1000, "audio_tokens": 0},
}


@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        # 10,000 uncached + 2,000 cached + 3,000 output (1,000 of it reasoning)
        ("flex", Decimal("0.625") * 10000 / 10**6 + Decimal("0.0625") * 2000 / 10**6 + Decimal(5) * 3000 / 10**6),
        ("priority", Decimal("2.5") * 10000 / 10**6 + Decimal("0.25") * 2000 / 10**6 + Decimal(20) * 3000 / 10**6),
        ("default", Decimal("1.25") * 10000 / 10**6 + Decimal("0.125") * 2000 / 10**6 + Decimal(10) * 3000 / 10**6),
        ("scale", Decimal("1.25") * 10000 / 10**6 + Decimal("0.125") * 2000 / 10**6 + Decimal(10) * 3000 / 10**6),
    ],
)
def test_chat_is_priced_at_the_tier_the_response_says_served_it(
    fp: FakeProvider, cap: Capture, tier: str, expected: Decimal
) -> None:
    fp.enqueue(Reply(body=_chat("gpt-5-2025-08-07", USAGE, tier)))
    # Asked for "auto": what was served decides the price.
    reply = _client(fp).chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "hi"}], service_tier="auto"
    )
    assert reply.service_tier == tier
    span = only_call_span(cap)
    attrs = dict(span.attributes or {})
    assert attrs["openai.response.service_tier"] == tier
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(expected), abs=1e-9)
    assert cap.counter("tokenmeter.cost") == pytest.approx(float(expected), abs=1e-9)
    assert attrs["gen_ai.usage.input_tokens"] == 12000 and attrs["gen_ai.usage.output_tokens"] == 3000


def test_streamed_chat_takes_the_tier_from_its_chunks(fp: FakeProvider, cap: Capture) -> None:
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1760000000, "model": "gpt-5"}
    events = [
        {**base, "service_tier": "flex", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]},
        {**base, "service_tier": "flex", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "service_tier": "flex", "choices": [], "usage": USAGE},
    ]
    fp.enqueue(Reply(body=events))
    stream = _client(fp).chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hi"
    attrs = dict(only_call_span(cap).attributes or {})
    expected = Decimal("0.625") * 10000 / 10**6 + Decimal("0.0625") * 2000 / 10**6 + Decimal(5) * 3000 / 10**6
    assert attrs["openai.response.service_tier"] == "flex"
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(expected), abs=1e-9)


def test_responses_api_priority_tier(fp: FakeProvider, cap: Capture) -> None:
    body = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1760000000,
        "status": "completed",
        "model": "gpt-5-2025-08-07",
        "service_tier": "priority",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi.", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 5000,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 500,
            "output_tokens_details": {"reasoning_tokens": 200},
            "total_tokens": 5500,
        },
    }
    fp.enqueue(Reply(body=body))
    _client(fp).responses.create(model="gpt-5", input="hi", service_tier="priority")
    attrs = dict(only_call_span(cap).attributes or {})
    expected = Decimal("2.5") * 5000 / 10**6 + Decimal(20) * 500 / 10**6
    assert attrs["openai.response.service_tier"] == "priority"
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(expected), abs=1e-9)


def test_audio_tokens_are_priced_at_their_own_rates_and_counted_by_modality(fp: FakeProvider, cap: Capture) -> None:
    usage = {
        "prompt_tokens": 1300,
        "completion_tokens": 900,
        "total_tokens": 2200,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 1000},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 700},
    }
    fp.enqueue(Reply(body=_chat("gpt-audio", usage)))
    _client(fp).chat.completions.create(model="gpt-audio", messages=[{"role": "user", "content": "hi"}])
    attrs = dict(only_call_span(cap).attributes or {})
    expected = (
        Decimal("2.5") * 300 / 10**6
        + Decimal(32) * 1000 / 10**6
        + Decimal(10) * 200 / 10**6
        + Decimal(64) * 700 / 10**6
    )
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(float(expected), abs=1e-9)
    assert attrs["tokenmeter.usage.input_audio_tokens"] == 1000
    assert attrs["tokenmeter.usage.output_audio_tokens"] == 700
    assert cap.counter("tokenmeter.cost", **{"tokenmeter.token.class": "input"}) == pytest.approx(
        float(Decimal("2.5") * 300 / 10**6 + Decimal(32) * 1000 / 10**6), abs=1e-9
    )
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.modality": "audio"}) == 1700
    assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.modality": "text"}) == 500


def test_openrouter_reported_cost_is_the_call_cost_with_the_table_estimate_beside_it(fp: FakeProvider) -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "total_tokens": 1100,
        "cost": 0.00351,
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    fp.enqueue(Reply(body={**_chat("openai/gpt-4o", usage), "provider": "OpenAI"}))
    # The loopback server stands for openrouter.ai: a private-gateway glob names it.
    with capture(providers={"127.0.0.1": "openrouter"}) as cap:
        _client(fp).chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}])
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["gen_ai.provider.name"] == "openrouter"
    assert attrs["tokenmeter.cost.source"] == "provider"
    assert attrs["tokenmeter.cost.usd"] == pytest.approx(0.00351, abs=1e-12)
    table = Decimal("2.5") * 1000 / 10**6 + Decimal(10) * 100 / 10**6  # the table's gpt-4o rates
    assert attrs["tokenmeter.cost.table_usd"] == pytest.approx(float(table), abs=1e-9)
    assert cap.counter("tokenmeter.cost") == pytest.approx(0.00351, abs=1e-12)


@pytest.mark.parametrize(
    ("host", "port", "name"),
    [
        ("api.deepseek.com", None, "deepseek"),
        ("api.groq.com", None, "groq"),
        ("api.x.ai", None, "x_ai"),
        ("api.mistral.ai", None, "mistral_ai"),
        ("openrouter.ai", None, "openrouter"),
        ("api.together.xyz", None, "together"),
        ("api.fireworks.ai", None, "fireworks"),
        ("api.perplexity.ai", None, "perplexity"),
        ("localhost", 11434, "ollama"),
        ("api.openai.com", None, None),
    ],
)
def test_well_known_hosts_are_named_as_the_conventions_do(host: str, port: int | None, name: str | None) -> None:
    from tokenmeter._providers import provider_for_host

    assert provider_for_host(host, port) == name


def test_a_configured_gateway_glob_wins_and_bad_input_fails_at_configure() -> None:
    from tokenmeter._providers import provider_for_host

    assert provider_for_host("llm.gw.internal", 8000, (("*.gw.internal", "vllm"),)) == "vllm"
    assert provider_for_host("box", 8080, (("box:8080", "llama.cpp"),)) == "llama.cpp"
    with pytest.raises(tokenmeter.ConfigError, match="providers"):
        tokenmeter.configure(providers={"https://x/": "vllm"})
    with pytest.raises(tokenmeter.ConfigError, match="providers"):
        tokenmeter.configure(providers={"x": "Not A Name"})
    with pytest.raises(tokenmeter.ConfigError, match="providers"):
        tokenmeter.configure(providers="no-equals-sign")


def test_deepseek_through_the_openai_sdk_is_priced_at_deepseeks_off_peak_rate(fp: FakeProvider) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    fp.enqueue(Reply(body=_chat("deepseek-chat", usage)))
    with capture(providers={"127.0.0.1": "deepseek"}) as cap:
        _client(fp).chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "hi"}])
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["gen_ai.provider.name"] == "deepseek"
    assert attrs["tokenmeter.cost.source"].startswith("table:genai-prices")


def test_a_stream_records_its_time_to_first_chunk(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(text="one two three", input_tokens=5, output_tokens=3, chunks=3))
    stream = _client(fp).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "one two three"
    span = only_call_span(cap)
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.request.stream"] is True
    ttfc = attrs["gen_ai.response.time_to_first_chunk"]
    assert 0 < ttfc <= (span.end_time - span.start_time) / 1e9 + 0.01  # measured from just before the span
    points = cap.points("gen_ai.client.operation.time_to_first_chunk")
    assert len(points) == 1 and points[0].count == 1
    # The conventions' recommended attributes on the histograms.
    for name in ("gen_ai.client.operation.duration", "gen_ai.client.token.usage"):
        for point in cap.points(name):
            assert point.attributes["gen_ai.response.model"] == "gpt-4o"
            assert point.attributes["server.address"] == "127.0.0.1"


def test_providers_and_semconv_cost_come_from_the_environment(
    fp: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENMETER_PROVIDERS", "127.0.0.1=groq")
    monkeypatch.setenv("TOKENMETER_SEMCONV_COST", "true")
    fp.enqueue(Reply(body=_chat("llama-3.3-70b-versatile", {"prompt_tokens": 100, "completion_tokens": 10})))
    with capture() as cap:
        _client(fp).chat.completions.create(
            model="llama-3.3-70b-versatile", messages=[{"role": "user", "content": "hi"}]
        )
    attrs = dict(only_call_span(cap).attributes or {})
    assert attrs["gen_ai.provider.name"] == "groq"
    assert attrs["gen_ai.usage.cost.amount"] == attrs["tokenmeter.cost.usd"] > 0
    assert attrs["gen_ai.usage.cost.currency"] == "USD" and attrs["gen_ai.usage.cost.source"] == "local"


def test_batch_output_files_are_metered_per_line_at_the_batch_rate(fp: FakeProvider, cap: Capture) -> None:
    usage = {"prompt_tokens": 10_000, "completion_tokens": 3_000, "total_tokens": 13_000}
    lines = [
        {
            "id": "batch_req_1",
            "custom_id": "r1",
            "response": {"status_code": 200, "request_id": "req_1", "body": _chat("gpt-5-2025-08-07", usage)},
            "error": None,
        },
        {
            "id": "batch_req_2",
            "custom_id": "r2",
            "response": {"status_code": 400, "request_id": "req_2", "body": {"error": {"message": "bad"}}},
            "error": None,
        },
        {
            "id": "batch_req_3",
            "custom_id": "r3",
            "response": {
                "status_code": 200,
                "request_id": "req_3",
                "body": {
                    "object": "list",
                    "model": "text-embedding-3-small",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}],
                    "usage": {"prompt_tokens": 1_000, "total_tokens": 1_000},
                },
            },
            "error": None,
        },
    ]
    fp.enqueue(Reply(body=lines))
    data = _client(fp).files.content("file-out-1").content
    assert data.count(b"\n") == 3  # the caller reads the file unchanged
    spans = [s for s in cap.spans if (s.attributes or {}).get("tokenmeter.batch.output_file_id") == "file-out-1"]
    assert sorted(s.name for s in spans) == ["chat gpt-5-2025-08-07", "embeddings text-embedding-3-small"]
    # gpt-5 batch: 0.625 in / 5 out; text-embedding-3-small batch: 0.01 in.
    expected = Decimal("0.625") * 10_000 / 10**6 + Decimal(5) * 3_000 / 10**6 + Decimal("0.01") * 1_000 / 10**6
    assert cap.counter("tokenmeter.cost") == pytest.approx(float(expected), abs=1e-9)


def test_an_ordinary_file_is_not_metered(fp: FakeProvider, cap: Capture) -> None:
    fp.enqueue(Reply(body=[{"prompt": "hello"}, {"prompt": "world"}]))
    _client(fp).files.content("file-in-1")
    assert cap.counter("tokenmeter.calls") == 0


def _response_body(status: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": "resp_bg_1",
        "object": "response",
        "created_at": 1762084800,  # 2026-11-02 12:00 UTC
        "status": status,
        "background": True,
        "model": "gpt-5-2025-08-07",
        "service_tier": "default",
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def test_background_responses_are_metered_once_when_retrieved_finished(fp: FakeProvider, cap: Capture) -> None:
    usage = {
        "input_tokens": 4_000,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 1_000,
        "output_tokens_details": {"reasoning_tokens": 600},
        "total_tokens": 5_000,
    }
    done = _response_body("completed", usage)
    fp.enqueue(
        Reply(body=_response_body("queued", None)),
        Reply(body=_response_body("in_progress", None)),
        Reply(body=done),
        Reply(body=done),
    )
    client = _client(fp)
    created = client.responses.create(model="gpt-5", input="long job", background=True)
    assert created.status == "queued"
    assert cap.counter("tokenmeter.tokens") == 0 and cap.counter("tokenmeter.calls") == 1
    for _ in range(3):  # polled: in progress, completed, completed again
        client.responses.retrieve("resp_bg_1")
    assert cap.counter("tokenmeter.calls") == 2
    assert cap.counter("tokenmeter.tokens") == 5_000
    expected = Decimal("1.25") * 4_000 / 10**6 + Decimal(10) * 1_000 / 10**6
    assert cap.counter("tokenmeter.cost") == pytest.approx(float(expected), abs=1e-9)
    finished = [s for s in cap.spans if (s.attributes or {}).get("tokenmeter.response.background")]
    assert len(finished) == 1 and (finished[0].attributes or {})["gen_ai.response.id"] == "resp_bg_1"
