"""Google Gen AI SDK (``google-genai``): ``generate_content`` and ``generate_content_stream``, sync and async.

The patches sit on ``Models._generate_content`` / ``_generate_content_stream`` (and the ``AsyncModels``
twins): the one place every public path -- ``generate_content``, ``generate_content_stream``, chats,
automatic function calling and automatic continuation -- sends each HTTP request. Patching the public
methods instead would meter an automatic-function-calling loop of N requests as one call with the last
request's usage. A test pins these names, so an SDK release that renames them fails loudly.

Usage mapping (``usage_metadata``): ``prompt_token_count`` includes ``cached_content_token_count`` and
``tool_use_prompt_token_count`` is billed as input besides it; ``candidates_token_count`` excludes
``thoughts_token_count``. Gemini reports no cache writes. Stream chunks carry usage metadata; the last
one reported is complete.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, NamedTuple

from tokenmeter._call import Request
from tokenmeter._patch import Patcher
from tokenmeter._tokens import count_tokens
from tokenmeter._usage import Usage, with_units
from tokenmeter._wrap import Result, async_wrapper, sync_wrapper

from ._content_out import gemini_delta, gemini_output
from ._fields import count
from ._gemini_caches import CreateCache, DeleteCache, UpdateCache
from ._gemini_embed import EmbedContent, api_error_code, model_kwarg
from ._gemini_usage import derive_missing, search_queries, served_tier, web_search_units, with_modalities

PROVIDER = "gcp.gemini"
"""``gen_ai.provider.name`` of the Gemini Developer API."""

VERTEX_PROVIDER = "gcp.vertex_ai"
"""``gen_ai.provider.name`` of a client in Vertex AI mode (``genai.Client(vertexai=True)``)."""

EXTRA = "gemini"
"""The pip extra that installs the SDK: ``pip install 'tokenmeter[gemini]'``."""

SDK_MODULE = "google.genai"
"""The SDK's import name."""

_MODELS_MODULE = "google.genai.models"
_CACHES_MODULE = "google.genai.caches"


class Counts(NamedTuple):
    """The token counts of one ``usage_metadata``; ``None`` where missing or malformed."""

    prompt: int | None
    cached: int | None
    candidates: int | None
    thoughts: int | None
    tool_use: int | None
    total: int | None = None


_FIELDS: tuple[tuple[str, str], ...] = (
    ("prompt_token_count", "promptTokenCount"),
    ("cached_content_token_count", "cachedContentTokenCount"),
    ("candidates_token_count", "candidatesTokenCount"),
    ("thoughts_token_count", "thoughtsTokenCount"),
    ("tool_use_prompt_token_count", "toolUsePromptTokenCount"),
    ("total_token_count", "totalTokenCount"),
)


def _field(obj: Any, snake: str, camel: str | None = None) -> Any:
    if isinstance(obj, Mapping):
        value = obj.get(snake)
        return obj.get(camel) if value is None and camel else value
    return getattr(obj, snake, None)


def counts_from_metadata(meta: Any) -> Counts | None:
    """Read a ``usage_metadata`` (SDK object, or a dict in snake_case or camelCase); ``None`` when absent."""
    if meta is None:
        return None
    return Counts(*(count(_field(meta, snake, camel)) for snake, camel in _FIELDS))


def usage_from_counts(counts: Counts, *, estimated: bool = False) -> Usage:
    """The disjoint :class:`Usage` of Gemini counts (missing fields count as 0)."""
    prompt = counts.prompt or 0
    cached = counts.cached or 0
    return Usage(
        input=max(prompt - cached, 0) + (counts.tool_use or 0),
        cache_read=cached,
        output=counts.candidates or 0,
        reasoning=counts.thoughts or 0,
        estimated=estimated,
    )


def usage_from_metadata(meta: Any) -> Usage | None:
    """The :class:`Usage` of a ``GenerateContentResponse.usage_metadata``.

    ``None`` when the response reported none (or neither a prompt nor a candidates count is usable);
    a malformed field (negative, not an int) counts as missing. Never raises.
    """
    counts = counts_from_metadata(meta)
    if counts is None or (counts.prompt is None and counts.candidates is None and counts.total is None):
        return None
    derived = derive_missing(counts)
    if derived is not None:
        counts = derived[0]
    elif counts.prompt is None and counts.candidates is None:
        return None
    return with_modalities(usage_from_counts(counts, estimated=derived is not None and not derived[1]), meta)


