"""A metered process writing the shared ledger: ``python -m tests.finops._worker LEDGER N TEAM [--forever]``.

Each call is ``record()``-ed (the same path as wrapped SDK calls). With ``--forever`` it prints, after each
call, how many calls it finished and when (so a test that SIGKILLs it knows what it had metered).
"""

from __future__ import annotations

import sys
import time

import tokenmeter


def main() -> None:
    ledger, n, team = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    forever = "--forever" in sys.argv
    tokenmeter.configure(ledger=ledger, exporter="none", prices={"m-*": {"input": 1, "output": 2}})
    done = 0
    with tokenmeter.attributes(team=team, workflow="load"):
        while forever or done < n:
            tokenmeter.record("openai", "m-1", tokenmeter.Usage(input=10, output=1))
            done += 1
            if forever and done % 50 == 0:
                print(f"{done} {time.time():.3f}", flush=True)
                time.sleep(0.01)
    if "--no-shutdown" not in sys.argv:
        tokenmeter.unconfigure()
    # else: the interpreter's exit flushes the ledger (atexit)


if __name__ == "__main__":
    main()
