"""A real OpenTelemetry collector (rotel) and vmagent for the fleet tests, on 127.0.0.1 like every e2e backend.

* :class:`Rotel` -- PyPI ``rotel`` (a Rust OpenTelemetry collector; the wheel ships ``rotel-agent``), installed by
  ``scripts/backends.sh install rotel`` into ``$TOKENMETER_BACKENDS_DIR/rotel-venv`` (``bin/rotel-agent``). OTLP
  in on gRPC + HTTP; configured by ``examples/collector/rotel.env`` (metrics to a TSDB, traces to a trace store),
  which the fleet test runs as written.
* :class:`VMAgent` -- ``vmagent`` from the VictoriaMetrics package: OTLP/HTTP in, Prometheus remote write out. Debian's
  Prometheus has no OTLP receiver, so this is how a collector's metrics reach a real Prometheus here.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from backends import BACKENDS_DIR, INSTALL_HINT, LOOPBACK, BackendUnavailable, Prometheus, _Server, _which, free_port

__all__ = ["RemoteWritePrometheus", "Rotel", "VMAgent"]


def load_env_file(path: Path, variables: Mapping[str, str]) -> dict[str, str]:
    """``KEY=value`` lines of a shell env file, with ``${NAME}`` / ``${NAME:-default}`` expanded from
    ``variables`` (an unset variable without a default is an error: the test must pass every one)."""

    def expand(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3)
        if name in variables:
            return variables[name]
        if default is None:
            raise KeyError(f"{path.name}: ${{{name}}} is not set")
        return default

    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = re.sub(r"\$\{(\w+)(:-([^}]*))?\}", expand, value.strip())
    return out


class Rotel(_Server):
    """``rotel-agent start`` configured by an env file (``examples/collector/rotel.env``) on 127.0.0.1.

    ``variables`` fill the file's ``${...}`` (the listen host and ports are set here: 127.0.0.1, free ports).
    ``otlp_http_endpoint`` is what a service sets as ``OTEL_EXPORTER_OTLP_ENDPOINT``.
    """

    name = "rotel"

    def __init__(
        self,
        env_file: Path,
        variables: Mapping[str, str],
        *,
        binary: str | None = None,
        startup_timeout: float = 30.0,
        keep_data: bool = False,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, keep_data=keep_data)
        self.env_file = env_file
        self.variables = dict(variables)
        self.grpc_port = 0
        self.settings: dict[str, str] = {}
        self.binary = binary or _which("rotel-agent", BACKENDS_DIR / "bin" / "rotel-agent")
        if not self.binary:
            raise BackendUnavailable(f"rotel-agent not found; {INSTALL_HINT} (or `scripts/backends.sh install rotel`)")

    @property
    def otlp_http_endpoint(self) -> str:
        return self.base_url

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.grpc_port}"

    def _prepare(self) -> None:
        super()._prepare()
        assert self.data_dir is not None
        self.grpc_port = free_port()
        self.settings = load_env_file(
            self.env_file,
            {
                **self.variables,
                "COLLECTOR_HOST": LOOPBACK,
                "COLLECTOR_HTTP_PORT": str(self.port),
                "COLLECTOR_GRPC_PORT": str(self.grpc_port),
                "ROTEL_PID_FILE_PATH": str(self.data_dir / "rotel.pid"),
            },
        )

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTEL_", "OTEL_"))}
        env.update(self.settings)
        return env

    def _command(self) -> list[str]:
        assert self.binary is not None
        return [self.binary, "start"]

    def _is_ready(self) -> bool:  # no health endpoint: the HTTP receiver accepting connections
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                return True
        except OSError:
            return False


class VMAgent(_Server):
    """vmagent: OTLP/HTTP metrics in (``otlp_metrics_url``), Prometheus remote write out to ``remote_write_urls``."""

    name = "vmagent"
    ready_path = "/health"

    def __init__(
        self,
        remote_write_urls: Sequence[str],
        *,
        binary: str | None = None,
        startup_timeout: float = 30.0,
        keep_data: bool = False,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, keep_data=keep_data)
        self.remote_write_urls = list(remote_write_urls)
        self.binary = binary or _which("vmagent", BACKENDS_DIR / "bin" / "vmagent")
        if not self.binary:
            raise BackendUnavailable(f"vmagent binary not found; {INSTALL_HINT}")

    @property
    def otlp_metrics_url(self) -> str:
        return self.base_url + "/opentelemetry/v1/metrics"

    def _command(self) -> list[str]:
        assert self.data_dir is not None and self.binary is not None
        return [
            self.binary,
            f"-httpListenAddr={LOOPBACK}:{self.port}",
            *(f"-remoteWrite.url={url}" for url in self.remote_write_urls),
            # Prometheus' snappy protocol for every destination: vmagent otherwise starts with its own zstd
            # protocol, Prometheus answers 400 ("snappy: corrupt input") and vmagent drops that batch for good.
            *("-remoteWrite.forcePromProto=true" for _ in self.remote_write_urls),
            f"-remoteWrite.tmpDataPath={Path(self.data_dir) / 'queue'}",
            "-remoteWrite.flushInterval=200ms",
            "-opentelemetry.usePrometheusNaming",
            "-loggerLevel=WARN",
        ]


class RemoteWritePrometheus(Prometheus):
    """Prometheus receiving remote write from a collector, with an out-of-order window.

    Export batches of one process can arrive out of order (a periodic export and the final flush at exit travel
    in different collector batches); Prometheus refuses a whole remote-write request with one out-of-order sample
    (HTTP 400) and vmagent then drops that block for good. ``storage.tsdb.out_of_order_time_window`` (Prometheus
    >= 2.39) accepts them -- the setting docs/fleet.md recommends for this topology.
    """

    def __init__(self, out_of_order_window: str = "30m", **kwargs: Any) -> None:
        super().__init__(None, "1s", **kwargs)
        self.out_of_order_window = out_of_order_window

    def _prepare(self) -> None:
        super()._prepare()
        assert self.data_dir is not None
        config = self.data_dir / "prometheus.yml"
        config.write_text(
            config.read_text() + f"storage:\n  tsdb:\n    out_of_order_time_window: {self.out_of_order_window}\n"
        )