def model_name(model: Any) -> str:
    """The bare model id of a Gemini model reference.

    ``models/gemini-2.5-flash``, ``publishers/google/models/gemini-2.5-flash``, a full Vertex resource
    name and ``google/gemini-2.5-flash`` all give ``gemini-2.5-flash``; tuned models and endpoints are
    kept whole.
    """
    name = str(model or "")
    if "models/" in name and not name.startswith("tunedModels/"):
        return name.rsplit("models/", 1)[1]
    if name.startswith("google/"):
        return name[len("google/") :]
    return name


# -- requests -----------------------------------------------------------------------------------
def _texts(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _texts(item, out)
    elif value is not None:
        text = _field(value, "text")
        if isinstance(text, str):
            out.append(text)
        parts = _field(value, "parts")
        if parts is not None:
            _texts(parts, out)


def _messages(contents: Any, config: Any) -> list[dict[str, str]]:
    """Chat-shaped messages holding the request's text, for estimating its tokens."""
    messages: list[dict[str, str]] = []
    system: list[str] = []
    _texts(_field(config, "system_instruction", "systemInstruction"), system)
    if system:
        messages.append({"role": "system", "content": " ".join(system)})
    items = contents if isinstance(contents, (list, tuple)) else [contents]
    for item in items:
        texts: list[str] = []
        _texts(item, texts)
        role = _field(item, "role") if not isinstance(item, str) else None
        messages.append({"role": role if isinstance(role, str) else "user", "content": " ".join(texts)})
    return messages


def _server(instance: Any) -> tuple[str | None, int | None]:
    try:
        url = urllib.parse.urlsplit(str(instance._api_client._http_options.base_url))
        return url.hostname, url.port
    except Exception:
        return None, None


class _GenerateContent:
    """``(Async)Models._generate_content`` and ``_generate_content_stream``."""

    output_messages = staticmethod(gemini_output)  # capture_content only
    stream_text = staticmethod(gemini_delta)

    def __init__(self, stream: bool) -> None:
        self.stream = stream

    def request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        config = kwargs.get("config")
        vertex = bool(getattr(getattr(instance, "_api_client", None), "vertexai", False))
        address, port = _server(instance)
        return Request(
            provider=VERTEX_PROVIDER if vertex else PROVIDER,
            model=model_name(kwargs.get("model")),
            operation="generate_content",
            max_tokens=count(_field(config, "max_output_tokens", "maxOutputTokens")),
            messages=_messages(kwargs.get("contents"), config),
            stream=self.stream,
            server_address=address,
            server_port=port,
        )

    def prepare(
        self, request: Request, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return args, model_kwarg(request, kwargs, model_name)

    def error_type(self, error: BaseException) -> str | None:
        return api_error_code(error)  # google-genai raises ClientError / ServerError for every HTTP status

    def result(self, response: Any, request: Request) -> Result | _Responses:
        responses = _Responses(request)
        if self.stream:
            return responses
        responses.on_chunk(response)
        return responses.result()


class _Responses:
    """What one response, or every chunk of a stream, says: usage, text, model, id, finish reasons."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.meta: Any = None
        self.text: list[str] = []
        self.thoughts: list[str] = []
        self.model: str | None = None
        self.response_id: str | None = None
        self.finish: dict[int, str] = {}
        self.seen = False
        self.service_tier: str | None = None
        self.queries: dict[int, int] = {}  # Google Search queries per candidate (grounding)

    def on_chunk(self, chunk: Any) -> bool:
        self.seen = True
        meta = getattr(chunk, "usage_metadata", None)
        if meta is not None:
            self.meta = meta
        self.service_tier = served_tier(chunk) or self.service_tier
        self.queries.update(search_queries(chunk))
        version = getattr(chunk, "model_version", None)
        if isinstance(version, str) and version:
            self.model = model_name(version)
        rid = getattr(chunk, "response_id", None)
        if isinstance(rid, str) and rid:
            self.response_id = rid
        for i, candidate in enumerate(getattr(chunk, "candidates", None) or ()):
            reason = getattr(candidate, "finish_reason", None)
            if reason is not None:
                self.finish[i] = str(getattr(reason, "value", reason)).lower()
            if i == 0:
                self._collect(getattr(getattr(candidate, "content", None), "parts", None) or ())
        return True

    def _collect(self, parts: Any) -> None:
        for part in parts:
            text = getattr(part, "text", None)
            if isinstance(text, str):
                (self.thoughts if getattr(part, "thought", None) else self.text).append(text)
            call = getattr(part, "function_call", None)
            if call is not None:
                self.text.append(f"{getattr(call, 'name', '')} {json.dumps(getattr(call, 'args', None), default=str)}")

    def result(self) -> Result:
        return Result(
            self.usage(),
            response_model=self.model,
            response_id=self.response_id,
            finish_reasons=[self.finish[i] for i in sorted(self.finish)] or None,
        )

    def _estimate_candidates(self) -> int:
        return int(count_tokens("".join(self.text), self.request.model)) if self.text else 0

    def usage(self) -> Usage | None:
        """The reported usage, with what is missing or malformed counted locally (and flagged estimated).

        ``None`` when no response arrived at all (a stream rejected before its first chunk bills nothing).
        """
        if not self.seen:
            return None
        counts = counts_from_metadata(self.meta) or Counts(None, None, None, None, None)
        model = self.request.model
        estimated = False
        # A stream's early chunks report the total so far (prompt only): trust it only once finished.
        final = self.finish or not self.request.stream
        derived = derive_missing(counts, self._estimate_candidates) if final else None
        if derived is not None:
            counts, exact = derived
            estimated = not exact
        if counts.prompt is None:
            counts = counts._replace(prompt=int(count_tokens(self.request.messages or [], model)))
            estimated = True
        if counts.candidates is None and self.text:
            counts = counts._replace(candidates=int(count_tokens("".join(self.text), model)))
            estimated = True
        if counts.thoughts is None and self.thoughts:
            counts = counts._replace(thoughts=int(count_tokens("".join(self.thoughts), model)))
            estimated = True
        usage = with_modalities(usage_from_counts(counts, estimated=estimated), self.meta)
        if self.queries:
            usage = with_units(usage, web_search=web_search_units(self.queries, self.model or model))
        return replace(usage, service_tier=self.service_tier) if self.service_tier else usage


# -- patches ------------------------------------------------------------------------------------
_patcher = Patcher()
_patcher.add(_MODELS_MODULE, "Models._generate_content", sync_wrapper(_GenerateContent(stream=False)))
_patcher.add(_MODELS_MODULE, "Models._generate_content_stream", sync_wrapper(_GenerateContent(stream=True)))
_patcher.add(_MODELS_MODULE, "AsyncModels._generate_content", async_wrapper(_GenerateContent(stream=False)))
_EMBED = EmbedContent(
    lambda instance: (
        VERTEX_PROVIDER if getattr(getattr(instance, "_api_client", None), "vertexai", False) else PROVIDER
    ),
    lambda model: model_name(model),
    lambda instance: _server(instance),
)
_patcher.add(_MODELS_MODULE, "Models._embed_content", sync_wrapper(_EMBED))
_patcher.add(_MODELS_MODULE, "AsyncModels._embed_content", async_wrapper(_EMBED))
# Awaiting AsyncModels._generate_content_stream sends the request and gives an async iterator of chunks.
_patcher.add(_MODELS_MODULE, "AsyncModels._generate_content_stream", async_wrapper(_GenerateContent(stream=True)))
# Explicit context caching: creation (tokens + storage for the TTL), TTL updates and deletion.
for _name, _endpoint in (("create", CreateCache), ("update", UpdateCache), ("delete", DeleteCache)):
    _cache_endpoint = _endpoint(_EMBED._provider_of, _EMBED._model_name, _EMBED._server)
    _patcher.add(_CACHES_MODULE, f"Caches.{_name}", sync_wrapper(_cache_endpoint))
    _patcher.add(_CACHES_MODULE, f"AsyncCaches.{_name}", async_wrapper(_cache_endpoint))


def instrument() -> None:
    """Meter every Gemini / Vertex AI ``generate_content``, ``embed_content`` and ``caches`` create / update /
    delete request (idempotent; import order does not matter)."""
    _patcher.apply()


def uninstrument() -> None:
    """Restore the SDK's original methods (idempotent)."""
    _patcher.restore()


__all__ = [
    "EXTRA",
    "PROVIDER",
    "SDK_MODULE",
    "VERTEX_PROVIDER",
    "Counts",
    "counts_from_metadata",
    "instrument",
    "model_name",
    "uninstrument",
    "usage_from_counts",
    "usage_from_metadata",
]
