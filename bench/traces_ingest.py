"""Trace ingest benchmark: OTLP/HTTP batches of Envoy-shaped mesh spans into a fresh Canopy,
end to end (acknowledged, then stored: queryable in the span blocks the drain writes), next to
the raw PostgreSQL ``COPY`` of the very same spans as rows into the row head's table (daily
partitions, its indexes), measured in the same run; then the rollup, the pruning of the key
head, the compaction of small blocks, and the bytes on disk.

    .venv/bin/python bench/traces_ingest.py                  # 4 senders x 25 requests x 1,000 spans
    .venv/bin/python bench/traces_ingest.py --requests 50 --spans 500
    .venv/bin/python bench/traces_ingest.py --shape otel     # OTel SDK spans, 20 attributes each

The end-to-end part runs ``--runs`` times (3; each run other traces of the same shape), each
once the stack has booted and gone idle, and the median run by spans/s stored is the figure,
as the median of three COPYs is the reference's; each run also prints the CPU the whole stack
(receivers, workers, PostgreSQL, Redis) spent per span. The ratio stored / raw COPY is the
first figure of merit (the issue's target: at least 1.0);
bytes per span the second (target: at most 80 B/span), measured right after the drain (blocks
and the key head) and once the rollups counted the spans (keys pruned, small blocks merged,
``VACUUM FULL``). Bytes are the span tables and catalogs (partitions, indexes, TOAST; the
outbox excluded).
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

import psycopg

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decode_traces import envoy_spans, otlp_request
from bench.harness.canopy import CanopyServer
from bench.harness.cpu import TreeCpu, background_load, wait_idle

SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, service_id, operation_id, kind, start_ns, "
    "duration_ns, status_code, status_message, resource_id, scope, attributes, events, links, "
    "flags, trace_state"
)


# What an OpenTelemetry SDK puts on an HTTP server or client span (20 attributes).
_OTEL_SERVICES = ["web", "checkout", "cart", "payments", "inventory", "shipping"]
_ROUTES = ["/api/cart", "/api/cart/items/{id}", "/api/checkout", "/api/pay", "/api/stock/{sku}"]


def otel_spans(n_spans: int, seed: int, start_us: int) -> list[dict]:
    """``n_spans`` OTel SDK spans (trees of HTTP server/client spans), format-neutral dicts."""
    rng = random.Random(seed)
    spans: list[dict] = []
    while len(spans) < n_spans:
        trace_id = rng.randbytes(16)
        t0 = start_us + rng.randrange(60_000_000)
        parent = None
        for depth in range(8):
            if len(spans) >= n_spans:
                break
            service = _OTEL_SERVICES[(depth // 2) % len(_OTEL_SERVICES)]
            kind = "SERVER" if depth % 2 == 0 else "CLIENT"
            route = rng.choice(_ROUTES)
            status = 500 if rng.random() < 0.02 else 200
            span_id = rng.randbytes(8)
            tags = {
                "http.request.method": rng.choice(["GET", "GET", "POST"]),
                "http.route": route,
                "url.path": route.replace("{id}", str(rng.randrange(10**4))).replace(
                    "{sku}", f"SKU-{rng.randrange(10**5)}"
                ),
                "url.scheme": "http",
                "server.address": f"{service}.shop.svc.cluster.local",
                "server.port": "8080",
                "network.protocol.version": "1.1",
                "network.peer.address": f"10.1.{rng.randrange(4)}.{rng.randrange(2, 40)}",
                "network.peer.port": str(rng.randrange(30000, 60000)),
                "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0",
                "client.address": f"10.1.{rng.randrange(4)}.{rng.randrange(2, 40)}",
                "http.response.status_code": str(status),
                "http.request.body.size": str(rng.randrange(0, 2000)),
                "http.response.body.size": str(rng.randrange(100, 20000)),
                "thread.id": str(rng.randrange(1, 64)),
                "thread.name": f"http-nio-8080-exec-{rng.randrange(1, 64)}",
                "code.function": rng.choice(["handle", "get", "post", "call"]),
                "code.namespace": f"com.shop.{service}.Controller",
                "enduser.id": f"user-{rng.randrange(5000)}",
                "session.id": f"{rng.getrandbits(64):016x}",
            }
            spans.append(
                {
                    "trace_id": trace_id,
                    "span_id": span_id,
                    "parent_id": parent,
                    "kind": kind,
                    "name": f"{tags['http.request.method']} {route}",
                    "start_us": t0,
                    "duration_us": rng.randrange(200, 200_000),
                    "service": service,
                    "tags": tags,
                    "error": status != 200,
                }
            )
            parent = span_id
            t0 += rng.randrange(10, 2000)
    return spans


def build_bodies(
    senders: int, requests: int, spans: int, shape: str, run: int = 0
) -> list[list[bytes]]:
    """The requests of each sender; ``run`` picks other seeds (other traces, same shape)."""
    start_us = time.time_ns() // 1000 - 600 * 10**6  # ten minutes ago: inside every window
    make = envoy_spans if shape == "envoy" else otel_spans
    return [
        [
            otlp_request(
                make(
                    spans,
                    seed=run * 10_000_000 + s * 100_000 + r,
                    start_us=start_us + r * 10**6,
                )
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


def rows_into_head(org_id: int, into_org: int) -> int:
    """(Run inside Canopy.) Decode the org's blocks and write their spans as head rows
    (``trace_spans``, attributes as jsonb) under ``into_org``: the rows of the reference."""
    from django.db import connection, transaction

    from backend.pipeline import partitions
    from backend.tracing.storage import blocks, catalog
    from backend.tracing.storage.encoding import Block

    n = 0
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT min_start_ns, payload FROM trace_blocks WHERE org_id = %s", [org_id])
        stored = cur.fetchall()
        starts = [lo for lo, _ in stored]
        partitions.ensure("trace_spans", starts, per_ms=1_000_000)
        with cur.copy(f"COPY trace_spans (org_id, {SPAN_COLUMNS}) FROM STDIN") as copy:
            for lo, payload in stored:
                r = blocks.rows_from_block(Block(bytes(payload), lo))
                for i in range(len(r)):
                    copy.write_row(
                        (
                            into_org,
                            r.trace_ids[i],
                            r.span_ids[i],
                            r.parent_ids[i],
                            int(r.service_ids[i]),
                            int(r.operation_ids[i]),
                            int(r.kinds[i]),
                            int(r.starts[i]),
                            int(r.durations[i]),
                            int(r.statuses[i]),
                            r.status_messages[i],
                            int(r.resource_ids[i]),
                            r.scopes[i],
                            catalog.dumps(r.attributes[i]) if r.attributes[i] else None,
                            catalog.dumps(r.events[i]) if r.events[i] else None,
                            catalog.dumps(r.links[i]) if r.links[i] else None,
                            int(r.flags[i]),
                            r.trace_states[i],
                        )
                    )
                    n += 1
    return n


def drain_alone(shape: str, n_batches: int, spans: int) -> None:
    """(Run inside Canopy.) The drain on its own: ``n_batches`` outbox rows of a new org
    (decoded and appended beforehand, untimed, without queuing a drain), then the drain loop
    timed; prints spans drained, wall and CPU seconds of this process (PostgreSQL's share is
    in the wall time only)."""
    from backend.tenancy.services import org_create, user_get_or_create
    from backend.tracing import storage
    from ingest.decoders.otlp_traces import decode_otlp_protobuf
    from ingest.decoders.spans import SpanLimits

    org = org_create(
        slug=f"drain-{time.time_ns() % 10**9}",
        name="drain alone",
        owner=user_get_or_create(username="bench-drain"),
    )
    start_us = time.time_ns() // 1000 - 600 * 10**6
    make = envoy_spans if shape == "envoy" else otel_spans
    for r in range(n_batches):
        body = otlp_request(make(spans, seed=7_000_000 + r, start_us=start_us + r * 10**6))
        batch = decode_otlp_protobuf(body.SerializeToString(), SpanLimits()).spans
        storage.batch_append(org_id=org.pk, spans=batch)
    drained = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while (n := storage.batches_drain(org_id=org.pk)) is not None:
        drained += n
    print(drained, time.perf_counter() - wall, time.process_time() - cpu)


def unlimited_org(kind: str):
    """(Run inside Canopy.) A new org whose trace limits never refuse the bench's load."""
    from backend.tenancy.services import limits_update, org_create, user_get_or_create

    org = org_create(
        slug=f"{kind}-{time.time_ns() % 10**9}",
        name=f"{kind} alone",
        owner=user_get_or_create(username="bench-accept"),
    )
    limits_update(
        org=org,
        changes={
            "traces_ingestion_rate": 100_000_000,
            "traces_ingestion_burst_size": 100_000_000,
            "max_spans_per_trace": 10_000_000,
        },
    )
    return org


