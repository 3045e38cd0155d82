"""The service's one door to an LLM: the real ``openai`` client over HTTP, and a log of every call it tried.

By default the door opens onto :class:`~tokenmeter.testing.fakes.FakeProvider`, a local OpenAI-compatible
server started on 127.0.0.1. Each call is scripted just before it is sent (``fp.enqueue(Reply(...))``) with
realistic usage: prompt tokens counted from the messages, prompt caching as OpenAI does it (prompts of
1,024+ tokens, cached in 128-token blocks once a prefix was seen), reasoning tokens for reasoning models.
Pointed at a real server (``base_url``), nothing is scripted and the server's own usage is metered.

The log (:class:`CallRecord`) is the service's own account of what went over the wire, kept apart from
tokenmeter, so tests can hold tokenmeter's numbers against it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

import tokenmeter
from tokenmeter.testing.fakes import FakeProvider, Reply

CACHE_MIN_TOKENS = 1024  # OpenAI caches prompts from 1,024 tokens ...
CACHE_BLOCK = 128  # ... in blocks of 128 tokens

Message = dict[str, Any]


@dataclass
class CallRecord:
    """One LLM call the service attempted.

    ``outcome`` is ``"ok"``, ``"error"`` or the policy decision that stopped the call before it was sent
    (``"block"``, ``"deny"``). ``usage`` is what the scripted reply put on the wire (``None`` against a
    real server, or when nothing was sent). ``wasted`` is filled in by the service afterwards:
    ``"retried"`` for an attempt that failed validation, ``"failed"`` for calls of a run that was stopped.
    """

    run: int
    team: str | None
    workflow: str | None
    agent: str | None
    attempt: int
    requested_model: str
    model: str
    stream: bool
    outcome: str
    usage: tokenmeter.Usage | None
    loop: tuple[int, int] | None = None
    wasted: str | None = None


@dataclass
class Answer:
    """What the model said: its text and the tools it asked for."""

    text: str
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class LLM:
    """An OpenAI-compatible chat endpoint plus the call log; a local fake unless ``base_url`` is given."""

    def __init__(self, base_url: str | None = None, *, api_key: str = "demo-key", model: str | None = None) -> None:
        self.fake: FakeProvider | None = None
        if base_url is None:
            self.fake = FakeProvider().start()
            base_url = self.fake.url + "/v1"
        self.base_url = base_url
        self.model_override = model
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
        self.calls: list[CallRecord] = []
        self.run = 0
        self.loop: tuple[int, int] | None = None  # (validation loop, attempt) the next calls belong to
        self._loops = 0
        self._seen_prefixes: set[tuple[str, str]] = set()

    def close(self) -> None:
        """Close the client and stop the local fake server."""
        self.client.close()
        if self.fake is not None:
            self.fake.stop()

    def new_loop(self) -> int:
        """A fresh id for one validation-retry loop (see :func:`examples.agent_service.agents.validated`)."""
        self._loops += 1
        return self._loops

    # -- the call --------------------------------------------------------------------------------
    def chat(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        text: str = "",
        tool_call: tuple[str, dict[str, Any]] | None = None,
        reasoning: int = 0,
        stream: bool = False,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> Answer:
        """Send one chat completion. ``text`` / ``tool_call`` / ``reasoning`` script the fake's reply."""
        model = self.model_override or model
        scope = tokenmeter.current_scope()
        record = CallRecord(
            self.run,
            scope.team,
            scope.workflow,
            scope.agent,
            scope.attempt,
            model,
            model,
            stream,
            "ok",
            None,
            self.loop,
        )
        self.calls.append(record)
        reply = self._script(model, messages, text, tool_call, reasoning) if self.fake is not None else None
        if reply is not None and self.fake is not None:
            self.fake.enqueue(reply)
        kwargs: dict[str, Any] = {"model": model, "messages": list(messages), "max_completion_tokens": max_tokens}
        if tools:
            kwargs["tools"] = list(tools)
        try:
            if stream:
                answer = self._stream(kwargs)
            else:
                answer = _answer(self.client.chat.completions.create(**kwargs))
        except tokenmeter.PolicyViolation as refusal:
            record.outcome = refusal.decision
            self._forget_script()
            raise
        except openai.OpenAIError:
            record.outcome = "error"
            self._forget_script()
            raise
        if self.fake is not None:
            sent = self.fake.requests[-1]
            record.model = sent.model or model
            record.usage = _usage(reply) if reply is not None else None
            self.fake.clear()  # keep the fake's request log from growing
        return answer

    def _stream(self, kwargs: dict[str, Any]) -> Answer:
        pieces: list[str] = []
        with self.client.chat.completions.create(stream=True, **kwargs) as chunks:
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)
        return Answer("".join(pieces))

    def _forget_script(self) -> None:
        if self.fake is not None:
            self.fake.clear()  # the call was not sent: its scripted reply must not answer the next one

    # -- scripting the fake ---------------------------------------------------------------------------
    def _script(
        self,
        model: str,
        messages: Sequence[Message],
        text: str,
        tool_call: tuple[str, dict[str, Any]] | None,
        reasoning: int,
    ) -> Reply:
        prompt = int(tokenmeter.count_tokens(list(messages), model))
        cached = self._cached_tokens(model, messages)
        if tool_call is not None:
            output = int(tokenmeter.count_tokens(json.dumps(tool_call[1]), model)) + 8
        else:
            output = max(1, int(tokenmeter.count_tokens(text, model)))
        return Reply(
            text=None if tool_call else text,
            tool_call=tool_call,
            input_tokens=prompt - cached,
            cached_tokens=cached,
            output_tokens=output,
            reasoning_tokens=reasoning,
        )

    def _cached_tokens(self, model: str, messages: Sequence[Message]) -> int:
        """Cached prompt tokens: the longest message prefix sent before to this model, in 128-token blocks."""
        cached = 0
        digest = hashlib.sha256()
        for i in range(len(messages)):
            digest.update(json.dumps(messages[i], sort_keys=True).encode())
            key = (model, digest.hexdigest())
            if key in self._seen_prefixes:
                prefix = int(tokenmeter.count_tokens(list(messages[: i + 1]), model))
                cached = prefix // CACHE_BLOCK * CACHE_BLOCK if prefix >= CACHE_MIN_TOKENS else 0
            self._seen_prefixes.add(key)
        return cached


def _usage(reply: Reply) -> tokenmeter.Usage:
    return tokenmeter.Usage(
        input=reply.input_tokens or 0,
        cache_read=reply.cached_tokens,
        cache_write=reply.cache_write_tokens,
        output=reply.output_tokens or 0,
        reasoning=reply.reasoning_tokens,
    )


def _answer(response: Any) -> Answer:
    message = response.choices[0].message
    calls = [
        (c.function.name, parse_object(c.function.arguments))
        for c in (message.tool_calls or [])
        if getattr(c, "function", None) is not None
    ]
    return Answer(message.content or "", calls)


def parse_object(text: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object (``{}`` when it is not one)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
