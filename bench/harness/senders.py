"""Remote-write senders as Prometheus's shards are: one process per shard (no shared GIL), each
holding one keep-alive connection and sending its requests strictly one after the other; and a
null sink that answers 204 to anything, to measure what the senders alone can push."""

from __future__ import annotations

import http.client
import multiprocessing as mp
import queue
import resource
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bench.harness.cpu import read_stat


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


class NullSink:
    """An HTTP server process on 127.0.0.1 that reads each request and answers 204."""

    def __enter__(self) -> NullSink:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.proc = mp.get_context("fork").Process(target=_sink_main, args=(sock,), daemon=True)
        self.proc.start()
        sock.close()
        return self

    def cpu_seconds(self) -> float:
        return read_stat(self.proc.pid)[1]

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.join()