def request_bodies(shape: str, n_requests: int, spans: int) -> list[bytes]:
    """OTLP protobuf bodies of ``spans`` spans each, starting 10 minutes ago a second apart."""
    start_us = time.time_ns() // 1000 - 600 * 10**6
    make = envoy_spans if shape == "envoy" else otel_spans
    return [
        otlp_request(
            make(spans, seed=8_000_000 + r, start_us=start_us + r * 10**6)
        ).SerializeToString()
        for r in range(n_requests)
    ]


def accept_alone(shape: str, n_requests: int, spans: int) -> None:
    """(Run inside Canopy.) The receiver's work on its own: ``n_requests`` OTLP protobuf
    bodies accepted in one process as ``POST /v1/traces`` does after authentication (decode,
    limits, the per-trace cap in Redis, the outbox row), without HTTP; prints spans accepted,
    wall and CPU seconds of this process."""
    from ingest.accept.payload import Payload
    from ingest.accept.traces import TraceFormat, traces_accept

    org = unlimited_org("accept")
    bodies = request_bodies(shape, n_requests + 1, spans)

    def accept(body: bytes) -> int:
        payload = Payload(lambda cap: body, "application/x-protobuf")
        return traces_accept(org_id=org.pk, trace_format=TraceFormat.OTLP, payload=payload).stored

    accept(bodies[0])  # catalogs warm, as in a running receiver
    accepted = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for body in bodies[1:]:
        accepted += accept(body)
    print(accepted, time.perf_counter() - wall, time.process_time() - cpu)


