"""Scenario driver: ``boto3``'s ``bedrock-runtime`` Converse / ConverseStream against the fake's Bedrock format.

Converse reports cache reads and writes beside ``inputTokens`` and reasoning inside ``outputTokens``
(not separately), and no response model. boto3 has no async client, so the async scenarios skip.
The SigV4 access key id (sent in the ``Authorization`` header) is the suite's secret.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from tokenmeter import Usage
from tokenmeter.testing.fakes import Reply

from . import API_KEY, PROMPT, TOOL_NAME, TOOL_SCHEMA

MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": [{"text": PROMPT}]}]
TOOL_CONFIG: dict[str, Any] = {
    "tools": [{"toolSpec": {"name": TOOL_NAME, "description": "Weather", "inputSchema": {"json": TOOL_SCHEMA}}}]
}


def bedrock_client(url: str, *, max_retries: int = 0) -> Any:
    """A ``bedrock-runtime`` client pointed at the fake (dummy credentials, us-east-1)."""
    config = Config(
        retries={"total_max_attempts": max_retries + 1, "mode": "standard"}, connect_timeout=5, read_timeout=10
    )
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=API_KEY,
        aws_secret_access_key="fake-secret",
        config=config,
    )


def bedrock_expected(reply: Reply) -> Usage:
    """Bedrock's classes of a Reply: cache reads/writes beside input; reasoning inside output."""
    return Usage(
        input=reply.input_tokens or 0,
        cache_read=reply.cached_tokens,
        cache_write=reply.cache_write_tokens,
        output=(reply.output_tokens or 0) + reply.reasoning_tokens,
    )


def converse_kwargs(model: str, *, tools: bool = False) -> dict[str, Any]:
    """Converse arguments sending :data:`PROMPT`."""
    kwargs: dict[str, Any] = {"modelId": model, "messages": MESSAGES, "inferenceConfig": {"maxTokens": 512}}
    if tools:
        kwargs["toolConfig"] = TOOL_CONFIG
    return kwargs


def converse_text(response: dict[str, Any]) -> str:
    """The text blocks of a Converse response."""
    return "".join(block.get("text", "") for block in response["output"]["message"]["content"])


def event_text(event: dict[str, Any]) -> str:
    """The text of one ConverseStream event."""
    return str(event.get("contentBlockDelta", {}).get("delta", {}).get("text", ""))


class BedrockConverseDriver:
    """Drives ``client.converse`` / ``client.converse_stream``."""

    name = "bedrock"
    provider = "aws.bedrock"
    model = "amazon.nova-pro-v1:0"
    cheaper_model = "amazon.nova-micro-v1:0"
    reports_response_model = False
    supports = frozenset(
        {
            "cache_read",
            "cache_write",
            "tools",
            "stream",
            "stream_without_usage",
            "early_break",
            "context_close",
            "sdk_retry",
        }
    )
    rate_limit_error: type[BaseException] = ClientError
    rate_limit_error_type: str = "ThrottlingException"
    server_error: type[BaseException] = ClientError

    def client(self, url: str, *, max_retries: int = 0) -> Any:
        """See :func:`bedrock_client`."""
        return bedrock_client(url, max_retries=max_retries)

    def aclient(self, url: str, *, max_retries: int = 0) -> Any:
        """boto3 has no async client."""
        raise NotImplementedError("boto3 has no async client")

    def call(self, client: Any, *, model: str, stream: bool = False, tools: bool = False) -> str:
        """One ``converse``; ``converse_stream``'s event stream is read to the end."""
        if not stream:
            return converse_text(client.converse(**converse_kwargs(model, tools=tools)))
        response = client.converse_stream(**converse_kwargs(model, tools=tools))
        return "".join(event_text(event) for event in response["stream"])

    async def acall(self, client: Any, *, model: str, stream: bool = False, tools: bool = False) -> str:
        """boto3 has no async client."""
        raise NotImplementedError("boto3 has no async client")

    def stream_break(self, client: Any, *, model: str) -> None:
        """Read one event, then abandon the stream."""
        for _event in client.converse_stream(**converse_kwargs(model))["stream"]:
            break

    def stream_close(self, client: Any, *, model: str) -> None:
        """Read one event, then ``close()`` the event stream (it has no context manager)."""
        stream = client.converse_stream(**converse_kwargs(model))["stream"]
        next(iter(stream))
        stream.close()

    def expected(self, reply: Reply) -> Usage:
        """See :func:`bedrock_expected`."""
        return bedrock_expected(reply)


DRIVER = BedrockConverseDriver()
