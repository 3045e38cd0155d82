"""A real LLM (SmolLM2-135M on llama.cpp), real clients, real HTTP: metered tokens equal what the server reports.

Nothing here is scripted: the server computes usage itself, so these tests check the integrations against
a usage producer that is not ours.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

import tokenmeter
from tokenmeter.testing import Capture

MODEL = "smollm2-135m"
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name three colours of the rainbow."},
]


@pytest.fixture(autouse=True)
def instrumented(cap: Capture) -> Iterator[None]:
    tokenmeter.instrument("openai", "anthropic")
    try:
        yield
    finally:
        tokenmeter.uninstrument("openai", "anthropic")


def _tokens(cap: Capture, cls: str) -> float:
    return cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": cls})


def test_openai_chat_metered_exactly_as_the_server_reports(real_llm: str, cap: Capture) -> None:
    client = openai.OpenAI(base_url=real_llm + "/v1", api_key="local")
    with tokenmeter.workflow("real", team="lab"):
        response = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=24)  # type: ignore[arg-type]
    usage = response.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert _tokens(cap, "input") == usage.prompt_tokens
    assert _tokens(cap, "output") == usage.completion_tokens
    span = cap.span(f"chat {MODEL}")
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert attrs["tokenmeter.usage.estimated"] is False
    assert attrs["tokenmeter.cost.source"] == "unpriced"  # a local model has no price: never $0
    assert cap.counter("tokenmeter.tokens.unpriced") == usage.total_tokens


def test_openai_stream_gets_usage_injected_and_equals_the_plain_call(real_llm: str, cap: Capture) -> None:
    client = openai.OpenAI(base_url=real_llm + "/v1", api_key="local")
    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=24)  # type: ignore[arg-type]
    text = ""
    for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=24, stream=True):  # type: ignore[arg-type]
        text += chunk.choices[0].delta.content or ""  # the injected usage-only chunk is hidden
    assert text == plain.choices[0].message.content  # deterministic server
    assert plain.usage is not None
    assert _tokens(cap, "input") == 2 * plain.usage.prompt_tokens
    assert _tokens(cap, "output") == 2 * plain.usage.completion_tokens
    streamed = [s for s in cap.spans if dict(s.attributes or {}).get("gen_ai.request.stream")]
    assert len(streamed) == 1 and dict(streamed[0].attributes or {})["tokenmeter.usage.estimated"] is False


def test_anthropic_messages_and_stream_metered_exactly(real_llm: str, cap: Capture) -> None:
    client = anthropic.Anthropic(base_url=real_llm, api_key="local")
    message = client.messages.create(
        model=MODEL, max_tokens=24, system="You are terse.", messages=[{"role": "user", "content": "Say hi."}]
    )
    with client.messages.stream(
        model=MODEL, max_tokens=24, system="You are terse.", messages=[{"role": "user", "content": "Say hi."}]
    ) as stream:
        final = stream.get_final_message()
    for reported in (message.usage, final.usage):
        assert reported.input_tokens > 0 and reported.output_tokens > 0
    assert _tokens(cap, "input") == message.usage.input_tokens + final.usage.input_tokens
    assert _tokens(cap, "output") == message.usage.output_tokens + final.usage.output_tokens
    assert cap.counter("tokenmeter.calls", **{"gen_ai.provider.name": "anthropic"}) == 2
