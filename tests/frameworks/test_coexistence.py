"""Next to other GenAI instrumentations (opentelemetry-instrumentation-openai-v2, OpenLLMetry's
opentelemetry-instrumentation-openai): metered once, the host unbroken, each ``uninstrument()`` removes only
its own layer in either order, and the semantic-convention histograms are recorded once per call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import require

require("opentelemetry.instrumentation.openai_v2")
require("opentelemetry.instrumentation.openai")

import openai  # noqa: E402
import wrapt  # noqa: E402
from openai.resources.chat.completions import Completions  # noqa: E402
from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry  # noqa: E402
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIv2  # noqa: E402

import tokenmeter  # noqa: E402
from tokenmeter.testing import Capture, capture  # noqa: E402
from tokenmeter.testing.fakes import FakeProvider, Reply  # noqa: E402

from .conftest import tokens  # noqa: E402

OTHERS = {"openai-v2": OpenAIv2, "openllmetry": OpenLLMetry}
SCOPES = {
    "openai-v2": "opentelemetry.instrumentation.openai_v2",
    "openllmetry": "opentelemetry.instrumentation.openai.v1",
}
MESSAGES = [{"role": "user", "content": "hi"}]


def _layers(prefix: str) -> list[tuple[type, str, Any]]:
    """``(class, method, layer)`` of every wrapt layer on openai's resource methods whose wrapper's module
    starts with ``prefix``."""
    found = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("openai.resources") or module is None:
            continue
        for cls in vars(module).values():
            if not isinstance(cls, type) or cls.__module__ != name:
                continue
            for attr, value in list(vars(cls).items()):
                if isinstance(value, wrapt.FunctionWrapper):
                    for layer in wrapt.wrapper_chain(value):
                        wrapper = getattr(layer, "_self_wrapper", None)
                        if str(getattr(wrapper, "__module__", "")).startswith(prefix):
                            found.append((cls, attr, layer))
    return found


# OpenLLMetry 0.62's own uninstrument() removes nothing on the chat / completions / embeddings methods: it
# parses "openai.resources.chat.completions" + "Completions.create" as module "...chat" + attribute
# "completions", then looks up "Completions.create" on that module (standalone, without tokenmeter, too).
OPENLLMETRY_UNWRAP_BROKEN = True


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    yield
    for other in OTHERS.values():
        other().uninstrument()
    tokenmeter.uninstrument()
    assert _layers("tokenmeter") == []  # tokenmeter's layers are gone, wherever they were in the chain
    for cls, attr, layer in _layers("opentelemetry.instrumentation.openai."):  # OpenLLMetry's leftovers
        wrapt.unwrap_object(cls, attr, layer)
    assert not isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper)


def _install(cap: Capture, other: str, order: str) -> Any:
    instrumentor = OTHERS[other]()
    providers = {"tracer_provider": cap.meter.tracer_provider, "meter_provider": cap.meter.meter_provider}
    if order == "tokenmeter-last":
        instrumentor.instrument(**providers)
        tokenmeter.instrument("openai")
    else:
        tokenmeter.instrument("openai")
        instrumentor.instrument(**providers)
    return instrumentor


def _by_scope(cap: Capture, metric: str) -> dict[str, dict[str | None, tuple[int, float]]]:
    """``{scope: {gen_ai.token.type: (count, sum)}}`` of a histogram."""
    out: dict[str, dict[str | None, tuple[int, float]]] = {}
    data = cap.reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name != metric:
                    continue
                for p in m.data.data_points:
                    key = dict(p.attributes or {}).get("gen_ai.token.type")
                    count, total = out.setdefault(sm.scope.name, {}).get(key, (0, 0.0))
                    out[sm.scope.name][key] = (count + p.count, total + p.sum)
    return out


def _calls(fp: FakeProvider) -> int:
    """A plain call and a stream read the way users do (``chunk.choices[0]``); returns the chunks read."""
    client = openai.OpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0)
    fp.enqueue(
        Reply(text="hi there", input_tokens=10, output_tokens=4), Reply(text="a b c d", input_tokens=7, output_tokens=3)
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    n = 0
    for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):  # type: ignore[arg-type]
        assert chunk.choices[0] is not None  # no usage-only chunk reaches the user
        n += 1
    return n


@pytest.mark.parametrize("order", ["tokenmeter-last", "tokenmeter-first"])
@pytest.mark.parametrize("other", list(OTHERS))
def test_metered_once_and_semconv_histograms_recorded_once(
    fp: FakeProvider, cap: Capture, other: str, order: str
) -> None:
    _install(cap, other, order)
    assert _calls(fp) > 0
    assert len(fp.requests) == 2
    assert tokens(cap, "input") == 17 and tokens(cap, "output") == 7  # tokenmeter's own counters: exact
    mine = [s for s in cap.spans if s.instrumentation_scope and s.instrumentation_scope.name == "tokenmeter"]
    theirs = [s for s in cap.spans if s.instrumentation_scope and s.instrumentation_scope.name == SCOPES[other]]
    assert len(mine) == len(theirs) == 2
    # tokenmeter's layer sits beneath theirs: its call span is a child of theirs, whatever the install order
    assert {s.parent.span_id for s in mine if s.parent} == {s.context.span_id for s in theirs}

    usage = _by_scope(cap, "gen_ai.client.token.usage")
    summed = {t: sum(u.get(t, (0, 0))[0] for u in usage.values()) for t in ("input", "output")}
    assert summed == {"input": 2, "output": 2}  # each call's tokens once, summed over every instrumentation
    assert sum(u.get("input", (0, 0))[1] for u in usage.values()) == 17
    assert sum(u.get("output", (0, 0))[1] for u in usage.values()) == 7
    # the stream's usage was hidden from the other instrumentation (tokenmeter asked for it): tokenmeter records it
    assert usage["tokenmeter"] == {"input": (1, 7.0), "output": (1, 3.0)}
    durations = _by_scope(cap, "gen_ai.client.operation.duration")
    assert sum(c for u in durations.values() for c, _ in u.values()) == 2
    assert "tokenmeter" not in durations


@pytest.mark.parametrize("mode", [True, False])
def test_semconv_metrics_option(fp: FakeProvider, mode: bool) -> None:
    with capture(semconv_metrics=mode) as cap:
        _install(cap, "openai-v2", "tokenmeter-last")
        _calls(fp)
        mine = _by_scope(cap, "gen_ai.client.token.usage").get("tokenmeter", {})
        durations = _by_scope(cap, "gen_ai.client.operation.duration").get("tokenmeter", {})
        if mode:
            assert mine == {"input": (2, 17.0), "output": (2, 7.0)} and sum(c for c, _ in durations.values()) == 2
        else:  # never (the hidden stream usage included: the user said another instrumentation owns them)
            assert mine.get("input", (0, 0))[0] <= 1 and not durations
        assert tokens(cap, "input") == 17  # tokenmeter's counters, always


def test_semconv_metrics_alone_is_recorded_and_env_configurable(fp: FakeProvider, cap: Capture) -> None:
    tokenmeter.instrument("openai")
    _calls(fp)
    assert _by_scope(cap, "gen_ai.client.token.usage") == {"tokenmeter": {"input": (2, 17.0), "output": (2, 7.0)}}
    from tokenmeter._config import resolve_options

    assert resolve_options({}, {"TOKENMETER_SEMCONV_METRICS": "false"}).semconv_metrics is False
    assert resolve_options({}, {"TOKENMETER_SEMCONV_METRICS": "AUTO"}).semconv_metrics == "auto"
    with pytest.raises(tokenmeter.ConfigError, match="semconv_metrics"):
        resolve_options({"semconv_metrics": "sometimes"}, {})


@pytest.mark.parametrize("removed_first", ["tokenmeter", "other"])
@pytest.mark.parametrize("order", ["tokenmeter-last", "tokenmeter-first"])
@pytest.mark.parametrize("other", list(OTHERS))
def test_uninstrument_removes_only_its_own_layer(
    fp: FakeProvider, cap: Capture, other: str, order: str, removed_first: str
) -> None:
    instrumentor = _install(cap, other, order)

    def theirs() -> int:
        return sum(1 for s in cap.spans if s.instrumentation_scope and s.instrumentation_scope.name == SCOPES[other])

    if removed_first == "tokenmeter":
        tokenmeter.uninstrument("openai")
        _calls(fp)
        assert tokens(cap, "input") == 0  # tokenmeter is gone...
        assert theirs() == 2  # ...and the other instrumentation still works
    else:
        instrumentor.uninstrument()
        _calls(fp)
        assert tokens(cap, "input") == 17 and tokens(cap, "output") == 7  # tokenmeter still meters
        if other == "openllmetry" and OPENLLMETRY_UNWRAP_BROKEN:
            assert theirs() == 2  # their layer stays (their bug), tokenmeter's stays beneath it
        else:
            assert theirs() == 0
            # alone again, tokenmeter records the semconv histograms itself
            assert _by_scope(cap, "gen_ai.client.token.usage")["tokenmeter"]["input"] == (2, 17.0)
    tokenmeter.uninstrument("openai")
    instrumentor.uninstrument()
    assert _layers("tokenmeter") == []
    if other == "openai-v2":
        assert not isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper)  # the SDK's own method


def test_opentelemetry_instrument_with_the_distro_and_both_instrumentations(tmp_path: Path) -> None:
    require("opentelemetry.distro")
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import json
            import openai
            import tokenmeter
            from tokenmeter.testing.fakes import FakeProvider, Reply

            with FakeProvider() as fp:
                fp.enqueue(Reply(text="hi there", input_tokens=10, output_tokens=4),
                           Reply(text="a b c d", input_tokens=7, output_tokens=3))
                client = openai.OpenAI(base_url=fp.url + "/v1", api_key="x", max_retries=0)
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
                chunks = [c.choices[0].delta.content for c in client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True)]
                ledger = tokenmeter.active().ledger
                from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as V2
                from opentelemetry.instrumentation.openai import OpenAIInstrumentor as LM
                print("RESULT " + json.dumps({
                    "tokens": sum(t.total_tokens for t in ledger.rollup("model").values()),
                    "requests": len(fp.requests),
                    "chunks": len(chunks),
                    "instrumented": tokenmeter.instrumented(),
                    "others": [V2().is_instrumented_by_opentelemetry, LM().is_instrumented_by_opentelemetry],
                }))
            """
        )
    )
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "coexist",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    exe = Path(sys.executable).with_name("opentelemetry-instrument")
    out = subprocess.run([str(exe), sys.executable, str(app)], capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    result = json.loads(line[len("RESULT ") :])
    assert result["requests"] == 2 and result["tokens"] == 24 and result["chunks"] > 0
    assert "openai" in result["instrumented"] and result["others"] == [True, True]
    assert "Traceback" not in out.stderr
