"""Remote-write ingestion benchmark: a real Prometheus vs. Canopy, same payloads, same run.

    .venv/bin/python bench/remote_write.py
    .venv/bin/python bench/remote_write.py --canopy-url http://127.0.0.1:8000 --token cnp_... \\
        --canopy-pgrep 'gunicorn|celery' --canopy-pgrep 'postgres'

Payloads (Istio-shaped ``istio_requests_total``, see ``bench/istio_payloads.py``) are built and
compressed before any timing. Each shard is a separate sender *process* (no shared GIL) holding one
keep-alive connection and sending its requests strictly one after the other, like the shards of
Prometheus's remote-write queue. Targets run one after the other, never concurrently.

Figures per target:
  ack samples/s     samples in 2xx answers / wall time from start until the last 2xx
  stored samples/s  samples / wall time until a PromQL query at the last timestamp counts every
                    sample (``sum(count_over_time(istio_requests_total[span]))``); Canopy: via
                    ``{canopy-url}/prometheus/api/v1/query``, "n/a" when that is not available
  server CPU s/M    user+system CPU seconds of the server's process tree per million samples
                    (Prometheus: its process; Canopy: --canopy-pids / --canopy-pgrep trees),
                    measured until stored (or until the tree goes idle when stored is n/a)
  sender CPU s/M    CPU of our own sender processes, to show the client is not the bottleneck
  machine CPU s/M   all non-idle CPU of the machine over the same interval (includes the sender)
  bytes/sample      Prometheus: WAL + chunks_head bytes on disk after the run (the head lives
                    in memory + WAL); a TSDB snapshot (head written as a block) is shown too.
                    Canopy: delta of --canopy-bytes-cmd (a shell command printing a byte count)
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import queue
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import istio_payloads
from bench.canopy_server import CanopyServer
from tests.compat.prometheus_harness import (
    PrometheusError,
    PrometheusServer,
    _dir_bytes,
    prometheus_version,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
METRIC = istio_payloads.METRIC_NAME


class Unavailable(Exception):
    """A figure cannot be measured for this target (endpoint missing, query unsupported...)."""


# --- CPU accounting ---------------------------------------------------------------------------


def _read_stat(pid: int) -> tuple[int, float] | None:
    """(ppid, utime+stime+cutime+cstime seconds) of ``pid``, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / CLK_TCK


def _all_procs() -> dict[int, tuple[int, float]]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _read_stat(int(name))
            if st is not None:
                out[int(name)] = st
    return out


