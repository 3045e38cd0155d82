"""Issue 13 defect 3: next to opentelemetry-instrumentation-openai-v2, in either instrumentation order.

When openai-v2 patched first, tokenmeter receives openai-v2's stream wrapper instead of the SDK's stream:
it must still recognise the stream, hide the usage-only chunk it asked for, and meter exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import tokenmeter
from tokenmeter import Usage
from tokenmeter.testing import Capture
from tokenmeter.testing.fakes import FakeProvider, Reply

from .checks import assert_metered
from .drivers.openai import DRIVER, MESSAGES

openai_v2 = pytest.importorskip("opentelemetry.instrumentation.openai_v2")

TEXT = "Hello from the fake meter today."
REPLY = Reply(text=TEXT, input_tokens=30, cached_tokens=200, output_tokens=6, reasoning_tokens=40, chunks=3)
EXPECTED = Usage(input=30, cache_read=200, output=6, reasoning=40)


@pytest.fixture(params=["openai-v2 first", "tokenmeter first"])
def both(request: pytest.FixtureRequest, cap: Capture) -> Iterator[str]:
    other = openai_v2.OpenAIInstrumentor()
    if request.param == "openai-v2 first":
        other.instrument()
        tokenmeter.instrument("openai")
        yield request.param
        tokenmeter.uninstrument("openai")
        other.uninstrument()
    else:
        tokenmeter.instrument("openai")
        other.instrument()
        yield request.param
        other.uninstrument()
        tokenmeter.uninstrument("openai")


def test_a_stream_wrapped_by_openai_v2_is_metered_exactly_and_hides_the_usage_chunk(
    fp: FakeProvider, cap: Capture, both: str
) -> None:
    fp.enqueue(REPLY)
    stream = DRIVER.client(fp.url).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == TEXT  # no IndexError
    assert_metered(cap, provider="openai", model="gpt-4o", usage=EXPECTED, stream=True)


def test_async_stream_wrapped_by_openai_v2(fp: FakeProvider, cap: Capture, both: str) -> None:
    async def run() -> str:
        client = DRIVER.aclient(fp.url)
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])

    fp.enqueue(REPLY)
    assert asyncio.run(run()) == TEXT
    assert_metered(cap, provider="openai", model="gpt-4o", usage=EXPECTED, stream=True)


def test_plain_calls_are_metered_once(fp: FakeProvider, cap: Capture, both: str) -> None:
    fp.enqueue(REPLY)
    reply = DRIVER.client(fp.url).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert reply.choices[0].message.content == TEXT
    assert_metered(cap, provider="openai", model="gpt-4o", usage=EXPECTED)
