"""LiteLLM usage -> disjoint ``Usage`` classes, and model strings -> (provider, bare model): pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from . import NEEDS_LITELLM

litellm = pytest.importorskip("litellm", reason=NEEDS_LITELLM)

from litellm.types.utils import Usage as LiteLLMUsage  # noqa: E402

from tokenmeter import Usage  # noqa: E402
from tokenmeter.integrations.litellm import (  # noqa: E402
    provider_and_model,
    usage_from_embedding,
    usage_from_litellm,
)


def test_openai_shape_is_split_into_disjoint_classes() -> None:
    usage = LiteLLMUsage(
        prompt_tokens=1640,
        completion_tokens=14,
        total_tokens=1654,
        prompt_tokens_details={"cached_tokens": 900, "cache_write_tokens": 700},
        completion_tokens_details={"reasoning_tokens": 5},
    )
    assert usage_from_litellm(usage) == Usage(input=40, cache_read=900, cache_write=700, output=9, reasoning=5)


def test_anthropic_style_cache_fields_stand_in_for_missing_details() -> None:
    raw = {
        "prompt_tokens": 1640,
        "completion_tokens": 9,
        "cache_read_input_tokens": 900,
        "cache_creation_input_tokens": 700,
    }
    assert usage_from_litellm(raw) == Usage(input=40, cache_read=900, cache_write=700, output=9)


@pytest.mark.parametrize(
    "absent", [None, {"prompt_tokens": 0, "completion_tokens": 0}, LiteLLMUsage(prompt_tokens=0, completion_tokens=0)]
)
def test_absent_usage_and_litellm_zero_stand_in_are_none(absent: Any) -> None:
    # LiteLLM fills a response the provider sent without usage with zeros; no chat call has 0 prompt tokens.
    assert usage_from_litellm(absent) is None


@pytest.mark.parametrize("bad", [-4, "9", None, 2.5])
def test_a_malformed_half_counts_zero_and_flags_estimated(bad: Any) -> None:
    assert usage_from_litellm({"prompt_tokens": 20, "completion_tokens": bad}) == Usage(input=20, estimated=True)


def test_embedding_usage() -> None:
    assert usage_from_embedding({"prompt_tokens": 7, "total_tokens": 7}) == Usage(input=7)
    assert usage_from_embedding({"prompt_tokens": 0, "total_tokens": 0}) is None
    assert usage_from_embedding(None) is None


@pytest.mark.parametrize(
    ("model", "kwargs", "expected"),
    [
        ("openai/gpt-4o", {}, ("openai", "gpt-4o", "openai")),
        ("anthropic/claude-sonnet-4-5", {}, ("anthropic", "claude-sonnet-4-5", "anthropic")),
        ("bedrock/anthropic.claude-3-haiku-v1:0", {}, ("aws.bedrock", "anthropic.claude-3-haiku-v1:0", "bedrock")),
        ("gemini/gemini-2.5-flash", {}, ("gcp.gemini", "gemini-2.5-flash", "gemini")),
        ("vertex_ai/gemini-2.5-pro", {}, ("gcp.vertex_ai", "gemini-2.5-pro", "vertex_ai")),
        ("azure/my-deployment", {}, ("azure.ai.openai", "my-deployment", "azure")),
        ("mistral/mistral-large-latest", {}, ("mistral_ai", "mistral-large-latest", "mistral")),
        ("hosted_vllm/llama-3", {}, ("hosted_vllm", "llama-3", "hosted_vllm")),
        ("gpt-4o-mini", {}, ("openai", "gpt-4o-mini", None)),
        ("claude-sonnet-4-5", {}, ("anthropic", "claude-sonnet-4-5", None)),
        ("my-local-model", {"custom_llm_provider": "openai"}, ("openai", "my-local-model", None)),
        ("no-such-model-anywhere", {}, ("litellm", "no-such-model-anywhere", None)),
    ],
)
def test_provider_and_model(model: str, kwargs: dict[str, Any], expected: tuple[str, str, str | None]) -> None:
    assert provider_and_model(model, **kwargs) == expected
