"""A fresh Canopy for a benchmark run: ``make run``'s processes on embedded PostgreSQL and
Redis in a throw-away data folder, with one tenant whose limits do not throttle the load."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

_SETUP_TENANT = """
import json, os
from backend.tenancy.models import Organization
from backend.tenancy.services import limits_update, org_create, token_create, user_get_or_create
owner = user_get_or_create(username="bench")
org = Organization.objects.filter(slug="bench").first() or org_create(
    slug="bench", name="Benchmark", owner=owner)
limits_update(org=org, changes={"ingestion_rate": 100_000_000, "ingestion_burst_size": 100_000_000,
              "out_of_order_time_window_seconds": 6 * 3600,
              "max_global_series_per_user": 10_000_000, "max_global_series_per_metric": 10_000_000,
              "traces_ingestion_rate": 100_000_000, "traces_ingestion_burst_size": 100_000_000,
              "max_spans_per_trace": 10_000_000,
              **json.loads(os.environ.get("CANOPY_BENCH_LIMITS") or "{}")})
_, secret = token_create(org=org, name="bench",
                         scopes=["metrics:write", "metrics:read", "traces:write", "traces:read"])
print(org.pk, secret)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CanopyServer:
    def __init__(
        self,
        *,
        web_workers: int = 2,
        worker_concurrency: int = 2,
        keep: bool = False,
        extra_limits: dict[str, int] | None = None,
    ):
        # extra_limits: OrgLimits fields set on the bench tenant on top of the defaults above,
        # e.g. {"out_of_order_time_window_seconds": 48 * 3600} to load a day of history.
        # CANOPY_BENCH_KEEP=1 keeps the data folder (and its canopy.log) for a post-mortem.
        keep = keep or bool(os.environ.get("CANOPY_BENCH_KEEP"))
        self.data_dir = Path(tempfile.mkdtemp(prefix="canopy-bench-"))
        self.port = _free_port()
        self.agent_port = _free_port()  # the mesh agents' API (its own async server)
        self.keep = keep
        self.extra_limits = dict(extra_limits or {})
        self.env = {
            **os.environ,
            "CANOPY_DATA_DIR": str(self.data_dir),
            "CANOPY_BIND": f"127.0.0.1:{self.port}",
            "CANOPY_AGENT_BIND": f"127.0.0.1:{self.agent_port}",
            "CANOPY_WEB_WORKERS": str(web_workers),
            "CANOPY_WORKER_CONCURRENCY": str(worker_concurrency),
            "LOG_LEVEL": "WARNING",
        }
        for var in ("DATABASE_URL", "REDIS_URL"):
            self.env.pop(var, None)
        self.proc: subprocess.Popen | None = None
        self.org_id: int | None = None
        self.token: str | None = None
        self.database_url: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def agent_url(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}"

    def _manage(self, *args: str, env: dict[str, str] | None = None) -> str:
        out = subprocess.run(
            [PYTHON, "-m", "backend.embedded", "exec", "--", PYTHON, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout

    def start(self) -> CanopyServer:
        log = open(self.data_dir / "canopy.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "backend.embedded", "exec", "--", PYTHON, "-m", "backend.runner"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"Canopy exited; see {self.data_dir / 'canopy.log'}")
            time.sleep(0.5)
        else:
            raise RuntimeError("Canopy did not become ready within 180 s")
        org_id, self.token = self._manage(
            "shell",
            "-c",
            _SETUP_TENANT,
            env={"CANOPY_BENCH_LIMITS": json.dumps(self.extra_limits)},
        ).split()[-2:]
        self.org_id = int(org_id)
        self.database_url = (
            self._manage(
                "shell", "-c", "from django.conf import settings; print(settings.DATABASE_URL)"
            )
            .strip()
            .splitlines()[-1]
        )
        return self

    def cpu_patterns(self) -> list[str]:
        """pgrep -f patterns of every Canopy process, the embedded servers included."""
        return [
            f"backend.embedded exec.*{self.data_dir}|{self.data_dir}/postgres",
            "backend.runner",
        ]

    def root_pids(self) -> list[int]:
        pids = [self.proc.pid] if self.proc else []
        redis_pid = self.data_dir / "redis" / "redis.pid"
        if redis_pid.exists():
            pids.append(int(redis_pid.read_text().strip()))
        return pids

    def sql(self, query: str, params=()) -> list[tuple]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def stored_samples(self) -> float:
        """Samples that the read path serves: those in blocks (drained from the outbox)."""
        ((n,),) = self.sql(
            "SELECT coalesce(sum(n_samples), 0) FROM metric_blocks WHERE org_id = %s",
            [self.org_id],
        )
        return float(n)

    def storage_bytes(self) -> int:
        return int(
            self._manage(
                "shell",
                "-c",
                "from backend.metrics.storage.blocks import storage_bytes; print(storage_bytes())",
            ).split()[-1]
        )

    def table_bytes(self) -> dict[str, int]:
        """Bytes per table (with its indexes and TOAST); the block partitions summed."""
        rows = self.sql(
            "SELECT CASE WHEN relname LIKE 'metric_blocks_%%' THEN 'metric_blocks' ELSE relname "
            "END, sum(pg_total_relation_size(oid)) FROM pg_class WHERE relkind = 'r' AND "
            "relname LIKE 'metric_%%' GROUP BY 1 ORDER BY 1"
        )
        return {name: int(size) for name, size in rows}

    def compact(self) -> None:
        """Merge every block group now, as the beat job would once they are 30 s old."""
        self._manage(
            "shell",
            "-c",
            "from backend.metrics.storage.compaction import blocks_compact\n"
            "while blocks_compact(min_age_seconds=0): pass",
        )
        # Give back the space of drained outbox rows and replaced blocks, which autovacuum
        # would only mark reusable: the figure is then what the data itself takes.
        self.sql("VACUUM FULL metric_blocks")
        self.sql("VACUUM FULL metric_batches")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        subprocess.run(
            [PYTHON, "-m", "backend.embedded", "stop"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            check=False,
        )
        if not self.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> CanopyServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
