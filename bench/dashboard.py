"""Server time of the dashboard's pages and of the API calls they make, on the PromQL
benchmark's Istio dataset, next to Prometheus answering the same PromQL in the same run.

    .venv/bin/python bench/dashboard.py                       # 2,000 series, 6 h, ~2 min
    .venv/bin/python bench/dashboard.py --series 10000 --hours 24   # bigger, ~8 min

A fresh Canopy and a fresh Prometheus (Debian's 2.42) receive the same remote-write requests
(bench/promql.py's dataset: istio_requests_total and istio_request_duration_milliseconds,
17 series per label set). Then, with a logged-in session (pages) or the bench token (APIs),
each URL is fetched --repeat times after one warm-up and the client's wall time until the
whole body is read is kept. Reference: Prometheus answering the very PromQL the mesh graph
ran (Canopy's /mesh/graph returns its queries), and Prometheus's own cardinality statistics
(``/api/v1/status/tsdb``) beside Canopy's Mimir cardinality API.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import requests

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import istio_payloads
from bench.harness.canopy import CanopyServer
from bench.harness.cpu import background_load
from bench.harness.table import print_columns
from bench.promql import build_dataset, load
from tests.compat.prometheus_harness import PrometheusServer, prometheus_version

PASSWORD = "bench-password-1234"
_SET_PASSWORD = f"""
from backend.tenancy.services import user_get_or_create
user_get_or_create(username="bench", password="{PASSWORD}")
"""


def timed(session: requests.Session, url: str, repeat: int, **kw) -> tuple[list[float], int]:
    session.get(url, timeout=300, **kw)  # warm-up
    times = []
    status = 0
    for _ in range(repeat):
        t = time.perf_counter()
        r = session.get(url, timeout=300, **kw)
        _ = r.content
        times.append(time.perf_counter() - t)
        status = r.status_code
    return times, status


def p95(values: list[float]) -> float:
    return (
        statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]
    )


def ms(v: float) -> str:
    return f"{v * 1000:.0f}"


def log_in(base: str) -> requests.Session:
    s = requests.Session()
    s.get(base + "/login/", timeout=30)
    r = s.post(
        base + "/login/",
        data={
            "username": "bench",
            "password": PASSWORD,
            "csrfmiddlewaretoken": s.cookies["csrftoken"],
        },
        headers={"Referer": base + "/login/"},
        timeout=30,
    )
    r.raise_for_status()
    return s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--interval", type=int, default=15_000, help="ms between scrapes")
    ap.add_argument("--samples-per-request", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)

    now = int(time.time() * 1000)
    end_ms = now - now % args.interval - args.interval
    ds = build_dataset(args.series, args.hours, args.interval, end_ms)
    print(
        f"dataset: {ds.n_series:,} series, {ds.n_steps:,} scrapes = {ds.n_samples:,} samples; "
        f"machine: {os.cpu_count()} CPUs"
    )
    limits = {"out_of_order_time_window_seconds": int(args.hours * 3600) + 7200}
    with contextlib.ExitStack() as stack:
        prom = stack.enter_context(PrometheusServer(remote_write_receiver=True, scrape_self=False))
        srv = stack.enter_context(CanopyServer(extra_limits=limits))
        print(f"prometheus {prometheus_version()} at {prom.url}; canopy at {srv.url}")
        push = dict(istio_payloads.REMOTE_WRITE_HEADERS)
        load(
            ds,
            {
                "prometheus": (prom.write_url, push),
                "canopy": (
                    srv.url + "/api/v1/push",
                    {**push, "Authorization": f"Bearer {srv.token}"},
                ),
            },
            args.samples_per_request,
        )
        t = time.monotonic()
        while srv.stored_samples() < ds.n_samples:
            if time.monotonic() - t > 600:
                print("canopy did not drain every sample in 10 min")
                return 1
            time.sleep(1)
        srv.compact()
        srv.sql("ANALYZE")
        srv._manage("shell", "-c", _SET_PASSWORD)

        page = log_in(srv.url)
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {srv.token}"
        prom_s = requests.Session()
        at = f"{ds.end_ms / 1000:.3f}"
        workload = ds.label_sets[0]["destination_workload"]
        ns = ds.label_sets[0]["destination_workload_namespace"]

        background = background_load(2.0)
        print(f"background load before measuring: {background:.2f} of {os.cpu_count()} CPUs")
        rows = [["what", "canopy p50 ms", "p95 ms", "reference", "ref p50 ms", "ref p95 ms"]]

        def add(name, canopy_times, ref_name="", ref_times=None):
            rows.append(
                [
                    name,
                    ms(statistics.median(canopy_times)),
                    ms(p95(canopy_times)),
                    ref_name,
                    ms(statistics.median(ref_times)) if ref_times else "",
                    ms(p95(ref_times)) if ref_times else "",
                ]
            )

        pages = ["/", "/mesh", "/metrics", "/settings/usage", f"/mesh/workload/{ns}/{workload}"]
        for path in pages:
            times, status = timed(page, srv.url + path, args.repeat)
            if status != 200:
                print(f"{path}: HTTP {status}")
                return 1
            add(f"page {path}", times)

        for group in ("workload", "app", "version", "namespace"):
            url = f"{srv.url}/mesh/graph?group={group}&window=5m&time={at}"
            times, status = timed(api, url, args.repeat)
            graph = api.get(url, timeout=300).json()
            ref = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                for q in graph["queries"]:
                    _ = prom_s.get(
                        f"{prom.url}/api/v1/query", params={"query": q, "time": at}
                    ).content
                ref.append(time.perf_counter() - t)
            add(
                f"/mesh/graph {group} ({len(graph['nodes'])} nodes, {len(graph['edges'])} edges)",
                times,
                f"prometheus, same {len(graph['queries'])} queries",
                ref,
            )

        tsdb, _ = timed(prom_s, f"{prom.url}/api/v1/status/tsdb", args.repeat)
        base = srv.url + "/prometheus/api/v1/cardinality/"
        for path in (
            "label_names",
            "label_values?label_names[]=__name__",
            "label_values?label_names[]=destination_workload&label_names[]=response_code",
            'label_names?selector={__name__="istio_requests_total"}',
            f'active_series?selector=istio_requests_total{{destination_workload="{workload}"}}',
        ):
            times, status = timed(api, base + path, args.repeat)
            if status != 200:
                print(f"{path}: HTTP {status}")
                return 1
            add(f"cardinality/{path}"[:90], times, "prometheus status/tsdb", tsdb)

        # The workload page's inbound RED queries (the browser sends them as query_range).
        sel = f'reporter="destination",destination_workload="{workload}"'
        red = {
            "rate": f"sum(rate(istio_requests_total{{{sel}}}[1m]))",
            "p99": "histogram_quantile(0.99, sum by (le) "
            f"(rate(istio_request_duration_milliseconds_bucket{{{sel}}}[1m])))",
        }
        start = f"{ds.end_ms / 1000 - 3600:.3f}"
        for name, q in red.items():
            params = {"query": q, "start": start, "end": at, "step": "15"}
            times, _ = timed(
                api, srv.url + "/prometheus/api/v1/query_range", args.repeat, params=params
            )
            ref, _ = timed(prom_s, prom.url + "/api/v1/query_range", args.repeat, params=params)
            add(f"workload {name} 1h query_range", times, "prometheus", ref)
        print_columns(rows)
        over = [r[0] for r in rows[1:] if float(r[2]) >= 300]
        print("p95 >= 300 ms: " + (", ".join(over) if over else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
