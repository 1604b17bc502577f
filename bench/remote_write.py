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

This file holds the scenarios (the workload, the targets, the table); the machinery they run on
(senders, CPU accounting, the stored check, a fresh Canopy) is in ``bench/harness/``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import istio_payloads
from bench.harness.canopy import CanopyServer
from bench.harness.cpu import TreeCpu, rss_bytes
from bench.harness.senders import NullSink, Payloads
from bench.harness.table import print_columns
from bench.harness.targets import TargetResult, measure_target, prometheus_api_query
from tests.compat.prometheus_harness import (
    PrometheusError,
    PrometheusServer,
    dir_bytes,
    prometheus_version,
)

METRIC = istio_payloads.METRIC_NAME


# --- the workload -----------------------------------------------------------------------------


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


def ready_expr(payloads: Payloads, step_ms: int) -> str:
    span_s = (payloads.last_ms - payloads.start_ms) // 1000 + max(1, step_ms // 2000)
    return f"sum(count_over_time({METRIC}[{span_s}s]))"


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
                chunks = sum(dir_bytes(block / "chunks")[0] for block in snap.iterdir())
                index = sum(
                    (block / "index").stat().st_size
                    for block in snap.iterdir()
                    if (block / "index").exists()
                )
                total = dir_bytes(snap)[0]
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
    """A fresh Canopy (bench/harness/canopy.py): same payloads, its whole process tree's CPU
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
    with NullSink() as sink:
        return measure_target(
            "null sink (sender check)",
            f"{sink.url}/api/v1/write",
            dict(istio_payloads.REMOTE_WRITE_HEADERS),
            payloads,
            cpu=sink.cpu_seconds,
            stored_check=None,
            ready_timeout=0,
            settle_timeout=0,
        )


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
    print_columns([[c[0] for c in cols]] + [[f(r) for _, f in cols] for r in results])
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
