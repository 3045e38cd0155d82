"""How the corpus calls each wire format through its real SDK, and what the caller sees, normalised.

An outcome is ``("ok", value)`` or ``("raise", exception class, what was seen before)``; values are SDK
objects dumped to JSON text, so two runs compare equal exactly when the caller saw the same thing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import anthropic
import boto3
import openai
from botocore.config import Config
from google import genai
from google.genai import types

from ._corpus import as_json

MESSAGES = [{"role": "user", "content": "Say hello to the hostile server"}]
Outcome = tuple[Any, ...]


def dump(obj: Any) -> Any:
    """A comparable form of what an SDK returned or yielded."""
    if hasattr(obj, "model_dump"):
        exclude = {"sdk_http_response"} if hasattr(obj, "sdk_http_response") else None
        return obj.model_dump(exclude=exclude, warnings=False)
    if isinstance(obj, dict):
        return {k: (v.read() if hasattr(v, "read") else v) for k, v in obj.items() if k != "ResponseMetadata"}
    return obj


def _outcome(run: Callable[[list[Any]], Any]) -> Outcome:
    seen: list[Any] = []
    try:
        value = run(seen)
    except Exception as exc:
        return ("raise", type(exc).__name__, as_json(seen))
    return ("ok", as_json(dump(value)), as_json(seen))


def _iterate(stream: Any, seen: list[Any]) -> None:
    for item in stream:
        seen.append(dump(item))


async def _aiterate(stream: Any, seen: list[Any]) -> None:
    async for item in stream:
        seen.append(dump(item))


# -- per wire format ---------------------------------------------------------------------------------------
def openai_chat(url: str, stream: bool, is_async: bool) -> Outcome:
    if not is_async:
        client = openai.OpenAI(api_key="x", base_url=url + "/v1", max_retries=0)

        def run(seen: list[Any]) -> Any:
            got = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=stream)  # type: ignore[call-overload]
            if stream:
                _iterate(got, seen)
                return None
            return got

        return _outcome(run)
    aclient = openai.AsyncOpenAI(api_key="x", base_url=url + "/v1", max_retries=0)

    async def arun(seen: list[Any]) -> Any:
        got = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=stream)  # type: ignore[call-overload]
        if stream:
            await _aiterate(got, seen)
            return None
        return got

    return _outcome(lambda seen: asyncio.run(arun(seen)))


def openai_responses(url: str, stream: bool, is_async: bool) -> Outcome:
    client = openai.OpenAI(api_key="x", base_url=url + "/v1", max_retries=0)

    def run(seen: list[Any]) -> Any:
        got = client.responses.create(model="gpt-4o", input="Say hello", stream=stream)  # type: ignore[call-overload]
        if stream:
            _iterate(got, seen)
            return None
        return got

    return _outcome(run)


def anthropic_messages(url: str, stream: bool, is_async: bool) -> Outcome:
    kwargs: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": MESSAGES, "stream": stream}
    if not is_async:
        client = anthropic.Anthropic(api_key="x", base_url=url, max_retries=0)

        def run(seen: list[Any]) -> Any:
            got = client.messages.create(**kwargs)
            if stream:
                _iterate(got, seen)
                return None
            return got

        return _outcome(run)
    aclient = anthropic.AsyncAnthropic(api_key="x", base_url=url, max_retries=0)

    async def arun(seen: list[Any]) -> Any:
        got = await aclient.messages.create(**kwargs)
        if stream:
            await _aiterate(got, seen)
            return None
        return got

    return _outcome(lambda seen: asyncio.run(arun(seen)))


def gemini(url: str, stream: bool, is_async: bool) -> Outcome:
    retry = types.HttpRetryOptions(attempts=1)
    client = genai.Client(
        api_key="x", http_options=types.HttpOptions(base_url=url, api_version="v1beta", retry_options=retry)
    )
    if is_async:

        async def arun(seen: list[Any]) -> Any:
            models = client.aio.models
            if stream:
                await _aiterate(await models.generate_content_stream(model="gemini-2.5-flash", contents="Hi"), seen)
                return None
            return await models.generate_content(model="gemini-2.5-flash", contents="Hi")

        outcome = _outcome(lambda seen: asyncio.run(arun(seen)))
        client.close()
        return outcome

    def run(seen: list[Any]) -> Any:
        if stream:
            _iterate(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Say hello"), seen)
            return None
        return client.models.generate_content(model="gemini-2.5-flash", contents="Say hello")

    outcome = _outcome(run)
    client.close()
    return outcome


def _bedrock_client(url: str) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def bedrock_converse(url: str, stream: bool, is_async: bool) -> Outcome:
    client = _bedrock_client(url)
    model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    messages = [{"role": "user", "content": [{"text": "Say hello"}]}]

    def run(seen: list[Any]) -> Any:
        if stream:
            got = client.converse_stream(modelId=model, messages=messages)
            _iterate(got["stream"], seen)
            return None
        return client.converse(modelId=model, messages=messages)

    return _outcome(run)


def bedrock_invoke(url: str, stream: bool, is_async: bool) -> Outcome:
    client = _bedrock_client(url)
    messages = [{"role": "user", "content": "hi"}]
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": messages})

    def run(seen: list[Any]) -> Any:
        model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
        if stream:
            _iterate(client.invoke_model_with_response_stream(modelId=model, body=body)["body"], seen)
            return None
        return client.invoke_model(modelId=model, body=body)

    return _outcome(run)


CALLERS: dict[str, tuple[str, Callable[[str, bool, bool], Outcome], tuple[bool, ...]]] = {
    # wire: (integration, caller, async modes to run)
    "openai-chat": ("openai", openai_chat, (False, True)),
    "openai-responses": ("openai", openai_responses, (False,)),
    "anthropic": ("anthropic", anthropic_messages, (False, True)),
    "gemini": ("gemini", gemini, (False, True)),
    "bedrock-converse": ("bedrock", bedrock_converse, (False,)),
    "bedrock-invoke": ("bedrock", bedrock_invoke, (False,)),
}