COPY_RUNS = 3  # the reference is timed this many times (one COPY's rate varies by run)


def raw_copy_rates(srv: CanopyServer, tree: TreeCpu) -> tuple[list[float], float, int, int]:
    """The reference: the org's stored spans as rows (text), COPYed into the row head's
    table (partitioned by day, with its indexes) under an org id that collides with
    nothing, ``COPY_RUNS`` times (the rows deleted and vacuumed between runs), each once the
    stack is idle, as the end-to-end runs are (beat jobs, autovacuum); returns the rates, the
    rows and their bytes. The rows are made from the blocks beforehand, outside the timing."""

    scratch = srv.org_id + 1_000_000
    other_org = srv.org_id + 2_000_000
    srv._manage(
        "shell",
        "-c",
        f"from bench.traces_ingest import rows_into_head; rows_into_head({srv.org_id}, {scratch})",
    )
    with psycopg.connect(srv.database_url, autocommit=True) as conn:
        buf = io.BytesIO()
        with conn.cursor().copy(
            f"COPY (SELECT {SPAN_COLUMNS} FROM trace_spans WHERE org_id = {scratch}) TO STDOUT"
        ) as copy:
            for chunk in copy:
                buf.write(chunk)
        conn.execute("DELETE FROM trace_spans WHERE org_id = %s", [scratch])
        conn.execute("VACUUM trace_spans")
        data = b"".join(
            f"{other_org}\t".encode() + line + b"\n" for line in buf.getvalue().splitlines()
        )
        rows = data.count(b"\n")
        rates: list[float] = []
        cpus: list[float] = []  # CPU-seconds of PostgreSQL per row
        for attempt in range(COPY_RUNS):
            if attempt:
                conn.execute("DELETE FROM trace_spans WHERE org_id = %s", [other_org])
                conn.execute("VACUUM trace_spans")
            wait_idle(tree, timeout=60, idle_share=0.1)
            cpu0, t = tree(), time.perf_counter()
            with conn.cursor().copy(
                f"COPY trace_spans (org_id, {SPAN_COLUMNS}) FROM STDIN"
            ) as copy:
                copy.write(data)
            rates.append(rows / (time.perf_counter() - t))
            cpus.append((tree() - cpu0) / rows)
        row_bytes = span_store_bytes(srv, ("trace_spans",))  # (no blocks' org: only these rows)
        conn.execute("DELETE FROM trace_spans WHERE org_id = %s", [other_org])
    return rates, statistics.median(cpus), rows, row_bytes


