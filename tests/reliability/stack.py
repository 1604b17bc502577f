"""The real stack for the long reliability runs (``make reliability``): ``make run``'s processes
(gunicorn web, Celery worker + beat, OTLP/gRPC, agent API, under ``backend.runner``) on embedded
PostgreSQL and Redis (AOF on) in a throw-away data folder, plus what the runs need around it:
tenants, process look-up, fault injection, senders that retry, and read-backs."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import requests

from backend import embedded
from bench import istio_payloads as ip
from bench.harness.canopy import CanopyServer
from tests.helpers.otlp import kv

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRY_GRPC = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.ABORTED,
}

_TENANT = """
import json, os
from backend.tenancy.models import Organization
from backend.tenancy.services import limits_update, org_create, token_create, user_get_or_create
spec = json.loads(os.environ["CANOPY_RELIAB_TENANT"])
owner = user_get_or_create(username=spec["slug"] + "-owner")
org = Organization.objects.filter(slug=spec["slug"]).first() or org_create(
    slug=spec["slug"], name=spec["slug"], owner=owner)
limits_update(org=org, changes=spec["limits"])
_, secret = token_create(org=org, name="reliab", scopes=["metrics:write", "metrics:read",
                         "traces:write", "traces:read"])
print(org.pk, secret)
"""


@functools.lru_cache(maxsize=100_000)
def _labels_bytes(labels: tuple[tuple[str, str], ...]) -> bytes:
    return ip.encode_labels(list(labels))


def write_request(series: list[tuple[list[tuple[str, str]], list[tuple[int, float]]]]) -> bytes:
    """A remote-write 1.0 body (snappy) of explicit series and (timestamp, value) samples.
    The label sets' encodings are cached: a sender repeats its series, and the load generator
    should spend as little CPU as it can on a machine it shares with the stack it measures."""
    out = []
    for labels, samples in series:
        parts = [_labels_bytes(tuple(labels))]
        for t, v in samples:
            sample = b"\x09" + struct.pack("<d", v) + b"\x10" + ip._varint(t)
            parts.append(ip._field_bytes(2, sample))
        out.append(ip._field_bytes(1, b"".join(parts)))
    return ip.compress(b"".join(out))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line)"""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        table[int(entry.name)] = (ppid, cmd)
    return table


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Stack(CanopyServer):
    """``CanopyServer`` (bench/harness) with its own gRPC port, tenants, and faults."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.grpc_port = _free_port()
        self.env["CANOPY_OTLP_GRPC_BIND"] = f"127.0.0.1:{self.grpc_port}"

    def tenant(self, slug: str, **limits) -> tuple[int, str]:
        spec = json.dumps({"slug": slug, "limits": limits})
        org_id, secret = self._manage(
            "shell", "-c", _TENANT, env={"CANOPY_RELIAB_TENANT": spec}
        ).split()[-2:]
        return int(org_id), secret

    # -- processes ---------------------------------------------------------------------------

    def descendants(self) -> dict[int, str]:
        table = _proc_table()
        out, frontier = {}, {self.proc.pid}
        while frontier:
            children = {p for p, (pp, _) in table.items() if pp in frontier and p not in out}
            for p in children:
                out[p] = table[p][1]
            frontier = children
        return out

    def _children_of(self, word: str) -> list[int]:
        """Worker processes: children of the ``word`` master (gunicorn's arbiter, Celery's
        main process), which honcho started through ``/bin/sh -c``; not the masters."""
        table = _proc_table()
        mine = self.descendants()

        def started_by_runner(p: int) -> bool:
            parent = table[table[p][0]][1]
            return parent.startswith("/bin/sh") or "backend.respawn" in parent

        masters = {
            p
            for p, cmd in mine.items()
            if word in cmd
            and "backend.respawn" not in cmd
            and "beat" not in cmd
            and not cmd.startswith("/bin/sh")
            and started_by_runner(p)
        }
        return sorted(p for p in mine if table[p][0] in masters)

    def gunicorn_workers(self) -> list[int]:
        return self._children_of("gunicorn")

    def celery_workers(self) -> list[int]:
        return self._children_of("celery")

    def stack_rss_mb(self) -> float:
        return sum(rss_mb(p) for p in self.descendants())

    # -- faults ------------------------------------------------------------------------------

    def kill_celery_worker(self) -> str:
        pid = self.celery_workers()[0]
        os.kill(pid, signal.SIGKILL)
        return f"kill -9 Celery pool worker {pid}"

    def kill_gunicorn_worker(self) -> str:
        pid = self.gunicorn_workers()[0]
        os.kill(pid, signal.SIGKILL)
        return f"kill -9 gunicorn worker {pid}"

    def restart_postgres(self) -> str:
        embedded.stop(self.data_dir, redis_server=False)
        time.sleep(1)
        url = embedded.postgres_url(self.data_dir)
        if url.partition("?")[2] != self.database_url.partition("?")[2]:
            raise RuntimeError(f"PostgreSQL came back elsewhere: {url}")
        return "restart PostgreSQL (pg_ctl stop -m fast, start)"

    def restart_redis(self) -> str:
        embedded.stop(self.data_dir, postgres=False)
        time.sleep(1)
        embedded.redis_url(self.data_dir)
        return "restart Redis (SHUTDOWN with AOF, start from the AOF)"

    def ready(self) -> bool:
        try:
            return requests.get(self.url + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def outbox_depth(self, org_id: int) -> tuple[int, float]:
        """(batches waiting in both outboxes, age in s of the oldest)"""
        rows = self.sql(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(received_at)), 0) FROM "
            "(SELECT received_at FROM metric_batches WHERE org_id = %s UNION ALL "
            "SELECT received_at FROM trace_batches WHERE org_id = %s) b",
            [org_id, org_id],
        )
        return int(rows[0][0]), float(rows[0][1])

    def promql(self, token: str, query: str, **params) -> dict:
        r = requests.get(
            self.url + "/prometheus/api/v1/query",
            params={"query": query, **params},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        r.raise_for_status()
        return r.json()["data"]


# -- senders -------------------------------------------------------------------------------


@dataclass
class Sender:
    """Sends one payload after another at a steady rate; retries a payload on 5xx, 429 and
    connection errors until it gets a 2xx (or ``give_up_s`` passes), never skipping one.
    Keeps every acknowledged identity and the outcome of every attempt."""

    name: str
    rate: float  # payloads per second
    make: Callable[[int], tuple[object, bytes]]  # seq -> (identity, payload)
    send: Callable[[bytes], int | str]  # -> HTTP status, or a string for a transport error
    retry: bool = True
    give_up_s: float = 180
    acked: list = field(default_factory=list)
    attempts: list = field(default_factory=list)  # (monotonic time, status)
    retried: int = 0
    recovered: int = 0  # payloads that failed first and then succeeded on retry
    lost: list = field(default_factory=list)  # payloads that never got a 2xx
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        seq, next_at = 0, time.monotonic()
        while not self.stop.is_set():
            identity, payload = self.make(seq)
            failed_once, first = False, time.monotonic()
            while True:
                status = self.send(payload)
                self.attempts.append((time.monotonic(), status))
                if isinstance(status, int) and 200 <= status < 300:
                    self.acked.append(identity)
                    self.recovered += failed_once
                    break
                if not self.retry:
                    break
                failed_once = True
                self.retried += 1
                if time.monotonic() - first > self.give_up_s:
                    self.lost.append(identity)
                    break
                time.sleep(0.25)
            seq += 1
            next_at += 1 / self.rate
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            else:
                next_at = time.monotonic()

    def first_success_after(self, t: float) -> float | None:
        for at, status in self.attempts:
            if at >= t and isinstance(status, int) and 200 <= status < 300:
                return at
        return None

    def errors(self) -> int:
        return sum(1 for _, s in self.attempts if not (isinstance(s, int) and 200 <= s < 300))


def remote_write_sender(
    stack: Stack,
    token: str,
    name: str,
    rate: float,
    *,
    series: int = 5,
    metric: str = "reliab_samples",
    **kwargs,
) -> Sender:
    http = requests.Session()
    last = [0]

    def make(seq: int):
        ts = max(int(time.time() * 1000), last[0] + 1)  # unique per series of this sender
        last[0] = ts
        body = write_request(
            [
                ([("__name__", metric), ("k", str(k)), ("sender", name)], [(ts, float(seq))])
                for k in range(series)
            ]
        )
        return ts, body

    def send(body: bytes):
        try:
            return http.post(
                stack.url + "/api/v1/push",
                data=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Encoding": "snappy",
                    "Content-Type": "application/x-protobuf",
                    "X-Prometheus-Remote-Write-Version": "0.1.0",
                },
                timeout=30,
            ).status_code
        except requests.RequestException as exc:
            return type(exc).__name__

    return Sender(name, rate, make, send, **kwargs)


def otlp_grpc_sender(
    stack: Stack, token: str, name: str, rate: float, *, spans: int = 5, **kwargs
) -> Sender:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    channel = grpc.insecure_channel(f"127.0.0.1:{stack.grpc_port}")
    call = channel.unary_unary(TRACE_EXPORT)
    prefix = name.encode()[:8].ljust(8, b"_")

    def make(seq: int):
        trace_id = prefix + seq.to_bytes(8, "big")
        now = time.time_ns()
        out = [
            Span(
                trace_id=trace_id,
                span_id=(i + 1).to_bytes(8, "big"),
                parent_span_id=b"" if i == 0 else (1).to_bytes(8, "big"),
                name=f"op-{i}",
                kind=2,
                start_time_unix_nano=now + i * 1000,
                end_time_unix_nano=now + i * 1000 + 500_000,
            )
            for i in range(spans)
        ]
        request = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=Resource(attributes=[kv("service.name", f"reliab-{name}")]),
                    scope_spans=[ScopeSpans(spans=out)],
                )
            ]
        )
        return trace_id, request.SerializeToString()

    def send(body: bytes):
        try:
            call(body, metadata=(("authorization", f"Bearer {token}"),), timeout=30)
            return 200
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                return 429
            if code in RETRY_GRPC:
                return 503
            return 400

    return Sender(name, rate, make, send, **kwargs)


def run_senders(senders: list[Sender]) -> list[threading.Thread]:
    threads = [threading.Thread(target=s.run, name=s.name, daemon=True) for s in senders]
    for t in threads:
        t.start()
    return threads


def stop_senders(senders: list[Sender], threads: list[threading.Thread]) -> None:
    for s in senders:
        s.stop.set()
    for t in threads:
        t.join(240)


def django_reader(stack: Stack):
    """Django set up in this process against the stack's database (to read spans back)."""
    os.environ["DATABASE_URL"] = stack.database_url
    os.environ["REDIS_URL"] = embedded.redis_url_if_running(stack.data_dir) or ""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
    import django

    django.setup()
    from django.db import connection

    connection.close()
    return connection
