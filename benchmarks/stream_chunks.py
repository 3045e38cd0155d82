"""CPU per extra stream chunk of tokenmeter's stream proxy, on the openai SDK's own chunk objects, in one process.

    venvs/tokenmeter/bin/python stream_chunks.py [--short 50] [--long 500] [--rounds 9]

Parses the harness' canned SSE events into ``ChatCompletionChunk`` objects once (as the SDK does), then
iterates them: bare, through a minimal ``wrapt.ObjectProxy`` that only looks for the usage chunk (the
floor of any proxy), and through tokenmeter's ``MeteredStream`` + the OpenAI ``ChatStream`` accumulator
of a real metered call (``begin()`` on the configured meter; its span and metrics are recorded at the end of
each stream). Streams of ``--short`` and ``--long`` chunks give the marginal cost of one more chunk, free of
the per-stream costs: (T(long) - T(short)) / (long - short), minimum over interleaved rounds of CPU time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", type=int, default=50)
    ap.add_argument("--long", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    os.environ.setdefault("XDG_DATA_HOME", tempfile.mkdtemp(prefix="tm-chunks-"))

    import harness
    import wrapt
    from openai.types.chat import ChatCompletionChunk

    import tokenmeter
    from tokenmeter._call import begin
    from tokenmeter._streams import MeteredStream
    from tokenmeter.integrations._openai_streams import ChatStream
    from tokenmeter.integrations._openai_usage import OpenAIRequest

    pipe = harness.Pipeline()
    tokenmeter.configure(service_name="bench", tracer_provider=pipe.tracer_provider, meter_provider=pipe.meter_provider)
    events = [json.loads(raw.decode()[len("data: ") :]) for raw in harness.canned_sse_chunks()[:-1]]
    chunks = [ChatCompletionChunk.construct(**e) for e in events]  # the SDK builds chunks without validation
    middle = chunks[1:-2]

    def stream_of(n: int) -> list[Any]:
        return [chunks[0], *itertools.islice(itertools.cycle(middle), n - 3), *chunks[-2:]]

    class Source:
        def __init__(self, items: list[Any]) -> None:
            self.items = items

        def __iter__(self) -> Iterator[Any]:
            return iter(self.items)

    class Floor(wrapt.ObjectProxy):  # type: ignore[misc]
        def __init__(self, wrapped: Any) -> None:
            super().__init__(wrapped)
            self._self_iter = iter(wrapped)
            self._self_usage = None

        def __iter__(self) -> Any:
            return self

        def __next__(self) -> Any:
            chunk = next(self._self_iter)
            if chunk.usage is not None:
                self._self_usage = chunk.usage
            return chunk

    def metered(items: list[Any]) -> Any:
        request = OpenAIRequest("openai", harness.MODEL, stream=True, server_address="test")
        call = begin(request)
        assert call is not None
        return MeteredStream(Source(items), call, ChatStream(request))

    kinds: dict[str, Callable[[list[Any]], Any]] = {
        "bare": Source,
        "floor": Floor,
        "tokenmeter": metered,
    }
    best: dict[tuple[str, int], float] = {}
    for _ in range(args.rounds):
        for n in (args.short, args.long):
            items = stream_of(n)
            reps = max(20, 60_000 // n)
            for name, make in kinds.items():
                t0 = time.process_time()
                for _ in range(reps):
                    for _chunk in make(items):
                        pass
                us = (time.process_time() - t0) / reps * 1e6
                key = (name, n)
                best[key] = min(best.get(key, us), us)
    pipe.flush()
    load = os.getloadavg()[0]
    span = args.long - args.short
    print(f"CPU µs per stream (min over {args.rounds} rounds), load {load:.2f}")
    for name in kinds:
        short, long = best[(name, args.short)], best[(name, args.long)]
        extra = (long - short) / span
        print(f"  {name:10s} {args.short}: {short:8.1f}  {args.long}: {long:8.1f}  per extra chunk {extra:.3f}")
    for name in ("floor", "tokenmeter"):
        per = (
            (best[(name, args.long)] - best[("bare", args.long)])
            - (best[(name, args.short)] - best[("bare", args.short)])
        ) / span
        fixed = best[(name, args.short)] - best[("bare", args.short)] - per * args.short
        print(f"  {name:10s} added per extra chunk {per:.3f} µs; per stream (fixed) {fixed:.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
