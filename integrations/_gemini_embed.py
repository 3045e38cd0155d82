"""google-genai ``embed_content``: an ``embeddings`` call, 0 output tokens.

The input count is what the response reports: ``usage_metadata.prompt_token_count`` (Gemini API), else
the sum of each embedding's ``statistics.token_count`` (Vertex AI). Without either, the contents are
counted locally and the call is flagged estimated.
"""

from __future__ import annotations

from typing import Any

from tokenmeter._call import Request
from tokenmeter._tokens import count_tokens
from tokenmeter._usage import Usage
from tokenmeter._wrap import Result

from ._fields import count


def _texts(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _texts(item, out)
    elif value is not None:
        text = getattr(value, "text", None) if not isinstance(value, dict) else value.get("text")
        if isinstance(text, str):
            out.append(text)
        parts = getattr(value, "parts", None) if not isinstance(value, dict) else value.get("parts")
        if parts is not None:
            _texts(parts, out)


def embed_usage(response: Any, request: Request) -> Usage:
    """The :class:`Usage` of an ``EmbedContentResponse``."""
    prompt = count(getattr(getattr(response, "usage_metadata", None), "prompt_token_count", None))
    if prompt is not None:
        return Usage(input=prompt)
    total = 0
    embeddings = getattr(response, "embeddings", None) or []
    for embedding in embeddings:
        tokens = getattr(getattr(embedding, "statistics", None), "token_count", None)
        if not isinstance(tokens, (int, float)) or tokens < 0:
            break
        total += int(tokens)
    else:
        if embeddings:
            return Usage(input=total)
    text = request.prompt or ""
    return Usage(input=int(count_tokens(text, request.model)) if text else 0, estimated=True)


def model_kwarg(request: Request, kwargs: dict[str, Any], model_name: Any) -> dict[str, Any]:
    """``kwargs`` with ``model`` replaced by ``request.model`` when a policy rewrote it (only then: the caller's
    reference may be a full resource name that names the same model)."""
    if request.model != model_name(kwargs.get("model")):
        return {**kwargs, "model": request.model}
    return kwargs


def api_error_code(error: BaseException) -> str | None:
    """The HTTP status of google-genai's ``APIError`` (``ClientError`` / ``ServerError``), as ``error.type``."""
    code = getattr(error, "code", None)
    if type(code) is int and any(c.__name__ == "APIError" for c in type(error).__mro__):
        return str(code)
    return None


class EmbedContent:
    """``(Async)Models._embed_content``: contents in, embeddings out."""

    def __init__(self, provider_of: Any, model_name: Any, server: Any) -> None:
        self._provider_of = provider_of
        self._model_name = model_name
        self._server = server

    def request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        texts: list[str] = []
        _texts(kwargs.get("contents"), texts)
        address, port = self._server(instance)
        return Request(
            provider=self._provider_of(instance),
            model=self._model_name(kwargs.get("model")),
            operation="embeddings",
            prompt=" ".join(texts),
            server_address=address,
            server_port=port,
        )

    def prepare(
        self, request: Request, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return args, model_kwarg(request, kwargs, self._model_name)

    def error_type(self, error: BaseException) -> str | None:
        return api_error_code(error)

    def result(self, response: Any, request: Request) -> Result:
        return Result(embed_usage(response, request))
