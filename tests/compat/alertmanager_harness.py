"""A real Alertmanager (Debian's ``prometheus-alertmanager``) for tests, and a webhook sink to
see what it sends on.

    with WebhookSink() as sink, AlertmanagerServer(webhook_url=sink.url) as am:
        ...                 # POST alerts to am.url + "/api/v2/alerts"
        sink.wait_for(lambda n: n["status"] == "resolved")

Each instance has its own free 127.0.0.1 port and temporary directory; clustering is off.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from tests.compat.prometheus_harness import free_port


class AlertmanagerNotInstalled(RuntimeError):
    pass


def find_alertmanager() -> str:
    path = (
        os.environ.get("ALERTMANAGER_BIN")
        or shutil.which("prometheus-alertmanager")
        or shutil.which("alertmanager")
    )
    if not path:
        raise AlertmanagerNotInstalled(
            "prometheus-alertmanager was not found (apt-get install prometheus-alertmanager)"
        )
    return path


class WebhookSink:
    """An HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                with sink._lock:
                    sink.received.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> WebhookSink:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, predicate, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for body in self.received:
                    if predicate(body):
                        return body
            time.sleep(0.1)
        raise TimeoutError(f"no matching notification within {timeout}s: {self.received}")


class AlertmanagerServer:
    def __init__(self, *, webhook_url: str, group_by: tuple[str, ...] = ("alertname",)) -> None:
        self.binary = find_alertmanager()
        self.webhook_url = webhook_url
        self.group_by = list(group_by)
        self.port: int | None = None
        self.tmpdir: Path | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict:
        return {
            "route": {
                "receiver": "hook",
                "group_by": self.group_by,
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "hook",
                    "webhook_configs": [{"url": self.webhook_url, "send_resolved": True}],
                }
            ],
        }

    def __enter__(self) -> AlertmanagerServer:
        self.tmpdir = Path(tempfile.mkdtemp(prefix="canopy-am-"))
        (self.tmpdir / "am.yml").write_text(json.dumps(self.config()))
        self.port = free_port()
        self.log = open(self.tmpdir / "am.log", "ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.tmpdir / 'am.yml'}",
                f"--storage.path={self.tmpdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=info",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("alertmanager exited:\n" + self.log_tail())
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("alertmanager not ready:\n" + self.log_tail())

    def log_tail(self) -> str:
        assert self.tmpdir is not None
        return (self.tmpdir / "am.log").read_text(errors="replace")[-3000:]

    def alerts(self) -> list[dict]:
        return requests.get(self.url + "/api/v2/alerts", timeout=5).json()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
