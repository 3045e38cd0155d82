"""Where tokenmeter's instructions per call go: ``instructions.py`` with one part of the call path switched off.

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \\
        --callgrind-out-file=/dev/null ../.venv/bin/python instructions_ablate.py MODE N PART[,PART...]

Sets up the ``tokenmeter`` contender like ``instructions.py``, then replaces PART (below) by the least that
keeps the call path running, warms up and makes N calls inside ``functools.reduce``. The drop from the
unablated count, divided by N, is what that part costs per call (instructions, load-independent). Ablated
runs emit less: they are measurements, never a configuration.

Parts: ``ledger`` (the ledger append), ``metrics`` (registers + customers; the three semconv histogram
points are still recorded), ``end_attrs`` (the span's end attributes; the span still ends), ``start_attrs``
(the span starts with no attributes; tier, gate, semconv detection skipped), ``price`` (pricing: unpriced),
``gate`` (the rollup/budget gate), ``raw`` (the ``SyncAPIClient.request`` fallback layer), ``parse`` (the
``parse`` hooks) and ``transport`` (the httpx ``send`` patch).
"""

from __future__ import annotations

import functools
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


def _unwrap(owner: object, attr: str) -> None:
    layer = owner.__dict__[attr]
    setattr(owner, attr, layer.__wrapped__)


def ablate(parts: list[str]) -> None:
    """Switch the named parts off (see the module docstring)."""
    from opentelemetry.trace import SpanKind

    from tokenmeter import _call, _call_end, _meter
    from tokenmeter._prices import UNPRICED

    meter = _meter.active()
    assert meter is not None
    for part in parts:
        if part == "ledger":
            meter.ledger = type("NoLedger", (), {"call": lambda *a, **k: None, "__getattr__": lambda s, n: None})()
        elif part == "metrics":

            def record_metrics(call, usage, cost, error_type, duration, response_model=None, ins=meter.instruments):  # type: ignore[no-untyped-def]
                a = ins.call_attributes(("openai", "chat", call.request.model) + (None,) * 8)
                semconv, semconv_in, semconv_out = a.semconv_with(response_model, call.request.server_address)
                ins.duration.record(duration, semconv)
                if usage is not None:
                    ins.token_usage.record(usage.input_total, semconv_in)
                    ins.token_usage.record(usage.output_total, semconv_out)

            _call_end.record_metrics = record_metrics  # type: ignore[assignment]
        elif part == "end_attrs":
            _call_end.end_span = lambda call, *a: call.span.end()  # type: ignore[assignment]
        elif part == "start_attrs":

            def _start(self, *, gated=True, start_time_ns=None, parent_ctx=None):  # type: ignore[no-untyped-def]
                self.span = self.meter.tracer.start_span(
                    "chat", context=parent_ctx, kind=SpanKind.CLIENT, start_time=start_time_ns
                )

            _call.MeteredCall._start = _start  # type: ignore[method-assign]
        elif part == "price":
            type(meter.prices).cost = lambda *a, **k: UNPRICED  # type: ignore[method-assign]
        elif part == "gate":
            meter.gate = None
        elif part == "raw":
            import openai._base_client as base

            _unwrap(base.SyncAPIClient, "request")
        elif part == "parse":
            import openai._legacy_response as legacy
            import openai._response as response

            _unwrap(response.APIResponse, "parse")
            _unwrap(legacy.LegacyAPIResponse, "parse")
        elif part == "transport":
            import httpx2

            _unwrap(httpx2.Client, "send")
        elif part != "none":
            raise SystemExit(f"unknown part {part}")


def main() -> int:
    mode, n, parts = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
    stream = mode == "stream"
    harness.load_plugins([os.path.join(HERE, "tokenmeter_contenders.py")])
    pipe = harness.Pipeline()
    harness.CONTENDERS["tokenmeter"].fn(pipe.tracer_provider, pipe.meter_provider, pipe.logger_provider, False)
    ablate(parts)
    client, _ = harness.make_client(stream)
    call = harness.make_call(client, stream)
    for _ in range(30):
        harness.check_call_result(stream, call())
    functools.reduce(lambda acc, _: call(), range(n), None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
