"""Exporter down: flush and shutdown honour their timeout and say False; the user's calls are unaffected.

Two kinds of dead collector on loopback: one that accepts TCP and never answers (a hung collector or
a black-holing proxy) and a port where nothing listens (connection refused, retried with backoff by
the OTLP exporter). Before, ``force_flush(timeout_millis=2000)`` took 12.9 s and returned True.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

import tokenmeter
from tokenmeter.testing.fakes import FakeProvider

from .otlp_sink import Blackhole, closed_port_url

openai = pytest.importorskip("openai")

SLACK_S = 1.0  # scheduling noise on a loaded 2-core CI machine


@pytest.fixture(params=["blackhole", "refused"])
def dead_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "blackhole":
        hole = Blackhole()
        yield hole.url
        hole.close()
    else:
        yield closed_port_url()


def _calls(fake: FakeProvider, n: int) -> list[float]:
    client = openai.OpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0)
    took = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        took.append(time.perf_counter() - t)
        assert r.choices[0].message.content and r.usage is not None
    return took


def _configure(endpoint: str, **extra: Any) -> tokenmeter.Meter:
    meter = tokenmeter.configure(
        service_name="down", exporter="otlp", endpoint=endpoint, metric_export_interval_ms=200, **extra
    )
    tokenmeter.instrument("openai")
    return meter


def test_calls_unaffected_and_flush_bounded(fake: FakeProvider, dead_endpoint: str) -> None:
    meter = _configure(dead_endpoint)
    took = _calls(fake, 30)
    # The exporter's own timeout is 10 s: a call waiting on it would show here.
    assert max(took) < 2.0, max(took)
    assert sum(t.calls for t in meter.ledger.rollup("model").values()) == 30  # metered all the same
    for timeout_ms in (300, 1000):
        t = time.monotonic()
        ok = meter.force_flush(timeout_millis=timeout_ms)
        elapsed = time.monotonic() - t
        assert ok is False
        assert elapsed <= timeout_ms / 1000 + SLACK_S, elapsed
    t = time.monotonic()
    assert tokenmeter.shutdown(800) is False
    assert time.monotonic() - t <= 0.8 + SLACK_S
    assert tokenmeter.active() is None


def test_unconfigure_bounded(fake: FakeProvider, dead_endpoint: str) -> None:
    _configure(dead_endpoint, shutdown_timeout_ms=700)
    _calls(fake, 3)
    t = time.monotonic()
    tokenmeter.unconfigure()
    assert time.monotonic() - t <= 0.7 + SLACK_S


def test_flush_true_when_collector_answers(fake: FakeProvider, sink: Any) -> None:
    meter = _configure(sink.url)
    _calls(fake, 2)
    assert meter.force_flush(timeout_millis=5000) is True
    assert sum(sink.spans.values()) == 2


EXIT_SCRIPT = """
import time, openai, tokenmeter
tokenmeter.configure(service_name="down", exporter="otlp", endpoint={endpoint!r}, shutdown_timeout_ms={ms})
tokenmeter.instrument("openai")
c = openai.OpenAI(base_url={fake!r} + "/v1", api_key="x", max_retries=0)
c.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
print("EXITING", time.time(), flush=True)
"""


@pytest.mark.parametrize("ms", [1000])
def test_interpreter_exit_bounded(fake: FakeProvider, dead_endpoint: str, ms: int) -> None:
    script = textwrap.dedent(EXIT_SCRIPT.format(endpoint=dead_endpoint, ms=ms, fake=fake.url))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    end = time.time()
    assert proc.returncode == 0, proc.stderr[-2000:]
    started = float(proc.stdout.split("EXITING")[1].split()[0])
    assert end - started <= ms / 1000 + SLACK_S + 0.5, end - started  # + interpreter teardown
