"""Trace ingest benchmark: OTLP/HTTP batches of Envoy-shaped mesh spans into a fresh Canopy,
end to end (acknowledged, then stored in ``trace_spans``), next to the raw PostgreSQL ``COPY``
rate of the very same rows into the very same tables, measured in the same run.

    .venv/bin/python bench/traces_ingest.py                  # 4 senders x 25 requests x 1,000 spans
    .venv/bin/python bench/traces_ingest.py --requests 50 --spans 500

The ratio end-to-end / raw COPY is the figure of merit (issue target: at least 50 %): COPY is
the ceiling of this storage on this machine. Bytes per span are the span tables and catalogs
(partitions, indexes, TOAST) after the run, the outbox excluded.
"""

from __future__ import annotations

import argparse
import http.client
import io
import statistics
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decode_traces import envoy_spans, otlp_request
from bench.harness.canopy import CanopyServer

SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, service_id, operation_id, kind, start_ns, "
    "duration_ns, status_code, status_message, resource_id, scope, attributes, events, links, "
    "flags, trace_state"
)


def build_bodies(senders: int, requests: int, spans: int) -> list[list[bytes]]:
    start_us = time.time_ns() // 1000 - 600 * 10**6  # ten minutes ago: inside every window
    return [
        [
            otlp_request(
                envoy_spans(spans, seed=s * 100_000 + r, start_us=start_us + r * 10**6)
            ).SerializeToString()
            for r in range(requests)
        ]
        for s in range(senders)
    ]


def send_all(url: str, token: str, bodies: list[list[bytes]]) -> tuple[float, float, list, dict]:
    """Each sender on its own keep-alive connection; returns (start, end, latencies, statuses)."""
    host = url.removeprefix("http://")
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()

    def sender(mine: list[bytes]) -> None:
        conn = http.client.HTTPConnection(host, timeout=60)
        for body in mine:
            t = time.perf_counter()
            conn.request(
                "POST",
                "/v1/traces",
                body=body,
                headers={
                    "Content-Type": "application/x-protobuf",
                    "Authorization": f"Bearer {token}",
                },
            )
            response = conn.getresponse()
            response.read()
            with lock:
                latencies.append(time.perf_counter() - t)
                statuses[response.status] = statuses.get(response.status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=sender, args=(b,)) for b in bodies]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return t0, time.perf_counter(), latencies, statuses


def raw_copy_rate(srv: CanopyServer) -> tuple[float, int]:
    """COPY the org's stored spans, as text, into the same table under another org id."""
    import psycopg

    with psycopg.connect(srv.database_url, autocommit=True) as conn:
        buf = io.BytesIO()
        with conn.cursor().copy(
            f"COPY (SELECT {SPAN_COLUMNS} FROM trace_spans WHERE org_id = {srv.org_id}) TO STDOUT"
        ) as copy:
            for chunk in copy:
                buf.write(chunk)
        other_org = srv.org_id + 1_000_000  # no such org: rows that collide with nothing
        data = b"".join(
            f"{other_org}\t".encode() + line + b"\n" for line in buf.getvalue().splitlines()
        )
        rows = data.count(b"\n")
        t = time.perf_counter()
        with conn.cursor().copy(f"COPY trace_spans (org_id, {SPAN_COLUMNS}) FROM STDIN") as copy:
            copy.write(data)
        elapsed = time.perf_counter() - t
        conn.execute("DELETE FROM trace_spans WHERE org_id = %s", [other_org])
    return rows / elapsed, rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--senders", type=int, default=4)
    p.add_argument("--requests", type=int, default=25, help="per sender")
    p.add_argument("--spans", type=int, default=1000, help="per request")
    args = p.parse_args(argv)
    total = args.senders * args.requests * args.spans
    t = time.perf_counter()
    bodies = build_bodies(args.senders, args.requests, args.spans)
    size = sum(len(b) for s in bodies for b in s) / (args.senders * args.requests)
    print(
        f"workload: {args.senders} senders x {args.requests} requests x {args.spans} spans = "
        f"{total:,} Envoy-shaped spans, {size / 1024:.0f} KiB/request (OTLP protobuf), "
        f"built in {time.perf_counter() - t:.1f}s"
    )
    with CanopyServer() as srv:
        t0, t_acked, latencies, statuses = send_all(srv.url, srv.token, bodies)
        deadline = time.monotonic() + 300
        stored = 0
        while time.monotonic() < deadline:
            ((stored,),) = srv.sql(
                "SELECT count(*) FROM trace_spans WHERE org_id = %s", [srv.org_id]
            )
            if stored >= total:
                break
            time.sleep(0.05)
        t_stored = time.perf_counter()
        print(f"statuses {statuses}; stored {stored:,} of {total:,}")
        # Size first: the COPY reference below adds (and deletes) rows in the same table.
        ((span_bytes,),) = srv.sql(
            "SELECT coalesce(sum(pg_total_relation_size(oid)), 0) FROM pg_class WHERE relkind = "
            "'r' AND (relname LIKE 'trace_spans_%%' OR relname IN ('trace_services', "
            "'trace_operations', 'trace_resources'))"
        )
        copy_rate, copied = raw_copy_rate(srv)
    ack_s, stored_s = t_acked - t0, t_stored - t0
    p50 = statistics.median(latencies) * 1000
    p99 = sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000
    print(
        f"end-to-end: {total / ack_s:,.0f} spans/s acknowledged (request p50 {p50:.0f} ms, "
        f"p99 {p99:.0f} ms), {total / stored_s:,.0f} spans/s stored (all in trace_spans "
        f"{stored_s - ack_s:.1f} s after the last 2xx)"
    )
    print(f"raw COPY of the same {copied:,} rows into the same table: {copy_rate:,.0f} spans/s")
    print(f"ratio end-to-end (stored) / raw COPY: {total / stored_s / copy_rate:.2f}")
    print(
        f"bytes on disk: {span_bytes:,} B = {span_bytes / max(stored, 1):.0f} B/span "
        "(spans, indexes, TOAST, catalogs; Jaeger's ClickHouse benchmark: ~76 B/span)"
    )
    return 0 if stored >= total else 1


if __name__ == "__main__":
    sys.exit(main())
