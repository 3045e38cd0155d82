"""Fork under load: children forked while parent threads make metered calls never hang, and export.

Before tokenmeter reset its locks in forked children, 1-4 children in 40 hung forever at their first
metered call on a lock another parent thread held at the fork (memory-store reserve lock, rollup lock,
``register_lock``). Every child here must finish within its timeout, and each child's own calls (and only
those) must reach the collector under the child's ``service.instance.id``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import tokenmeter
from tokenmeter.testing.fakes import FakeProvider

from .otlp_sink import OtlpSink

openai = pytest.importorskip("openai")

CHILD_CALLS = 3
ROUNDS = 10
PER_ROUND = 4
CHILD_TIMEOUT_S = 30.0


def _budgets() -> list[tokenmeter.Budget]:
    # A budget puts every call through the store's reserve lock: the lock children used to inherit held.
    return [tokenmeter.Budget("all", scope={}, limit_usd=1_000_000, window="1d")]


def _client(url: str) -> Any:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)


def _chat(client: Any) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi there"}])


def _instance() -> str:
    meter = tokenmeter.active()
    assert meter is not None
    return str(meter.tracer_provider.resource.attributes["service.instance.id"])


def _child(url: str, out: str) -> None:
    Path(out, str(os.getpid())).write_text(_instance())
    client = _client(url)
    with tokenmeter.workflow("child", team="kids"):
        for _ in range(CHILD_CALLS):
            _chat(client)
    # No explicit flush: multiprocessing children leave through os._exit; tokenmeter's exit finalizer exports.


def _busy(url: str, stop: threading.Event, done: list[int]) -> None:
    client = _client(url)
    while not stop.is_set():
        with tokenmeter.workflow("parent", team="adults"):
            _chat(client)
        done[0] += 1


def test_multiprocessing_fork_while_parent_threads_call(fake: FakeProvider, sink: OtlpSink, tmp_path: Path) -> None:
    tokenmeter.configure(
        service_name="forky",
        exporter="otlp",
        endpoint=sink.url,
        budgets=_budgets(),
        metric_export_interval_ms=3_600_000,
    )
    tokenmeter.instrument("openai")
    stop = threading.Event()
    done = [0]
    threads = [threading.Thread(target=_busy, args=(fake.url, stop, done), daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    ctx = multiprocessing.get_context("fork")
    parent = _instance()
    pids: list[int] = []
    hung: list[int] = []
    t0 = time.monotonic()
    try:
        warmup = time.monotonic() + 30
        while done[0] < 8 and time.monotonic() < warmup:  # the parent threads are mid-call at the forks
            time.sleep(0.01)
        assert done[0] >= 8, "the parent threads' calls do not go through"
        for _ in range(ROUNDS):
            procs = [ctx.Process(target=_child, args=(fake.url, str(tmp_path))) for _ in range(PER_ROUND)]
            for p in procs:
                p.start()
            for p in procs:
                p.join(CHILD_TIMEOUT_S)
                if p.is_alive():
                    hung.append(p.pid or 0)
                    os.kill(p.pid or 0, signal.SIGKILL)
                    p.join()
                else:
                    assert p.exitcode == 0, f"child {p.pid} exited {p.exitcode}"
                pids.append(p.pid or 0)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        tokenmeter.shutdown(2_000)
    elapsed = time.monotonic() - t0
    assert not hung, f"{len(hung)}/{len(pids)} children hung"
    assert done[0] > 8
    # Each child exported exactly its own calls, under its own service.instance.id.
    with sink.lock:
        spans, calls = dict(sink.spans), dict(sink.calls)
    # The parent's final export holds exactly the parent's calls (none of the children's).
    assert calls.get(parent) == done[0], (calls.get(parent), done[0])
    instances = {(tmp_path / str(pid)).read_text() for pid in pids}
    assert len(instances) == len(pids) and parent not in instances
    for inst in instances:
        # CHILD_CALLS chat spans + the workflow span
        assert spans.get(inst) == CHILD_CALLS + 1, (inst, spans.get(inst))
        assert calls.get(inst) == CHILD_CALLS, (inst, calls.get(inst))
    print(f"\n{len(pids)} children forked under load, 0 hung, all exported; {elapsed:.1f}s; parent calls {done[0]}")


def test_bare_fork_child_calls_shutdown(fake: FakeProvider, sink: OtlpSink, tmp_path: Path) -> None:
    """A bare os.fork() child that leaves through os._exit exports when it calls tokenmeter.shutdown()."""
    tokenmeter.configure(service_name="forky", exporter="otlp", endpoint=sink.url, metric_export_interval_ms=3_600_000)
    tokenmeter.instrument("openai")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            (tmp_path / "child").write_text(_instance())
            _chat(_client(fake.url))
            code = 0 if tokenmeter.shutdown(5_000) else 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while time.monotonic() < deadline:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("forked child hung")
    inst = (tmp_path / "child").read_text()
    assert os.waitstatus_to_exitcode(status) == 0
    assert sink.spans.get(inst) == 1
    assert sink.calls.get(inst) == 1


GUNICORN_APP = """
import openai, tokenmeter
tokenmeter.configure(service_name="gunicorn-app", exporter="otlp", endpoint="{sink}",
                     metric_export_interval_ms=3_600_000)
