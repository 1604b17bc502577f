"""Run a real Prometheus server for compatibility tests and benchmarks.

    with PrometheusServer(remote_write_receiver=True) as prom:
        prom.remote_write(body)                       # POST /api/v1/write (snappy protobuf)
        prom.query("count(istio_requests_total)")     # -> data["result"]

    with PrometheusServer(remote_write_url="http://127.0.0.1:8000/api/v1/push",
                          bearer_token="cnp_...") as prom:
        ...  # Prometheus scrapes itself every second and remote-writes to Canopy

Every instance uses its own free 127.0.0.1 port and its own temporary directory (config, TSDB data,
log), never the system service's. The binary comes from ``$PROMETHEUS_BIN`` or ``PATH``
(Debian: ``apt-get install prometheus``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

REMOTE_WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "User-Agent": "canopy-tests/0.1",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


class PrometheusNotInstalled(RuntimeError):
    pass


class PrometheusError(RuntimeError):
    """Prometheus failed to start, or an API call answered with an error."""


def find_prometheus() -> str:
    """Path of the ``prometheus`` binary, or :class:`PrometheusNotInstalled`."""
    path = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")
    if not path or not os.access(path, os.X_OK):
        raise PrometheusNotInstalled(
            "the 'prometheus' binary was not found on PATH (nor in $PROMETHEUS_BIN); "
            "install it, e.g. `apt-get install -y prometheus`"
        )
    return path


def prometheus_version(binary: str | None = None) -> str:
    """E.g. ``"2.42.0+ds"``."""
    out = subprocess.run(
        [binary or find_prometheus(), "--version"], capture_output=True, text=True, check=True
    )
    first = (out.stdout or out.stderr).splitlines()[0]  # "prometheus, version 2.42.0+ds (...)"
    return first.split("version", 1)[1].split()[0] if "version" in first else first


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_remote_write(
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    session: requests.Session | None = None,
    timeout: float = 30.0,
) -> requests.Response:
    """POST one snappy-compressed remote-write 1.0 body to ``url``; returns the response as is."""
    hdrs = dict(REMOTE_WRITE_HEADERS)
    hdrs.update(headers or {})
    return (session or requests).post(url, data=body, headers=hdrs, timeout=timeout)


def _proc_cpu_seconds(pid: int) -> float:
    """utime+stime (+ reaped children's) of one process, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state); utime=14, stime=15, cutime=16, cstime=17
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def dir_bytes(path: Path) -> tuple[int, int]:
    """(apparent size, allocated size) of every file below ``path``."""
    apparent = allocated = 0
    if not path.exists():
        return 0, 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


class PrometheusServer:
    """A real Prometheus process on a free port with a throw-away data directory.

    Parameters:
        remote_write_receiver: pass ``--web.enable-remote-write-receiver`` (``POST /api/v1/write``).
        scrape_self: scrape its own /metrics every ``scrape_interval``.
        remote_write_url: add a ``remote_write`` section sending to this URL, authenticated with
            ``bearer_token`` (``authorization: {credentials: ...}``) or ``basic_auth=(user, pw)``.
        queue_config: overrides of the remote-write ``queue_config`` (defaults flush within 1s).
        remote_write_extra: extra keys merged into the ``remote_write`` entry
            (e.g. ``{"metadata_config": {"send": False}}``, ``write_relabel_configs``).
        config: a complete config (dict, written as JSON, which is valid YAML) instead of the
            generated one; ``scrape_self``/``remote_write_*`` are then ignored.
        enable_admin_api: pass ``--web.enable-admin-api`` (needed by :meth:`snapshot`).
        extra_args: more command-line flags.
        keep_dir: do not delete the temporary directory on stop (for debugging).
    """

    def __init__(
        self,
        *,
        remote_write_receiver: bool = False,
        scrape_self: bool = True,
        scrape_interval: str = "1s",
        remote_write_url: str | None = None,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        queue_config: Mapping[str, Any] | None = None,
        remote_write_extra: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        enable_admin_api: bool = False,
        extra_args: list[str] | tuple[str, ...] = (),
        binary: str | None = None,
        startup_timeout: float = 30.0,
        keep_dir: bool = False,
    ) -> None:
        if bearer_token and basic_auth:
            raise ValueError("use either bearer_token or basic_auth, not both")
        self.binary = binary or find_prometheus()
        self.remote_write_receiver = remote_write_receiver
        self.scrape_self = scrape_self
        self.scrape_interval = scrape_interval
        self.remote_write_url = remote_write_url
        self.bearer_token = bearer_token
        self.basic_auth = basic_auth
        self.queue_config = dict(queue_config or {})
        self.remote_write_extra = dict(remote_write_extra or {})
        self.custom_config = dict(config) if config is not None else None
        self.enable_admin_api = enable_admin_api
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.keep_dir = keep_dir

        self.port: int | None = None
        self.tmpdir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.session = requests.Session()

    # --- paths and addresses ---

    @property
    def url(self) -> str:
        if self.port is None:
            raise PrometheusError("Prometheus is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return self.url + "/api/v1/write"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise PrometheusError("Prometheus is not running")
        return self.proc.pid

    @property
    def data_dir(self) -> Path:
        assert self.tmpdir is not None
        return self.tmpdir / "data"

    @property
    def config_path(self) -> Path:
        assert self.tmpdir is not None
        return self.tmpdir / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        assert self.tmpdir is not None
        return self.tmpdir / "prometheus.log"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except (OSError, AssertionError):
            return ""

    # --- configuration ---

    def build_config(self) -> dict[str, Any]:
        """The configuration this instance runs with."""
        if self.custom_config is not None:
            return self.custom_config
        cfg: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            }
        }
        if self.scrape_self:
            cfg["scrape_configs"] = [
                {
                    "job_name": "prometheus",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.port}"]}],
                }
            ]
        if self.remote_write_url:
            rw: dict[str, Any] = {
                "url": self.remote_write_url,
                "remote_timeout": "10s",
                "queue_config": {
                    "batch_send_deadline": "1s",
                    "min_backoff": "100ms",
                    "max_backoff": "2s",
                    **self.queue_config,
                },
            }
            if self.bearer_token:
                rw["authorization"] = {"type": "Bearer", "credentials": self.bearer_token}
            if self.basic_auth:
                rw["basic_auth"] = {"username": self.basic_auth[0], "password": self.basic_auth[1]}
            rw.update(self.remote_write_extra)
            cfg["remote_write"] = [rw]
        return cfg

    # --- lifecycle ---

    def start(self) -> PrometheusServer:
        if self.proc is not None:
            raise PrometheusError("already started")
        self.tmpdir = Path(tempfile.mkdtemp(prefix="canopy-prom-"))
        last_error: Exception | None = None
        for _attempt in range(3):  # a free port can be taken between probing and binding
            self.port = free_port()
            try:
                self._spawn_and_wait()
                return self
            except PrometheusError as exc:
                last_error = exc
                self._kill_process()
                if "address already in use" not in str(exc):
                    break
        self.stop()
        raise last_error or PrometheusError("Prometheus did not start")

    def _spawn_and_wait(self) -> None:
        self.config_path.write_text(json.dumps(self.build_config(), indent=2))
        self.data_dir.mkdir(exist_ok=True)
        args = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=info",
        ]
        if self.remote_write_receiver:
            args.append("--web.enable-remote-write-receiver")
        if self.enable_admin_api:
            args.append("--web.enable-admin-api")
        args += self.extra_args
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.tmpdir,
            start_new_session=True,  # a Ctrl-C in the terminal is ours to forward, not its
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with code {self.proc.returncode} during startup:\n"
                    + self.log_tail()
                )
            try:
                r = self.session.get(self.url + "/-/ready", timeout=1)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise PrometheusError(
            f"prometheus not ready after {self.startup_timeout}s:\n" + self.log_tail()
        )

    def _kill_process(self, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL after 15s) and delete the temporary directory."""
        self._kill_process()
        self.session.close()
        if self.tmpdir is not None and not self.keep_dir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
        self.port = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reload(self) -> None:
        """Rewrite the config file from the current attributes and send SIGHUP."""
        self.config_path.write_text(json.dumps(self.build_config(), indent=2))
        os.kill(self.pid, signal.SIGHUP)

    # --- HTTP API ---

    def api(self, path: str, params: Mapping[str, Any] | None = None, method: str = "GET") -> Any:
        """Call ``/api/v1/<path>`` and return ``data``; :class:`PrometheusError` on error."""
        url = f"{self.url}/api/v1/{path.lstrip('/')}"
        if method == "GET":
            r = self.session.get(url, params=params, timeout=30)
        else:
            r = self.session.post(url, data=params, timeout=30)
        try:
            body = r.json()
        except ValueError:
            raise PrometheusError(f"{method} {url}: HTTP {r.status_code}: {r.text[:500]}") from None
        if body.get("status") != "success":
            kind, error = body.get("errorType"), body.get("error")
            raise PrometheusError(f"{method} {url}: HTTP {r.status_code}: {kind}: {error}")
        return body.get("data")

    def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]] | Any:
        """Instant query; returns ``data["result"]`` (a list for vectors)."""
        params: dict[str, Any] = {"query": expr}
        if time is not None:
            params["time"] = repr(float(time))
        return self.api("query", params)["result"]

    def query_range(
        self, expr: str, start: float, end: float, step: float | str
    ) -> list[dict[str, Any]]:
        """Range query; returns ``data["result"]`` (a matrix)."""
        params = {"query": expr, "start": repr(float(start)), "end": repr(float(end)), "step": step}
        return self.api("query_range", params)["result"]

    def query_scalar(self, expr: str, time: float | None = None) -> float | None:
        """The value of a one-element vector or scalar result, or None when the vector is empty."""
        result = self.query(expr, time)
        if isinstance(result, list):
            if not result:
                return None
            return float(result[0]["value"][1])
        return float(result[1])

    def series(self, match: str, start: float | None = None, end: float | None = None) -> list:
        params: dict[str, Any] = {"match[]": match}
        if start is not None:
            params["start"] = repr(float(start))
        if end is not None:
            params["end"] = repr(float(end))
        return self.api("series", params)

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2
    ) -> Any:
        """Call ``predicate`` until it returns something truthy; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        while True:
            try:
                result = predicate()
                if result:
                    return result
            except (PrometheusError, requests.RequestException) as exc:
                last_exc = exc
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s (last error: {last_exc})")
            time.sleep(interval)

    def remote_write(self, body: bytes, *, check: bool = True) -> requests.Response:
        """POST a snappy-compressed WriteRequest to this server's receiver (``/api/v1/write``)."""
        if not self.remote_write_receiver:
            raise PrometheusError("started without remote_write_receiver=True")
        r = post_remote_write(self.write_url, body, session=self.session)
        if check and not 200 <= r.status_code < 300:
            raise PrometheusError(f"remote write answered {r.status_code}: {r.text.strip()}")
        return r

    def snapshot(self, skip_head: bool = False) -> Path:
        """Admin API TSDB snapshot (writes the head as a block); needs ``enable_admin_api``."""
        data = self.api("admin/tsdb/snapshot", {"skip_head": str(skip_head).lower()}, "POST")
        return self.data_dir / "snapshots" / data["name"]

    # --- resources ---

    def cpu_seconds(self) -> float:
        """CPU seconds (user+system) the Prometheus process has used so far."""
        return _proc_cpu_seconds(self.pid)

    def disk_usage(self) -> dict[str, int]:
        """Apparent bytes of the TSDB parts: ``wal``, ``chunks_head``, ``blocks``, ``total``."""
        out = {"wal": 0, "chunks_head": 0, "blocks": 0, "snapshots": 0, "other": 0}
        for entry in self.data_dir.iterdir():
            size = dir_bytes(entry)[0] if entry.is_dir() else entry.stat().st_size
            if entry.name in ("wal", "chunks_head", "snapshots"):
                out[entry.name] += size
            elif entry.is_dir() and (entry / "meta.json").exists():
                out["blocks"] += size
            else:
                out["other"] += size
        out["total"] = sum(v for k, v in out.items() if k != "snapshots")
        return out
