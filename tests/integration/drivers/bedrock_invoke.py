"""Scenario driver: ``boto3``'s ``invoke_model`` / ``invoke_model_with_response_stream`` with Anthropic bodies.

The model id is a cross-region inference profile (``us.anthropic...``). The body is Anthropic's
Messages format; stream chunks are base64 JSON Anthropic events, the last one with Bedrock's
``amazon-bedrock-invocationMetrics``. Other body families (Nova, Llama, Cohere) are covered in
``test_bedrock_specific.py``.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from tokenmeter import Usage
from tokenmeter.testing.fakes import Reply

from . import PROMPT, TOOL_NAME, TOOL_SCHEMA
from .bedrock_converse import bedrock_client, bedrock_expected


def invoke_body(*, tools: bool = False) -> str:
    """An Anthropic Messages body sending :data:`PROMPT`."""
    body: dict[str, Any] = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 512,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    if tools:
        body["tools"] = [{"name": TOOL_NAME, "description": "Weather", "input_schema": TOOL_SCHEMA}]
    return json.dumps(body)


def chunk_event(event: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic event inside one stream chunk."""
    return dict(json.loads(event["chunk"]["bytes"]))


def chunk_text(event: dict[str, Any]) -> str:
    """The text of one stream chunk."""
    inner = chunk_event(event)
    if inner.get("type") == "content_block_delta":
        return str(inner["delta"].get("text", ""))
    return ""


class BedrockInvokeDriver:
    """Drives ``client.invoke_model`` / ``client.invoke_model_with_response_stream`` (Anthropic bodies)."""

    name = "bedrock"
    provider = "aws.bedrock"
    model = "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
    cheaper_model = "us.anthropic.claude-3-haiku-20240307-v1:0"
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
        """One invoke; the response body (or event stream) is read to the end."""
        if not stream:
            response = client.invoke_model(modelId=model, body=invoke_body(tools=tools))
            message = json.loads(response["body"].read())
            return "".join(b.get("text", "") for b in message["content"] if b["type"] == "text")
        response = client.invoke_model_with_response_stream(modelId=model, body=invoke_body(tools=tools))
        return "".join(chunk_text(event) for event in response["body"])

    async def acall(self, client: Any, *, model: str, stream: bool = False, tools: bool = False) -> str:
        """boto3 has no async client."""
        raise NotImplementedError("boto3 has no async client")

    def stream_break(self, client: Any, *, model: str) -> None:
        """Read one chunk, then abandon the stream."""
        for _event in client.invoke_model_with_response_stream(modelId=model, body=invoke_body())["body"]:
            break

    def stream_close(self, client: Any, *, model: str) -> None:
        """Read one chunk, then ``close()`` the event stream."""
        stream = client.invoke_model_with_response_stream(modelId=model, body=invoke_body())["body"]
        next(iter(stream))
        stream.close()

    def expected(self, reply: Reply) -> Usage:
        """Anthropic bodies report what Converse does: see :func:`bedrock_expected`."""
        return bedrock_expected(reply)


DRIVER = BedrockInvokeDriver()