CATALOGS = ("trace_services", "trace_operations", "trace_resources")


def span_store_bytes(
    srv: CanopyServer, partitioned=("trace_spans", "trace_blocks"), tables=CATALOGS
) -> int:
    """Bytes of these partitioned tables (their partitions) and tables: heap, indexes, TOAST."""
    ((n,),) = srv.sql(
        "SELECT coalesce(sum(pg_total_relation_size(oid)), 0) FROM pg_class WHERE relkind = "
        "'r' AND (relname LIKE ANY(%s) OR relname = ANY(%s))",
        [[t + "_%" for t in partitioned], list(tables)],
    )
    return int(n)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--senders", type=int, default=4)
    p.add_argument("--requests", type=int, default=25, help="per sender")
    p.add_argument("--spans", type=int, default=1000, help="per request")
    p.add_argument("--shape", choices=["envoy", "otel"], default="envoy")
    p.add_argument(
        "--runs", type=int, default=3, help="end-to-end runs (other traces each); the median"
    )
    args = p.parse_args(argv)
    per_run = args.senders * args.requests * args.spans
    total = per_run * args.runs
    t = time.perf_counter()
    bodies = [
        build_bodies(args.senders, args.requests, args.spans, args.shape, run)
        for run in range(args.runs)
    ]
    size = sum(len(b) for s in bodies[0] for b in s) / (args.senders * args.requests)
    print(
        f"workload: {args.runs} runs of {args.senders} senders x {args.requests} requests x "
        f"{args.spans} spans = {per_run:,} {args.shape} spans, {size / 1024:.0f} KiB/request "
        f"(OTLP protobuf), built in {time.perf_counter() - t:.1f}s"
    )
    with CanopyServer() as srv:
        tree = TreeCpu(srv.root_pids(), srv.cpu_patterns())
        runs = []  # (spans/s acknowledged, spans/s stored, s from last 2xx to stored, CPU-s)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        # (one connection for the polling: a new one per poll would fork a backend each time,
        # CPU the pipeline under test needs)
        with psycopg.connect(srv.database_url, autocommit=True) as poll:
            for run_bodies in bodies:
                # the stack booted (workers, beat, gRPC, agents) and idle: a run measures the
                # pipeline, not start-up or the previous run's tail
                wait_idle(tree, timeout=60, idle_share=0.1)
                load = background_load(0.5)
                ((before,),) = poll.execute(
                    "SELECT coalesce(sum(n_spans), 0) FROM trace_blocks WHERE org_id = %s",
                    [srv.org_id],
                ).fetchall()
                cpu0 = tree()
                t0, t_acked, run_latencies, run_statuses = send_all(srv.url, srv.token, run_bodies)
                latencies += run_latencies
                for status, n in run_statuses.items():
                    statuses[status] = statuses.get(status, 0) + n
                deadline = time.monotonic() + 300
                stored = 0
                while time.monotonic() < deadline:
                    # stored = queryable: the drain commits the spans' blocks (which the
                    # trace API reads) and their keys in one transaction
                    ((stored,),) = poll.execute(
                        "SELECT coalesce(sum(n_spans), 0) FROM trace_blocks WHERE org_id = %s",
                        [srv.org_id],
                    ).fetchall()
                    if stored - before >= per_run:
                        break
                    time.sleep(0.05)
                t_stored = time.perf_counter()
                runs.append(
                    (
                        per_run / (t_acked - t0),
                        per_run / (t_stored - t0),
                        t_stored - t_acked,
                        tree() - cpu0,
                        load,
                    )
                )
        ((n_blocks, head_rows),) = srv.sql(
            "SELECT (SELECT count(*) FROM trace_blocks WHERE org_id = %s), "
            "(SELECT count(*) FROM trace_spans WHERE org_id = %s)",
            [srv.org_id, srv.org_id],
        )
        print(
            f"statuses {statuses}; stored {stored:,} of {total:,} in {n_blocks} blocks "
            f"(row head: {head_rows} rows)"
        )
        fresh_bytes = span_store_bytes(srv, ("trace_blocks",), (*CATALOGS, "trace_span_keys"))
        copy_rates, copy_cpu, copied, row_bytes = raw_copy_rates(srv, tree)
        copy_rate = statistics.median(copy_rates)
        # What the beat jobs do once the spans are old enough: count them (rollups, reading
        # the key head), then prune the counted keys and compact small blocks. Timed in one
        # process, catalogs warm after the first call.
        out = srv._manage(
            "shell",
            "-c",
            "import time\n"
            "from backend.tracing import dependencies\n"
            "from backend.tracing.storage import blocks\n"
            "t = time.perf_counter(); dependencies.rollup_due(); r = time.perf_counter() - t\n"
            "t = time.perf_counter()\n"
            f"blocks.keys_prune(org_id={srv.org_id}, before_ns=2**62, max_seq=2**62)\n"
            "p = time.perf_counter() - t; t = time.perf_counter()\n"
            f"m, w = blocks.blocks_compact(org_id={srv.org_id}, settled_before_ns=2**62)\n"
            "print(r, p, m, w, time.perf_counter() - t)",
        )
        rollup_s, prune_s, merged, written, compact_s = out.split()[-5:]
        for table in ("trace_spans", "trace_blocks", "trace_batches", "trace_span_keys"):
            for (name,) in srv.sql(
                "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE %s",
                [table + "%"],
            ):
                srv.sql(f"VACUUM FULL {name}")
        block_bytes = span_store_bytes(srv, ("trace_blocks",), (*CATALOGS, "trace_span_keys"))
        ((index_bytes,),) = srv.sql(
            "SELECT coalesce(sum(pg_relation_size(i.indexrelid)), 0) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE 'trace_blocks_%%' "
            "AND c.relname LIKE '%%trace_keys%%'"
        )
        ((prefix_bytes,),) = srv.sql(  # the short-id index (issue 17): tokens + their GIN
            "SELECT coalesce(sum(pg_relation_size(i.indexrelid)), 0) "
            "+ (SELECT coalesce(sum(pg_column_size(prefix_tokens)), 0) FROM trace_blocks) "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname LIKE 'trace_blocks_%%' AND c.relname LIKE '%%prefix_tokens%%'"
        )
        # The drain alone and the receiver alone, in one process each, after the bytes were
        # measured (the sweep would queue a drain for the drain's batches only after 20 s; a
        # drain run meanwhile would just take batches from the loop, which counts its own)
        drained, drain_wall, drain_cpu = (
            float(x)
            for x in srv._manage(
                "shell",
                "-c",
                "from bench.traces_ingest import drain_alone; "
                f"drain_alone({args.shape!r}, {min(40, args.senders * args.requests)}, "
                f"{args.spans})",
            ).split()[-3:]
        )
        accepted, accept_wall, accept_cpu = (
            float(x)
            for x in srv._manage(
                "shell",
                "-c",
                "from bench.traces_ingest import accept_alone; "
                f"accept_alone({args.shape!r}, {min(20, args.senders * args.requests)}, "
                f"{args.spans})",
            ).split()[-3:]
        )
    p50 = statistics.median(latencies) * 1000
    p99 = sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000
    acked_rate, stored_rate, lag, cpu, _ = sorted(runs, key=lambda r: r[1])[len(runs) // 2]
    print(
        f"end-to-end (median of {len(runs)} runs by spans/s stored): {acked_rate:,.0f} spans/s "
        f"acknowledged (request p50 {p50:.0f} ms, p99 {p99:.0f} ms over all runs), "
        f"{stored_rate:,.0f} spans/s stored (all queryable in blocks {lag:.1f} s after the "
        f"last 2xx), {cpu / per_run * 1e6:.0f} CPU-us per span (receivers, workers, "
        "PostgreSQL, Redis)"
    )
    for i, (a, st, lg, c, ld) in enumerate(runs, 1):
        print(
            f"  run {i}: {a:,.0f} acknowledged, {st:,.0f} stored spans/s, {lg:.1f} s lag, "
            f"{c / per_run * 1e6:.0f} CPU-us/span; {ld:.2f} CPUs busy just before"
        )
    print(
        f"raw COPY of the same {copied:,} spans as rows into the row head's table: "
        f"{copy_rate:,.0f} spans/s (median of {COPY_RUNS}: "
        f"{', '.join(f'{r:,.0f}' for r in copy_rates)}), {copy_cpu * 1e6:.0f} CPU-us per span "
        "(one PostgreSQL backend)"
    )
    print(
        f"CPU per span: the pipeline {cpu / per_run * 1e6:.0f} CPU-us on {os.cpu_count()} cores, "
        f"the COPY {copy_cpu * 1e6:.0f} CPU-us in one backend: at full use of the cores the "
        f"ratio would be {os.cpu_count() * copy_cpu / (cpu / per_run):.2f}"
    )
    print(
        f"ratio stored (in blocks) / raw COPY: {stored_rate / copy_rate:.2f} (runs: "
        f"{', '.join(f'{r[1] / copy_rate:.2f}' for r in runs)})"
    )
    print(
        f"the drain alone (outbox -> keys + blocks, one process): {drained:,.0f} spans, "
        f"{drained / drain_wall:,.0f} spans/s ({drained / drain_cpu:,.0f} spans per CPU-second "
        f"of the worker) = {drained / drain_wall / copy_rate:.2f} x raw COPY"
    )
    print(
        f"the receiver alone (decode, limits, outbox row; no HTTP; one process): "
        f"{accepted:,.0f} spans, {accepted / accept_wall:,.0f} spans/s "
        f"({accepted / accept_cpu:,.0f} spans per CPU-second of the receiver)"
    )
    print(
        f"what the beat jobs had left after the runs (they run meanwhile): rollup "
        f"{float(rollup_s):.1f} s; keys pruned in {float(prune_s):.1f} s; compaction merged "
        f"{merged} blocks into {written} in {float(compact_s):.1f} s (the day's rollup at scale: "
        "bench/traces_query.py --rollup-only)"
    )
    print(
        f"bytes on disk as rows (the reference's): {row_bytes:,} B = "
        f"{row_bytes / max(copied, 1):.0f} B/span"
    )
    print(
        f"bytes on disk right after the drain (blocks + key head + catalogs): {fresh_bytes:,} B "
        f"= {fresh_bytes / max(stored, 1):.1f} B/span"
    )
    print(
        f"bytes on disk once counted, pruned and compacted: {block_bytes:,} B = "
        f"{block_bytes / max(stored, 1):.1f} B/span (blocks, summaries, trace index "
        f"{index_bytes / max(stored, 1):.1f} B/span, short-id tokens and their index "
        f"{prefix_bytes / max(stored, 1):.1f} B/span, catalogs; Jaeger's ClickHouse "
        "benchmark: ~76 B/span)"
    )
    return 0 if stored >= total else 1


if __name__ == "__main__":
    sys.exit(main())