tokenmeter.instrument("openai")
_client = None

def app(environ, start_response):
    global _client
    if _client is None:
        _client = openai.OpenAI(base_url="{fake}/v1", api_key="x", max_retries=0)
    with tokenmeter.workflow("web", team="web"):
        _client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
    body = tokenmeter.active().tracer_provider.resource.attributes["service.instance.id"].encode()
    start_response("200 OK", [("content-type", "text/plain"), ("content-length", str(len(body)))])
    return [body]
"""

GUNICORN_CONF = """
import tokenmeter

preload_app = True  # tokenmeter is configured in the master, before the workers fork
workers = 3
bind = "127.0.0.1:{port}"
graceful_timeout = 10

def worker_exit(server, worker):
    tokenmeter.shutdown()
"""


def test_gunicorn_prefork_workers_export(fake: FakeProvider, sink: OtlpSink, tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    import socket
    import subprocess
    import urllib.request

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    (tmp_path / "tmapp.py").write_text(GUNICORN_APP.format(sink=sink.url, fake=fake.url))
    (tmp_path / "gconf.py").write_text(GUNICORN_CONF.format(port=port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(tmp_path / "gconf.py"), "tmapp:app"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    served: dict[str, int] = {}

    def get() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
                return str(r.read().decode())
        except OSError:
            time.sleep(0.1)
            return None

    try:
        from concurrent.futures import ThreadPoolExecutor

        deadline = time.monotonic() + 60
        n = 0
        # Requests go out three at a time (one per worker) until 30 were served by at least two workers: the
        # kernel may hand sequential requests to the same idle worker, so one at a time can leave the others idle.
        with ThreadPoolExecutor(3) as pool:
            while (n < 30 or len(served) < 2) and n < 300 and time.monotonic() < deadline:
                for worker in pool.map(lambda _: get(), range(3)):
                    if worker is not None:
                        served[worker] = served.get(worker, 0) + 1
                        n += 1
        assert n >= 30, "gunicorn did not serve"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            pytest.fail("gunicorn did not stop: " + out.decode(errors="replace")[-2000:])
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    with sink.lock:
        spans, calls = dict(sink.spans), dict(sink.calls)
    assert len(served) >= 2, served  # requests reached more than one forked worker
    for inst, count in served.items():
        assert calls.get(inst) == count, (inst, count, calls)
        assert spans.get(inst) == 2 * count, (inst, count, spans)  # chat + workflow span per request


def _sqlite_child(url: str) -> None:
    client = _client(url)
    for _ in range(CHILD_CALLS):
        _chat(client)


def test_fork_with_application_providers_and_sqlite_store(fake: FakeProvider, tmp_path: Path) -> None:
    """Providers the application owns, a shared SQLite budget store, an idle parent (a pre-fork master):
    children never hang and every child's spend is charged to the one store.

    (A child forked while a parent thread is inside an SQLite transaction cannot open that file: SQLite's
    per-process lock table is copied mid-transaction. Such children fail open: see README.)
    """
    from tokenmeter.governance import open_store
    from tokenmeter.testing import capture

    store = f"sqlite:///{tmp_path}/budgets.db"
    budget = tokenmeter.Budget("all", scope={}, limit_tokens=10**9, window="1d")
    with capture(budgets=[budget], store=store) as cap:
        tokenmeter.instrument("openai")
        _chat(_client(fake.url))  # the parent has used the store before forking
        per_call = cap.counter("tokenmeter.tokens")
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=_sqlite_child, args=(fake.url,)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(CHILD_TIMEOUT_S)
            alive = p.is_alive()
            if alive:
                p.kill()
                p.join()
            assert not alive and p.exitcode == 0
    reader = open_store(store)
    now = time.time()
    try:
        spent = reader.state(budget.key(now), now).spent_tokens
    finally:
        reader.close()
    assert spent == per_call * (1 + 6 * CHILD_CALLS), (spent, per_call)


_LATE_IMPORT = """
import sys
import tokenmeter

assert "multiprocessing" not in sys.modules, "this test needs multiprocessing imported after configure()"
tokenmeter.configure(ledger=sys.argv[1], exporter="none", ledger_flush_interval=30)
import multiprocessing  # after configure(): the child still flushes its ledger rows on its way out


def child() -> None:
    with tokenmeter.attributes(team="child"):
        tokenmeter.record("openai", "gpt-4o-mini", tokenmeter.Usage(input=3))


if __name__ == "__main__":
    p = multiprocessing.get_context("fork").Process(target=child)
    p.start()
    p.join(30)
    sys.exit(p.exitcode)
"""


def test_multiprocessing_imported_after_configure_still_flushes_its_children(tmp_path: Path) -> None:
    from tokenmeter.finops._sqlite import SQLiteReader
    from tokenmeter.finops.report import build_report

    script = tmp_path / "late.py"
    script.write_text(_LATE_IMPORT)
    path = tmp_path / "ledger.db"
    done = subprocess.run(
        [sys.executable, str(script), f"sqlite:///{path}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    report = build_report(SQLiteReader(str(path)), by=("team",))
    assert {g.name: g.calls for g in report.by["team"]} == {"child": 1}
