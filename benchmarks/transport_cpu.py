"""CPU cost of tokenmeter's transport patch (``httpx2.Client.send`` counting a metered call's attempts), in one process.

    venvs/tokenmeter/bin/python transport_cpu.py [--rounds 30] [--n 3000]

Sends the harness' canned response through an ``httpx2`` client on a ``MockTransport``, with the patch off
and on (``tokenmeter._transport.PATCHER``), inside a metered call (``CURRENT_CALL`` set: the patch's full
path, matching the host and noting the attempt) and outside one (the patch's pass-through). Reports the
minimum over interleaved rounds of CPU µs per ``send`` and the differences.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args()
    os.environ.setdefault("XDG_DATA_HOME", tempfile.mkdtemp(prefix="tm-transport-"))

    import harness
    import httpx2

    import tokenmeter
    from tokenmeter._call import Request, begin
    from tokenmeter._context import CURRENT_CALL
    from tokenmeter._transport import PATCHER

    pipe = harness.Pipeline()
    tokenmeter.configure(service_name="bench", tracer_provider=pipe.tracer_provider, meter_provider=pipe.meter_provider)
    body = harness.canned_nonstream_body()
    client = httpx2.Client(transport=httpx2.MockTransport(lambda request: httpx2.Response(200, content=body)))
    request = client.build_request("POST", "http://test/v1/chat/completions", content=b"{}")
    call = begin(Request("openai", harness.MODEL, server_address="test"))
    assert call is not None

    def block(inside: bool) -> float:
        token = CURRENT_CALL.set(call if inside else None)
        try:
            t0 = time.process_time()
            for _ in range(args.n):
                client.send(request).close()
            return (time.process_time() - t0) / args.n * 1e6
        finally:
            CURRENT_CALL.reset(token)
            call.http_attempts = None

    best: dict[tuple[bool, bool], float] = {}
    for i in range(args.rounds):
        for patched in (False, True) if i % 2 else (True, False):
            if patched:
                PATCHER.apply()
            for inside in (False, True):
                us = block(inside)
                best[(patched, inside)] = min(best.get((patched, inside), us), us)
            if patched:
                PATCHER.restore()
    call.stop(None)
    pipe.flush()
    print(f"transport patch, CPU µs per send (min over {args.rounds} rounds), load {os.getloadavg()[0]:.2f}")
    print(f"  unpatched {best[(False, False)]:.2f}")
    print(f"  patched, no metered call: +{best[(True, False)] - best[(False, False)]:.2f}")
    print(f"  patched, inside a metered call: +{best[(True, True)] - best[(False, True)]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
