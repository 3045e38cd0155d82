"""Real OpenTelemetry backends for end-to-end tests: Prometheus, VictoriaMetrics, Arize Phoenix.

Binaries come from ``scripts/backends.sh install`` (project-local cache ``.cache/backends/``, or
``$TOKENMETER_BACKENDS_DIR``). Every server:

* listens on 127.0.0.1 only, on a free port, with a fresh temporary data directory;
* is started in its own session/process group (``setsid``); ``stop()`` signals only that group,
  by the pid this object started, then removes the data directory;
* is checked after start-up: every TCP listening socket of its process group must be bound to a
  loopback address, otherwise it is stopped and :class:`BackendUnavailable` is raised.

Metric names (see docs/backends.md): for an OTel counter ``tokenmeter.tokens`` (unit ``{token}``)
and a histogram ``gen_ai.client.token.usage`` (unit ``{token}``) both Prometheus (scraping the
``opentelemetry-exporter-prometheus`` endpoint) and VictoriaMetrics (OTLP, started with
``-opentelemetry.usePrometheusNaming``) store ``tokenmeter_tokens_total`` and
``gen_ai_client_token_usage_bucket`` / ``_sum`` / ``_count``; attribute keys have dots replaced by
``_`` (``gen_ai.token.type`` -> ``gen_ai_token_type``).

No pytest import here: the module is usable from scripts too (``python tests/e2e/backends.py`` smoke-starts all three).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

__all__ = [
    "BACKENDS_DIR",
    "BackendUnavailable",
    "Phoenix",
    "Prometheus",
    "VictoriaMetrics",
    "free_port",
    "screenshot",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
BACKENDS_DIR = Path(os.environ.get("TOKENMETER_BACKENDS_DIR") or REPO_ROOT / ".cache" / "backends")
INSTALL_HINT = "run `scripts/backends.sh install` (or `scripts/backends.sh install all`)"
LOOPBACK = "127.0.0.1"

_S = TypeVar("_S", bound="_Server")
_R = TypeVar("_R")
Result = list[dict[str, Any]]


class BackendUnavailable(RuntimeError):
    """A backend binary is missing, or the server did not start / become ready in time."""


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _http(
    method: str,
    url: str,
    *,
    params: dict[str, Any] | Sequence[tuple[str, Any]] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    if params:
        url = f"{url}?{urllib.parse.urlencode(params, doseq=True)}"
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def _get_json(
    url: str, *, params: dict[str, Any] | Sequence[tuple[str, Any]] | None = None, timeout: float = 10.0
) -> Any:
    status, body = _http("GET", url, params=params, timeout=timeout)
    if status != 200:
        raise RuntimeError(f"GET {url} params={params!r}: HTTP {status}: {body[:500]!r}")
    return json.loads(body)


def _which(name: str, cached: Path) -> str | None:
    """The project-local binary from the cache if present, else one on PATH."""
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    return shutil.which(name)


def _loopback_host(target: str) -> None:
    host = target.rsplit(":", 1)[0].strip("[]")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"scrape target {target!r} is not on loopback; tests may only use 127.0.0.1")


def _listening_sockets(pgid: int) -> list[tuple[str, int]]:
    """(address, port) of TCP sockets in LISTEN state held by processes of process group pgid."""
    inodes: set[str] = set()
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            if os.getpgid(int(pid_dir.name)) != pgid:
                continue
            for fd in (pid_dir / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except (OSError, ProcessLookupError):
            continue
    out: list[tuple[str, int]] = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A = TCP_LISTEN
                continue
            hexaddr, hexport = f[1].split(":")
            raw = bytes.fromhex(hexaddr)
            if v6:
                # /proc prints the address as 4 little-endian 32-bit words
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                addr = socket.inet_ntop(socket.AF_INET6, raw)
            else:
                addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
            out.append((addr, int(hexport, 16)))
    return out


def _is_loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr == "::1" or addr.startswith("::ffff:127.")


# --------------------------------------------------------------------------------------------
# process management
# --------------------------------------------------------------------------------------------


class _Server:
    """A server process on 127.0.0.1 in its own process group, with a temporary data dir."""

    name = "server"
    ready_path = "/"

    def __init__(self, *, startup_timeout: float = 30.0, keep_data: bool = False) -> None:
        self.startup_timeout = startup_timeout
        self.keep_data = keep_data
        self.port: int = 0
        self.data_dir: Path | None = None
        self.log_path: Path | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    # subclasses --------------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _prepare(self) -> None:
        """Allocate ports / write config files into self.data_dir before the process starts."""
        self.port = free_port()

    # public ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self: _S) -> _S:
        """Start the server, wait until it answers (bounded by startup_timeout), return self."""
        if self.running:
            return self
        last_error = ""
        for _attempt in range(3):  # a free port may be taken between free_port() and bind()
            try:
                self._start_once()
                return self
            except BackendUnavailable as e:
                last_error = str(e)
                log_text = self.log_tail()
                self.stop()
                if "address already in use" not in log_text.lower():
                    break
        raise BackendUnavailable(last_error)

    def _start_once(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"tokenmeter-e2e-{self.name}-"))
        self.log_path = self.data_dir / f"{self.name}.log"
        self._prepare()
        cmd = self._command()
        self._log_file = open(self.log_path, "wb")
        t0 = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=self._env(),
                start_new_session=True,  # setsid: own session + process group (pgid == pid)
            )
        except OSError as e:
            raise BackendUnavailable(f"{self.name}: cannot execute {cmd[0]}: {e}") from e
        self._wait_ready(t0)
        self.startup_seconds = time.monotonic() - t0
        self._check_loopback_only()

    def _is_ready(self) -> bool:
        try:
            status, _ = _http("GET", self.base_url + self.ready_path, timeout=2.0)
        except OSError:
            return False
        return status == 200

    def _wait_ready(self, t0: float) -> None:
        deadline = t0 + self.startup_timeout
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise BackendUnavailable(
                    f"{self.name} exited with code {self._proc.returncode} during start-up; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self._is_ready():
                return
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    f"{self.name} not ready on {self.base_url}{self.ready_path} after "
                    f"{self.startup_timeout:.0f} s; log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _check_loopback_only(self) -> None:
        assert self._proc is not None
        exposed = [(a, p) for a, p in _listening_sockets(self._proc.pid) if not _is_loopback(a)]
        if exposed:
            raise BackendUnavailable(f"{self.name} listens on non-loopback addresses {exposed}; refusing to run")

    def listening(self) -> list[tuple[str, int]]:
        """TCP (address, port) pairs the server's process group listens on."""
        return _listening_sockets(self._proc.pid) if self._proc else []

    def log_tail(self, n: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group this object started, SIGKILL it after `timeout`; clean up."""
        proc, self._proc = self._proc, None
        if proc is not None:
            pgid = proc.pid  # start_new_session=True: the child leads its own group
            if proc.poll() is None:
                self._signal_group(pgid, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group(pgid, signal.SIGKILL)
                    proc.wait(timeout=10)
            # children left behind in our group (the group id stays reserved while it has members)
            self._signal_group(pgid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.data_dir is not None and not self.keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url} pid={self.pid}>"


def _wait_for(
    fetch: Callable[[], _R], predicate: Callable[[_R], bool], timeout: float, interval: float, what: str
) -> _R:
    deadline = time.monotonic() + timeout
    while True:
        last = fetch()
        if predicate(last):
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: condition not met after {timeout:.1f} s; last result: {last!r}")
        time.sleep(interval)


def _nonempty(result: Any) -> bool:
    return bool(result)


class _PromQL:
    """Prometheus HTTP API query helpers (shared by Prometheus and VictoriaMetrics)."""

    base_url: str

    def _before_query(self) -> None:
        pass

    def query(self, promql: str, *, at: float | None = None) -> Result:
        """Instant query via GET /api/v1/query; returns data.result (list of {metric, value})."""
        self._before_query()
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = _get_json(self.base_url + "/api/v1/query", params=params)
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body!r}")
        return list(body["data"]["result"])

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[Result], bool] = _nonempty,
        timeout: float = 30.0,
        interval: float = 0.25,
    ) -> Result:
        """Poll query(promql) until predicate(result) is true; return that result or raise TimeoutError."""
        return _wait_for(lambda: self.query(promql), predicate, timeout, interval, f"PromQL {promql!r}")

    def metric_names(self) -> list[str]:
        """All metric names stored (GET /api/v1/label/__name__/values)."""
        self._before_query()
        return list(_get_json(self.base_url + "/api/v1/label/__name__/values")["data"])

    def series(self, match: str) -> Result:
        """Label sets of the series matching a selector (GET /api/v1/series)."""
        self._before_query()
        return list(_get_json(self.base_url + "/api/v1/series", params={"match[]": match})["data"])

    @staticmethod
    def value(result: Result) -> float:
        """The single sample value of a one-series instant-query result."""
        if len(result) != 1:
            raise AssertionError(f"expected exactly one series, got {len(result)}: {result!r}")
        return float(result[0]["value"][1])


# --------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------


class Prometheus(_PromQL, _Server):
    """Debian's Prometheus 2.42 scraping OTel Prometheus-exporter endpoints on 127.0.0.1.

    Targets live in a file_sd file, so ``set_scrape_targets()`` changes them while it runs.
    Also enables the remote-write receiver at ``remote_write_url``.
    """

    name = "prometheus"
    ready_path = "/-/ready"

    def __init__(
        self,
        scrape_target: str | Sequence[str] | None = None,
        scrape_interval: str = "1s",
        *,
        job: str = "tokenmeter",
        binary: str | None = None,
        startup_timeout: float = 30.0,
        keep_data: bool = False,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, keep_data=keep_data)
        targets = [scrape_target] if isinstance(scrape_target, str) else list(scrape_target or [])
        for t in targets:
            _loopback_host(t)
        self.scrape_targets: list[str] = targets
        self.scrape_interval = scrape_interval
        self.job = job
        self.binary = binary or _which("prometheus", BACKENDS_DIR / "bin" / "prometheus")
        if not self.binary:
            raise BackendUnavailable(f"prometheus binary not found; {INSTALL_HINT}")

    @property
    def remote_write_url(self) -> str:
        return self.base_url + "/api/v1/write"

    def _targets_file(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "targets.json"

    def set_scrape_targets(self, targets: Iterable[str]) -> None:
        """Replace the scraped targets (host:port on loopback); Prometheus picks the file up at once."""
        targets = list(targets)
        for t in targets:
            _loopback_host(t)
        self.scrape_targets = targets
        if self.data_dir is None:
            return
        tmp = self._targets_file().with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": targets, "labels": {}}] if targets else []))
        tmp.replace(self._targets_file())

    def _prepare(self) -> None:
        super()._prepare()
        assert self.data_dir is not None
        self.set_scrape_targets(self.scrape_targets)
        (self.data_dir / "prometheus.yml").write_text(
            "global:\n"
            f"  scrape_interval: {self.scrape_interval}\n"
            f"  scrape_timeout: {self.scrape_interval}\n"
            f"  evaluation_interval: {self.scrape_interval}\n"
            "scrape_configs:\n"
            f"  - job_name: {json.dumps(self.job)}\n"
            "    file_sd_configs:\n"
            f"      - files: [{json.dumps(str(self._targets_file()))}]\n"
            "        refresh_interval: 1s\n"
        )

    def _command(self) -> list[str]:
        assert self.data_dir is not None and self.binary is not None
        cmd = [
            self.binary,
            f"--config.file={self.data_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.data_dir / 'data'}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--web.enable-remote-write-receiver",
            "--log.level=warn",
        ]
        # the web UI assets unpacked by scripts/backends.sh (binary default: /usr/share/prometheus/web/)
        assets = Path(self.binary).resolve().parents[1] / "share" / "prometheus" / "web"
        if assets.is_dir():
            cmd.append(f"--web.local-assets={assets}/")
        return cmd

    def targets(self) -> Result:
        """Active scrape targets with health / lastError (GET /api/v1/targets)."""
        return list(_get_json(self.base_url + "/api/v1/targets")["data"]["activeTargets"])


# --------------------------------------------------------------------------------------------
# VictoriaMetrics
# --------------------------------------------------------------------------------------------


class VictoriaMetrics(_PromQL, _Server):
    """VictoriaMetrics single node (Debian 13 build, >= 1.92): OTLP/HTTP metrics in, PromQL out.

    Started with ``-search.latencyOffset=0s`` (otherwise the newest 30 s are not queryable) and, by
    default, ``-opentelemetry.usePrometheusNaming`` so names match what the Prometheus exporter
    produces (``tokenmeter_tokens_total``). With ``prometheus_naming=False`` VictoriaMetrics keeps
    the OTLP name (``tokenmeter.tokens``; histograms ``gen_ai.client.token.usage_bucket``...),
    which needs ``{__name__="..."}`` selectors in PromQL.
    No OTLP/gRPC: use the OTLP/HTTP protobuf exporter with ``otlp_metrics_url``.
    """

    name = "victoriametrics"
    ready_path = "/health"

    def __init__(
        self,
        *,
        prometheus_naming: bool = True,
        binary: str | None = None,
        startup_timeout: float = 30.0,
        keep_data: bool = False,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, keep_data=keep_data)
        self.prometheus_naming = prometheus_naming
        self.binary = binary or _which("victoria-metrics", BACKENDS_DIR / "bin" / "victoria-metrics")
        if not self.binary:
            raise BackendUnavailable(f"victoria-metrics binary not found; {INSTALL_HINT}")

    @property
    def otlp_metrics_url(self) -> str:
        return self.base_url + "/opentelemetry/v1/metrics"

    def _command(self) -> list[str]:
        assert self.data_dir is not None and self.binary is not None
        cmd = [
            self.binary,
            f"-httpListenAddr={LOOPBACK}:{self.port}",
            f"-storageDataPath={self.data_dir / 'data'}",
            "-retentionPeriod=1d",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=WARN",
        ]
        if self.prometheus_naming:
            cmd.append("-opentelemetry.usePrometheusNaming")
        return cmd

    def force_flush(self) -> None:
        """Make just-ingested samples searchable (GET /internal/force_flush)."""
        status, body = _http("GET", self.base_url + "/internal/force_flush")
        if status != 200:
            raise RuntimeError(f"force_flush: HTTP {status}: {body[:200]!r}")

    def _before_query(self) -> None:
        self.force_flush()


# --------------------------------------------------------------------------------------------
# Arize Phoenix
# --------------------------------------------------------------------------------------------

# Run `phoenix serve` with its OTLP/gRPC listener either switched off (default) or bound to
# 127.0.0.1: Phoenix 20.x hard-codes add_insecure_port("[::]:PORT") (all interfaces). We swap the
# `grpc` name inside phoenix.server.grpc_server only, so no other gRPC user is affected.
_PHOENIX_LAUNCHER = r"""
import os, sys
import grpc
import phoenix.server.grpc_server as gs

if os.environ.get("TOKENMETER_PHOENIX_GRPC") != "loopback":
    _orig_init = gs.GrpcServer.__init__
    def _init(self, *args, **kwargs):
        kwargs["disabled"] = True
        _orig_init(self, *args, **kwargs)
    gs.GrpcServer.__init__ = _init
else:
    def _lo(address):
        return "127.0.0.1:" + address.rsplit(":", 1)[1]
    class _LoopbackServer:
        def __init__(self, server):
            self._server = server
        def __getattr__(self, name):
            return getattr(self._server, name)
        def add_insecure_port(self, address):
            return self._server.add_insecure_port(_lo(address))
        def add_secure_port(self, address, credentials):
            return self._server.add_secure_port(_lo(address), credentials)
    class _Aio:
        def __getattr__(self, name):
            return getattr(grpc.aio, name)
        @staticmethod
        def server(*args, **kwargs):
            return _LoopbackServer(grpc.aio.server(*args, **kwargs))
    class _Grpc:
        aio = _Aio()
        def __getattr__(self, name):
            return getattr(grpc, name)
    gs.grpc = _Grpc()

from phoenix.server.main import main
sys.argv = ["phoenix", "serve"]
sys.exit(main())
"""


class Phoenix(_Server):
    """Arize Phoenix (PyPI arize-phoenix, own venv): OTLP traces in, REST + UI out.

    A span's project is its resource attribute ``openinference.project.name`` (else "default");
    use a unique project per test to isolate. ``grpc=True`` also opens OTLP/gRPC on
    ``grpc_endpoint`` (127.0.0.1 only); by default gRPC is off.
    """

    name = "phoenix"
    ready_path = "/healthz"

    def __init__(
        self, *, grpc: bool = False, python: str | None = None, startup_timeout: float = 120.0, keep_data: bool = False
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, keep_data=keep_data)
        self.grpc = grpc
        self.grpc_port: int | None = None
        default_py = BACKENDS_DIR / "phoenix-venv" / "bin" / "python"
        self.python = python or os.environ.get("TOKENMETER_PHOENIX_PYTHON") or str(default_py)
        if not Path(self.python).is_file():
            raise BackendUnavailable(f"Phoenix virtualenv not found at {self.python}; {INSTALL_HINT}")

    @property
    def otlp_traces_url(self) -> str:
        return self.base_url + "/v1/traces"

    @property
    def grpc_endpoint(self) -> str | None:
        """OTLP/gRPC endpoint (http://127.0.0.1:P) when started with grpc=True, else None."""
        return f"http://{LOOPBACK}:{self.grpc_port}" if self.grpc_port else None

    def _prepare(self) -> None:
        super()._prepare()
        self.grpc_port = free_port() if self.grpc else None

    def _env(self) -> dict[str, str]:
        assert self.data_dir is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
        env.update(
            PHOENIX_HOST=LOOPBACK,
            PHOENIX_PORT=str(self.port),
            # never the default 4317: if gRPC were enabled by mistake it must not collide
            PHOENIX_GRPC_PORT=str(self.grpc_port or free_port()),
            PHOENIX_WORKING_DIR=str(self.data_dir / "work"),
            PHOENIX_TELEMETRY_ENABLED="false",
            PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",
            TOKENMETER_PHOENIX_GRPC="loopback" if self.grpc else "off",
            PYTHONUNBUFFERED="1",
        )
        return env

    def _command(self) -> list[str]:
        return [self.python, "-c", _PHOENIX_LAUNCHER]

    def spans(self, project: str, *, limit: int = 1000, max_pages: int = 20) -> Result:
        """All spans of `project` (GET /v1/projects/{project}/spans, newest first, all pages).

        [] while the project does not exist yet (Phoenix creates it with its first span).
        """
        out: Result = []
        cursor: str | None = None
        path = f"{self.base_url}/v1/projects/{urllib.parse.quote(project, safe='')}/spans"
        for _ in range(max_pages):
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            status, body = _http("GET", path, params=params)
            if status == 404:
                return out
            if status != 200:
                raise RuntimeError(f"GET {path}: HTTP {status}: {body[:500]!r}")
            page = json.loads(body)
            out.extend(page.get("data", []))
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return out

    def wait_for_spans(
        self,
        project: str,
        predicate: Callable[[Result], bool] = _nonempty,
        timeout: float = 30.0,
        interval: float = 0.25,
    ) -> Result:
        """Poll spans(project) until predicate(spans) is true; return them or raise TimeoutError."""
        return _wait_for(
            lambda: self.spans(project), predicate, timeout, interval, f"Phoenix spans of project {project!r}"
        )


# --------------------------------------------------------------------------------------------
# screenshots
# --------------------------------------------------------------------------------------------


def screenshot(
    url: str,
    png_path: str | os.PathLike[str],
    *,
    window_size: tuple[int, int] = (1400, 900),
    virtual_time_budget_ms: int = 10_000,
    timeout: float = 90.0,
) -> Path:
    """Render `url` with Debian's headless chromium into `png_path`; return the path.

    Raises BackendUnavailable if chromium is not installed (`scripts/backends.sh install chromium`).
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise BackendUnavailable("chromium not installed; run `scripts/backends.sh install chromium`")
    out = Path(png_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="tokenmeter-chromium-") as profile:
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={window_size[0]},{window_size[1]}",
            f"--virtual-time-budget={virtual_time_budget_ms}",
            f"--screenshot={out}",
            url,
        ]
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _Server._signal_group(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise BackendUnavailable(f"chromium did not finish within {timeout:.0f} s for {url}") from None
        finally:
            _Server._signal_group(proc.pid, signal.SIGKILL)  # leftover zygote/GPU helpers of our group
    if not out.is_file() or out.stat().st_size == 0:
        raise BackendUnavailable(f"chromium wrote no screenshot for {url}: {output.decode(errors='replace')[-1000:]}")
    return out


if __name__ == "__main__":  # manual smoke run: python tests/e2e/backends.py
    for cls in (Prometheus, VictoriaMetrics, Phoenix):
        try:
            with cls() as server:
                print(
                    f"{cls.__name__}: ready at {server.base_url} in {server.startup_seconds:.2f} s; "
                    f"listening {server.listening()}"
                )
        except BackendUnavailable as e:
            print(f"{cls.__name__}: unavailable: {e}", file=sys.stderr)
