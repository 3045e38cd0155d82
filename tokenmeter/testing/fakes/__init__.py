"""A loopback fake LLM provider that speaks the real wire formats, for tests and demos.

``FakeProvider`` serves OpenAI (chat completions, Responses, embeddings), Azure
OpenAI, Anthropic Messages, AWS Bedrock Runtime (Converse / InvokeModel, with
real event-stream framing) and Google Gemini on ``127.0.0.1``, so the real
client libraries can be driven over real HTTP::

    from tokenmeter.testing.fakes import FakeProvider, Reply

    with FakeProvider() as fp:
        fp.enqueue(Reply(input_tokens=10, cached_tokens=90, output_tokens=5))
        client = openai.OpenAI(base_url=fp.url + "/v1", api_key="x")
        client.chat.completions.create(model="gpt-4o", messages=[...])
        assert fp.requests[0].provider == "openai"

Only the standard library is used; nothing here imports a provider SDK.
"""

from ._common import Provider, ReceivedRequest, Reply, UsageMode
from ._server import FakeProvider

__all__ = ["FakeProvider", "Provider", "ReceivedRequest", "Reply", "UsageMode"]
