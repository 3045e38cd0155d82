"""capture_content: gen_ai.input.messages / gen_ai.output.messages / gen_ai.system_instructions on the
span, in the GenAI conventions' JSON shape, for every integration, plain and streamed; nothing when off."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tokenmeter.testing import Capture, capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from .checks import require
from .drivers import PROMPT, Driver

TEXT = "Hello from the fake meter today."


@pytest.fixture
def openai_instrumented() -> Iterator[None]:
    import tokenmeter

    tokenmeter.instrument("openai")
    try:
        yield
    finally:
        tokenmeter.uninstrument("openai")


CONTENT = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions")


@pytest.fixture
def capon(instrumented: Driver) -> Iterator[Capture]:
    with capture(capture_content=True) as c:
        yield c


def _llm_span(cap: Capture) -> dict[str, object]:
    spans = [s for s in cap.spans if s.attributes and "gen_ai.request.model" in s.attributes]
    assert len(spans) == 1, [s.name for s in cap.spans]
    return dict(spans[0].attributes or {})


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_content_captured(driver: Driver, fp: FakeProvider, capon: Capture, stream: bool) -> None:
    if stream:
        require(driver, "stream")
    fp.enqueue(Reply(text=TEXT, input_tokens=12, output_tokens=6))
    assert driver.call(driver.client(fp.url), model=driver.model, stream=stream) == TEXT
    attrs = _llm_span(capon)
    inputs = json.loads(str(attrs["gen_ai.input.messages"]))
    user = [m for m in inputs if m["role"] == "user"]
    assert user and {"type": "text", "content": PROMPT} in user[-1]["parts"], inputs
    outputs = json.loads(str(attrs["gen_ai.output.messages"]))
    assert outputs[0]["role"] == "assistant"
    assert "".join(p["content"] for p in outputs[0]["parts"] if p["type"] == "text") == TEXT
    assert isinstance(outputs[0]["finish_reason"], str)


def test_nothing_captured_by_default(instrumented: Driver, fp: FakeProvider, cap: Capture) -> None:
    driver = instrumented
    fp.enqueue(Reply(text=TEXT, input_tokens=12, output_tokens=6))
    driver.call(driver.client(fp.url), model=driver.model)
    assert not set(CONTENT) & set(_llm_span(cap))


def test_truncated_and_env(instrumented: Driver, fp: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    driver = instrumented
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    monkeypatch.setenv("TOKENMETER_CAPTURE_CONTENT_MAX_CHARS", "20")
    with capture() as c:
        fp.enqueue(Reply(text=TEXT, input_tokens=12, output_tokens=6))
        driver.call(driver.client(fp.url), model=driver.model)
        attrs = _llm_span(c)
    assert len(str(attrs["gen_ai.input.messages"])) == 20
    assert len(str(attrs["gen_ai.output.messages"])) == 20
    assert attrs["tokenmeter.content.truncated"] is True


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_openai_responses_content(fp: FakeProvider, stream: bool, openai_instrumented: None) -> None:
    openai = pytest.importorskip("openai")

    with capture(capture_content=True) as c:
        client = openai.OpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0)
        fp.enqueue(Reply(text=TEXT, input_tokens=12, output_tokens=6))
        if stream:
            events = list(client.responses.create(model="gpt-4o", input="What is the weather?", stream=True))
            assert events[-1].type == "response.completed"
        else:
            assert client.responses.create(model="gpt-4o", input="What is the weather?").output_text == TEXT
        attrs = _llm_span(c)
    assert json.loads(str(attrs["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "What is the weather?"}]}
    ]
    out = json.loads(str(attrs["gen_ai.output.messages"]))
    assert out[0]["role"] == "assistant"
    assert "".join(p["content"] for p in out[0]["parts"] if p["type"] == "text") == TEXT


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
def test_stream_text_read_only_when_capturing(
    fp: FakeProvider, monkeypatch: pytest.MonkeyPatch, on: bool, openai_instrumented: None
) -> None:
    """Zero cost when off: the per-chunk content reader is never called."""
    openai = pytest.importorskip("openai")
    from tokenmeter.integrations import openai as integration

    seen: list[object] = []
    original = integration._Chat.stream_text

    def counting(chunk: object) -> str | None:
        seen.append(chunk)
        return original(chunk)

    monkeypatch.setattr(integration._Chat, "stream_text", staticmethod(counting))
    with capture(capture_content=on) as c:
        client = openai.OpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0)
        fp.enqueue(Reply(text=TEXT, input_tokens=12, output_tokens=6))
        chunks = list(
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True)
        )
        attrs = _llm_span(c)
    assert chunks
    assert (len(seen) > 0) is on
    assert ("gen_ai.output.messages" in attrs) is on
