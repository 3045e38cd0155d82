"""A private redis-server on a free loopback port for the benchmarks that need one (started and ended by pid)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time


def start_redis(required: bool = True) -> tuple[subprocess.Popen[bytes] | None, str | None]:
    """Start ``redis-server`` without persistence; ``(process, url)`` once it answers PING.

    Without the binary: exit with the install hint when ``required``, else ``(None, None)``.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        if required:
            raise SystemExit("redis-server not found (apt-get install redis-server)")
        return None, None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"