def _descendants(roots: set[int], procs: dict[int, tuple[int, float]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    stack = [r for r in roots if r in procs]
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack.extend(children.get(pid, ()))
    return seen


def _pgrep(pattern: str) -> set[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return {int(x) for x in out.stdout.split()}


class TreeCpu:
    """CPU seconds of the process trees rooted at explicit pids and/or pgrep matches.

    Includes reaped children (cutime/cstime), so short-lived workers are not lost.
    Our own process tree (the benchmark and its senders) is always excluded.
    """

    def __init__(self, pids: list[int], patterns: list[str]) -> None:
        self.pids = set(pids)
        self.patterns = patterns

    def __bool__(self) -> bool:
        return bool(self.pids or self.patterns)

    def _tree(self) -> tuple[set[int], dict[int, tuple[int, float]]]:
        procs = _all_procs()
        roots = set(self.pids)
        for pattern in self.patterns:
            roots |= _pgrep(pattern)
        # Our own tree (the senders) is never counted, except servers we started ourselves
        # and named explicitly as roots.
        ours = _descendants({os.getpid()}, procs) - _descendants(self.pids, procs)
        return _descendants(roots - ours, procs) - ours, procs

    def pids_now(self) -> set[int]:
        return self._tree()[0]

    def __call__(self) -> float:
        tree, procs = self._tree()
        return sum(procs[p][1] for p in tree)


def machine_cpu_seconds() -> float:
    """Non-idle CPU seconds of the whole machine since boot (all cores)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# --- senders ----------------------------------------------------------------------------------


@dataclass
class Payloads:
    shards: list[list[bytes]]  # compressed bodies, per shard, in send order
    counts: list[list[int]]  # samples per body
    start_ms: int
    last_ms: int
    raw_bytes: int
    build_seconds: float

    @property
    def total_samples(self) -> int:
        return sum(sum(c) for c in self.counts)

    @property
    def n_requests(self) -> int:
        return sum(len(s) for s in self.shards)

    @property
    def compressed_bytes(self) -> int:
        return sum(len(b) for s in self.shards for b in s)


def build_payloads(args: argparse.Namespace) -> Payloads:
    t = time.perf_counter()
    n_steps = istio_payloads.steps_needed(
        args.requests, args.series_per_shard, args.samples_per_series, args.samples_per_request
    )
    start_ms = (
        args.start_ms
        if args.start_ms is not None
        else istio_payloads.aligned_start_ms(n_steps, args.step_ms)
    )
    shards, counts = [], []
    raw = 0
    last_ms = start_ms
    for shard in range(args.shards):
        reqs = istio_payloads.build_uncompressed_requests(
            shard,
            args.requests,
            start_ms,
            args.step_ms,
            n_series=args.series_per_shard,
            samples_per_series=args.samples_per_series,
            samples_per_request=args.samples_per_request,
        )
        shards.append([istio_payloads.compress(body) for body, _, _ in reqs])
        counts.append([n for _, n, _ in reqs])
        raw += sum(len(body) for body, _, _ in reqs)
        last_ms = max(last_ms, max(ts for _, _, ts in reqs))
    return Payloads(shards, counts, start_ms, last_ms, raw, time.perf_counter() - t)


def _sender_main(
    idx: int,
    url: str,
    headers: dict[str, str],
    bodies: list[bytes],
    counts: list[int],
    ready_q: Any,
    go: Any,
    result_q: Any,
    timeout: float,
) -> None:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        ready_q.put((idx, f"connect failed: {exc}"))
        return
    ready_q.put((idx, None))
    go.wait()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    ok_samples = ok_requests = 0
    statuses: Counter[str] = Counter()
    first_error = None
    last_ok = None
    latencies = []
    for body, n in zip(bodies, counts, strict=True):
        t = time.monotonic()
        try:
            conn.request("POST", path, body, headers)
            resp = conn.getresponse()
            data = resp.read()
            status: int | str = resp.status
        except (OSError, http.client.HTTPException) as exc:
            status, data = type(exc).__name__, str(exc).encode()
            conn.close()  # reconnects on the next request
        now = time.monotonic()
        latencies.append(now - t)
        statuses[str(status)] += 1
        if isinstance(status, int) and 200 <= status < 300:
            ok_samples += n
            ok_requests += 1
            last_ok = now
        elif first_error is None:
            first_error = f"{status}: {data[:300].decode(errors='replace').strip()}"
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    conn.close()
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    result_q.put(
        {
            "idx": idx,
            "ok_samples": ok_samples,
            "ok_requests": ok_requests,
            "statuses": dict(statuses),
            "first_error": first_error,
            "last_ok": last_ok,
            "latencies": latencies,
            "cpu": cpu,
        }
    )


@dataclass
class SendResult:
    t0: float
    t_ack: float | None
    ok_samples: int
    ok_requests: int
    statuses: Counter
    first_error: str | None
    latencies: list[float]
    sender_cpu: float


def run_senders(
    url: str,
    headers: dict[str, str],
    payloads: Payloads,
    on_start: Callable[[], None],
    timeout: float = 60.0,
) -> SendResult:
    """One forked process per shard; ``on_start`` runs just before the starting gun."""
    ctx = mp.get_context("fork")
    ready_q, result_q, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(
            target=_sender_main,
            args=(i, url, headers, bodies, counts, ready_q, go, result_q, timeout),
            daemon=True,
        )
        for i, (bodies, counts) in enumerate(zip(payloads.shards, payloads.counts, strict=True))
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            idx, err = ready_q.get(timeout=30)
            if err:
                raise RuntimeError(f"sender {idx}: {err}")
        on_start()
        t0 = time.monotonic()
        go.set()
        results = []
        while len(results) < len(procs):
            try:
                results.append(result_q.get(timeout=1))
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    code = dead[0].exitcode
                    raise RuntimeError(f"sender process died (exit code {code})") from None
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    statuses: Counter = Counter()
    for r in results:
        statuses.update(r["statuses"])
    oks = [r["last_ok"] for r in results if r["last_ok"] is not None]
    return SendResult(
        t0=t0,
        t_ack=max(oks) if oks else None,
        ok_samples=sum(r["ok_samples"] for r in results),
        ok_requests=sum(r["ok_requests"] for r in results),
        statuses=statuses,
        first_error=next((r["first_error"] for r in results if r["first_error"]), None),
        latencies=[x for r in results for x in r["latencies"]],
        sender_cpu=sum(r["cpu"] for r in results),
    )


# --- a null sink, to measure what the sender alone can push -----------------------------------


def _sink_conn(conn: socket.socket) -> None:
    buf = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                chunk = conn.recv(max(65536, length - len(buf)))
                if not chunk:
                    return
                buf += chunk
            buf = buf[length:]
            conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")


def _sink_main(sock: socket.socket) -> None:
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=_sink_conn, args=(conn,), daemon=True).start()


# --- readiness ("stored") and settling ---------------------------------------------------------


def ready_expr(payloads: Payloads, step_ms: int) -> str:
    span_s = (payloads.last_ms - payloads.start_ms) // 1000 + max(1, step_ms // 2000)
    return f"sum(count_over_time({METRIC}[{span_s}s]))"


def prometheus_api_query(
    url: str, expr: str, at: float, headers: dict[str, str] | None = None
) -> float:
    """Value of a one-element instant vector from a Prometheus-compatible API (0 if empty)."""
    try:
        r = requests.post(
            url, data={"query": expr, "time": repr(at)}, headers=headers or {}, timeout=30
        )
    except requests.RequestException as exc:
        raise Unavailable(f"query endpoint unreachable: {exc}") from None
    if r.status_code in (404, 405, 501):
        raise Unavailable(f"query endpoint answered {r.status_code}")
    try:
        body = r.json()
    except ValueError:
        raise Unavailable(f"query endpoint answered {r.status_code} without JSON") from None
    if r.status_code in (401, 403):
        raise Unavailable(f"query endpoint answered {r.status_code}: {body}")
    if body.get("status") != "success":
        raise Unavailable(f"query failed: {body.get('errorType')}: {body.get('error')}")
    result = body["data"]["result"]
    if body["data"].get("resultType") == "scalar":
        return float(result[1])
    return float(result[0]["value"][1]) if result else 0.0


def wait_stored(
    check: Callable[[], float],
    expected: int,
    cpu: Callable[[], float] | None,
    timeout: float,
) -> tuple[float, float | None, float, str | None]:
    """Poll ``check`` until it reaches ``expected``.

    Returns (t_stored, server CPU just before the successful query, machine CPU likewise, note).
    Raises Unavailable when the check cannot run, TimeoutError on timeout.
    """
    deadline = time.monotonic() + timeout
    interval = 0.05
    got = 0.0
    while True:
        cpu_before = cpu() if cpu else None
        mach_before = machine_cpu_seconds()
        got = check()
        if got >= expected:
            note = None
            if got > expected:
                note = f"stored count {got:.0f} > {expected} (data left from an earlier run?)"
            return time.monotonic(), cpu_before, mach_before, note
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {got:.0f} of {expected} samples visible after {timeout}s")
        time.sleep(interval)
        interval = min(0.5, interval * 1.5)


def wait_idle(cpu: Callable[[], float], timeout: float, idle_share: float = 0.05) -> float:
    """Wait until the tree uses < ``idle_share`` of a core for 1s; returns when idling began."""
    deadline = time.monotonic() + timeout
    prev_t, prev = time.monotonic(), cpu()
    idle_since = None
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now_t, now = time.monotonic(), cpu()
        if (now - prev) / (now_t - prev_t) < idle_share:
            idle_since = idle_since or prev_t
            if now_t - idle_since >= 1.0:
                return idle_since
        else:
            idle_since = None
        prev_t, prev = now_t, now
    return time.monotonic()


# --- one target -------------------------------------------------------------------------------


@dataclass
class TargetResult:
    name: str
    samples: int
    send: SendResult | None = None
    stored_s: float | None = None
    stored_note: str | None = None
    server_cpu: float | None = None
    cpu_note: str | None = None
    machine_cpu: float | None = None
    bytes_on_disk: int | None = None
    bytes_note: str | None = None
    details: list[str] = field(default_factory=list)

    @property
    def ack_s(self) -> float | None:
        if self.send is None or self.send.t_ack is None:
            return None
        return self.send.t_ack - self.send.t0

    @property
    def ack_rate(self) -> float | None:
        return self.send.ok_samples / self.ack_s if self.ack_s else None

    @property
    def stored_rate(self) -> float | None:
        return self.samples / self.stored_s if self.stored_s else None

    def per_m(self, value: float | None) -> float | None:
        return None if value is None else value / (self.samples / 1e6)

    @property
    def bytes_per_sample(self) -> float | None:
        return None if self.bytes_on_disk is None else self.bytes_on_disk / self.samples

    def as_dict(self) -> dict[str, Any]:
        s = self.send
        return {
            "target": self.name,
            "samples": self.samples,
            "ok_samples": s.ok_samples if s else None,
            "statuses": dict(s.statuses) if s else None,
            "first_error": s.first_error if s else None,
            "ack_seconds": self.ack_s,
            "ack_samples_per_s": self.ack_rate,
            "stored_seconds": self.stored_s,
            "stored_samples_per_s": self.stored_rate,
            "stored_note": self.stored_note,
            "server_cpu_s_per_m": self.per_m(self.server_cpu),
            "sender_cpu_s_per_m": self.per_m(s.sender_cpu) if s else None,
            "machine_cpu_s_per_m": self.per_m(self.machine_cpu),
            "bytes_per_sample": self.bytes_per_sample,
            "details": self.details,
        }


def measure_target(
    name: str,
    url: str,
    headers: dict[str, str],
    payloads: Payloads,
    *,
    cpu: Callable[[], float] | None,
    stored_check: Callable[[], float] | None,
    ready_timeout: float,
    settle_timeout: float,
) -> TargetResult:
    res = TargetResult(name, payloads.total_samples)
    marks: dict[str, float | None] = {}
    # other work on the machine skews every figure; say how much there was just before the run
    m0, t0 = machine_cpu_seconds(), time.monotonic()
    time.sleep(1.0)
    background = (machine_cpu_seconds() - m0) / (time.monotonic() - t0)
    res.details.append(f"background load before the run: {background:.2f} of {os.cpu_count()} CPUs")

    def on_start() -> None:
        marks["cpu0"] = cpu() if cpu else None
        marks["mach0"] = machine_cpu_seconds()

    res.send = run_senders(url, headers, payloads, on_start)
    cpu_end = cpu() if cpu else None
    mach_end = machine_cpu_seconds()
    if res.send.ok_samples < payloads.total_samples:
        res.stored_note = "not every request was acknowledged"
    elif stored_check is not None:
        try:
            t_stored, cpu_at, mach_at, note = wait_stored(
                stored_check, payloads.total_samples, cpu, ready_timeout
            )
            res.stored_s = t_stored - res.send.t0
            res.stored_note = note
            cpu_end, mach_end = (cpu_at if cpu else None), mach_at
        except Unavailable as exc:
            res.stored_note = f"n/a: {exc}"
        except TimeoutError as exc:
            res.stored_note = f"n/a: {exc}"
    else:
        res.stored_note = "n/a: no stored-check query"
    if res.stored_s is None and cpu is not None and settle_timeout > 0:
        # cannot tell when storage finished: count CPU until the server tree goes idle
        wait_idle(cpu, settle_timeout)
        cpu_end, mach_end = cpu(), machine_cpu_seconds()
        res.cpu_note = "CPU counted until the server tree went idle"
    if cpu is not None and marks.get("cpu0") is not None and cpu_end is not None:
        res.server_cpu = cpu_end - marks["cpu0"]
    res.machine_cpu = mach_end - marks["mach0"]
    return res


# --- targets ----------------------------------------------------------------------------------


def run_prometheus(args: argparse.Namespace, payloads: Payloads) -> TargetResult:
    version = prometheus_version()
    with PrometheusServer(
        remote_write_receiver=True, scrape_self=False, enable_admin_api=True
    ) as prom:
        expr = ready_expr(payloads, args.step_ms)
        at = payloads.last_ms / 1000
        res = measure_target(
            f"prometheus {version}",
            prom.write_url,
            dict(istio_payloads.REMOTE_WRITE_HEADERS),
            payloads,
            cpu=prom.cpu_seconds,
            stored_check=lambda: prom.query_scalar(expr, at) or 0.0,
            ready_timeout=args.ready_timeout,
            settle_timeout=args.settle_timeout,
        )
        disk = prom.disk_usage()
        res.bytes_on_disk = disk["wal"] + disk["chunks_head"] + disk["blocks"]
        res.bytes_note = "WAL + chunks_head + blocks"
        n = payloads.total_samples
        res.details.append(
            f"disk after run: wal {disk['wal']:,} B, chunks_head {disk['chunks_head']:,} B, "
            f"blocks {disk['blocks']:,} B -> {res.bytes_on_disk / n:.2f} B/sample "
            "(the head block itself is in memory; the WAL is its durable copy)"
        )
        res.details.append(f"RSS after run: {rss_bytes(prom.pid) / 2**20:.0f} MiB")
        if not args.no_snapshot:
            try:
                snap = prom.snapshot()
                # snapshots/<name>/<block ulid>/{chunks/, index, meta.json, tombstones}
                chunks = sum(_dir_bytes(block / "chunks")[0] for block in snap.iterdir())
                index = sum(
                    (block / "index").stat().st_size
                    for block in snap.iterdir()
                    if (block / "index").exists()
                )
                total = _dir_bytes(snap)[0]
                res.details.append(
                    f"TSDB snapshot (head written as a block): {total:,} B = "
                    f"{total / n:.2f} B/sample: chunks {chunks / n:.2f} B/sample, "
                    f"index {index:,} B "
                    f"(only {payloads.total_samples // max(1, args.shards * args.series_per_shard)}"
                    " samples/series; 120/chunk in steady state)"
                )
            except (PrometheusError, requests.RequestException, OSError, KeyError) as exc:
                res.details.append(f"snapshot failed: {exc}")
    return res


def run_canopy(args: argparse.Namespace, payloads: Payloads) -> TargetResult:
    base = args.canopy_url.rstrip("/")
    headers = dict(istio_payloads.REMOTE_WRITE_HEADERS)
    headers["Authorization"] = f"Bearer {args.token}"
    tree = TreeCpu(args.canopy_pids, args.canopy_pgrep)
    cpu = tree if tree else None

    stored_check = None
    if args.canopy_ready_query.lower() != "none":
        query_url = args.canopy_ready_query.format(url=base)
        qtoken = args.canopy_query_token or args.token
        qheaders = {"Authorization": f"Bearer {qtoken}"}
        expr = ready_expr(payloads, args.step_ms)
        at = payloads.last_ms / 1000

        def stored_check() -> float:
            return prometheus_api_query(query_url, expr, at, qheaders)

    bytes_before = _run_bytes_cmd(args.canopy_bytes_cmd) if args.canopy_bytes_cmd else None
    res = measure_target(
        "canopy",
        base + args.canopy_push_path,
        headers,
        payloads,
        cpu=cpu,
        stored_check=stored_check,
        ready_timeout=args.ready_timeout,
        settle_timeout=args.settle_timeout,
    )
    if cpu is not None:
        res.details.append(f"server tree: {len(tree.pids_now())} processes at the end")
    else:
        res.cpu_note = "n/a: pass --canopy-pids or --canopy-pgrep"
    if bytes_before is not None:
        res.bytes_on_disk = _run_bytes_cmd(args.canopy_bytes_cmd) - bytes_before
        res.bytes_note = "delta of --canopy-bytes-cmd"
    return res


def run_managed_canopy(args: argparse.Namespace, payloads: Payloads) -> TargetResult:
    """A fresh Canopy (bench/canopy_server.py): same payloads, its whole process tree's CPU
    (web, workers, beat, embedded PostgreSQL and Redis), stored = drained into blocks."""
    with CanopyServer(
        web_workers=args.canopy_web_workers, worker_concurrency=args.canopy_worker_concurrency
    ) as srv:
        headers = dict(istio_payloads.REMOTE_WRITE_HEADERS)
        headers["Authorization"] = f"Bearer {srv.token}"
        tree = TreeCpu(srv.root_pids(), srv.cpu_patterns())
        bytes_before = srv.storage_bytes()
        res = measure_target(
            "canopy",
            srv.url + "/api/v1/push",
            headers,
            payloads,
            cpu=tree,
            stored_check=srv.stored_samples,
            ready_timeout=args.ready_timeout,
            settle_timeout=args.settle_timeout,
        )
        n = payloads.total_samples
        fresh = srv.storage_bytes() - bytes_before
        srv.compact()
        res.bytes_on_disk = srv.storage_bytes() - bytes_before
        parts = ", ".join(f"{name} {size / n:.2f}" for name, size in srv.table_bytes().items())
        res.details.append(f"B/sample by table after compaction: {parts}")
        res.bytes_note = "tables + indexes after compaction"
        res.details.append(
            f"disk before compaction {fresh:,} B = {fresh / n:.2f} B/sample; after "
            f"{res.bytes_on_disk:,} B = {res.bytes_on_disk / n:.2f} B/sample "
            "(series catalog, outbox, blocks, with indexes and TOAST)"
        )
        res.details.append(f"server tree: {len(tree.pids_now())} processes at the end")
    return res


def _run_bytes_cmd(cmd: str) -> int:
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().split()[0])


def run_sink(args: argparse.Namespace, payloads: Payloads) -> TargetResult:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    proc = mp.get_context("fork").Process(target=_sink_main, args=(sock,), daemon=True)
    proc.start()
    sock.close()
    try:
        return measure_target(
            "null sink (sender check)",
            f"http://127.0.0.1:{port}/api/v1/write",
            dict(istio_payloads.REMOTE_WRITE_HEADERS),
            payloads,
            cpu=lambda: _read_stat(proc.pid)[1],
            stored_check=None,
            ready_timeout=0,
            settle_timeout=0,
        )
    finally:
        proc.kill()
        proc.join()


# --- output -----------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_table(results: list[TargetResult]) -> None:
    cols = [
        ("target", lambda r: r.name),
        ("ok/sent", lambda r: f"{r.send.ok_samples / 1e3:.0f}k/{r.samples / 1e3:.0f}k"),
        ("ack samples/s", lambda r: _fmt(r.ack_rate, ",.0f")),
        ("stored samples/s", lambda r: _fmt(r.stored_rate, ",.0f")),
        ("server CPU s/M", lambda r: _fmt(r.per_m(r.server_cpu), ".2f")),
        ("sender CPU s/M", lambda r: _fmt(r.per_m(r.send.sender_cpu), ".2f")),
        ("machine CPU s/M", lambda r: _fmt(r.per_m(r.machine_cpu), ".2f")),
        ("bytes/sample", lambda r: _fmt(r.bytes_per_sample, ".2f")),
        (
            "req p50/p99 ms",
            lambda r: (
                f"{statistics.median(r.send.latencies) * 1e3:.1f}/"
                f"{_p99(r.send.latencies) * 1e3:.1f}"
            ),
        ),
    ]
    rows = [[c[0] for c in cols]] + [[f(r) for _, f in cols] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
    line = "  ".join("-" * w for w in widths)
    for n, row in enumerate(rows):
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print(line)
    print()
    for r in results:
        notes = list(r.details)
        if r.send.first_error:
            notes.insert(0, f"statuses {dict(r.send.statuses)}; first error: {r.send.first_error}")
        for label, note in (("stored", r.stored_note), ("cpu", r.cpu_note)):
            if note:
                notes.append(f"{label}: {note}")
        if notes:
            print(f"{r.name}:")
            for note in notes:
                print(f"  - {note}")


def _p99(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * 0.99))]


def print_ratio(canopy: TargetResult, prom: TargetResult) -> None:
    def ratio(a: float | None, b: float | None, spec: str = ".2f") -> str:
        return "n/a" if a is None or not b else format(a / b, spec) + "x"

    print(
        "canopy/prometheus: "
        f"ack samples/s {ratio(canopy.ack_rate, prom.ack_rate)}, "
        f"stored samples/s {ratio(canopy.stored_rate, prom.stored_rate)}, "
        f"server CPU/sample {ratio(canopy.server_cpu, prom.server_cpu)}, "
        f"machine CPU/sample {ratio(canopy.machine_cpu, prom.machine_cpu)}, "
        f"bytes/sample {ratio(canopy.bytes_per_sample, prom.bytes_per_sample)}"
    )


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--target",
        choices=["prometheus"],
        default="prometheus",
        help="reference target; always run (a fresh Prometheus with the receiver enabled)",
    )
    g = p.add_argument_group("workload")
    g.add_argument("--shards", type=int, default=4, help="concurrent senders (default 4)")
    g.add_argument("--requests", type=int, default=60, help="requests per shard (default 60)")
    g.add_argument("--series-per-shard", type=int, default=2000, help="default 2000")
    g.add_argument("--samples-per-request", type=int, default=2000, help="default 2000")
    g.add_argument(
        "--samples-per-series",
        type=int,
        default=1,
        help="samples of each series per request (default 1: one scrape per request)",
    )
    g.add_argument("--step-ms", type=int, default=15000, help="scrape interval (default 15000)")
    g.add_argument("--start-ms", type=int, help="first timestamp (default: run ends now)")
    c = p.add_argument_group("canopy (optional second target)")
    c.add_argument(
        "--canopy",
        action="store_true",
        help="start a fresh Canopy (embedded PostgreSQL/Redis, temp data dir) and measure it",
    )
    c.add_argument("--canopy-web-workers", type=int, default=2)
    c.add_argument("--canopy-worker-concurrency", type=int, default=2)
    c.add_argument("--canopy-url", help="e.g. http://127.0.0.1:8000")
    c.add_argument("--token", help="API token with the metrics write scope")
    c.add_argument("--canopy-push-path", default="/api/v1/push")
    c.add_argument(
        "--canopy-pids",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[],
        help="comma-separated root pids of the server (their whole trees are measured)",
    )
    c.add_argument(
        "--canopy-pgrep",
        action="append",
        default=[],
        help="pgrep -f pattern of server root processes; repeatable (e.g. 'gunicorn|celery', "
        "'postgres' to include the database's CPU)",
    )
    c.add_argument(
        "--canopy-ready-query",
        default="{url}/prometheus/api/v1/query",
        help="Prometheus-compatible query URL for the stored check, or 'none'",
    )
    c.add_argument("--canopy-query-token", help="token for the query API (default: --token)")
    c.add_argument(
        "--canopy-bytes-cmd",
        help="shell command printing the bytes Canopy stores (run before/after; delta reported)",
    )
    o = p.add_argument_group("other")
    o.add_argument("--ready-timeout", type=float, default=60.0, help="stored-check timeout (s)")
    o.add_argument("--settle-timeout", type=float, default=60.0, help="max wait for CPU idle (s)")
    o.add_argument("--no-sender-check", action="store_true", help="skip the null-sink run")
    o.add_argument("--no-snapshot", action="store_true", help="skip the Prometheus TSDB snapshot")
    o.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.canopy_url and not args.token:
        p.error("--canopy-url needs --token")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    payloads = build_payloads(args)
    n = payloads.total_samples
    print(
        f"workload: {args.shards} shards x {args.requests} requests x "
        f"{args.samples_per_request} samples = {n:,} samples, "
        f"{args.shards * args.series_per_shard:,} series ({METRIC}, "
        f"{len(istio_payloads.series_for_shard(0, 1)[0])} labels), "
        f"{args.samples_per_series} sample(s)/series/request, step {args.step_ms} ms"
    )
    print(
        f"payloads: {payloads.compressed_bytes / payloads.n_requests / 1024:.0f} KiB/request "
        f"snappy ({payloads.raw_bytes / payloads.n_requests / 1024:.0f} KiB raw), "
        f"built in {payloads.build_seconds:.1f}s; machine: {os.cpu_count()} CPUs"
    )
    print()
    results = []
    if not args.no_sender_check:
        results.append(run_sink(args, payloads))
    prom = run_prometheus(args, payloads)
    results.append(prom)
    canopy = None
    if args.canopy:
        canopy = run_managed_canopy(args, payloads)
    elif args.canopy_url:
        canopy = run_canopy(args, payloads)
    if canopy:
        results.append(canopy)
    print_table(results)
    if canopy:
        print()
        print_ratio(canopy, prom)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "workload": {
                        "shards": args.shards,
                        "requests_per_shard": args.requests,
                        "samples": n,
                        "series": args.shards * args.series_per_shard,
                        "samples_per_series_per_request": args.samples_per_series,
                        "step_ms": args.step_ms,
                    },
                    "results": [r.as_dict() for r in results],
                },
                indent=2,
            )
        )
    failed = any(r.send.ok_samples < r.samples for r in results if r.send)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
