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

Everything is measured twice: quiet, then under a steady ingest load — a separate process
remote-writing fresh Istio samples (``--load-samples`` per second, other pods' series than the
dataset's) and sending OTLP/HTTP spans (``--load-spans`` per second, OTel SDK-shaped) to the
same Canopy, paced per second, for as long as the measuring takes. Prometheus (the reference)
is measured under the same load, as it receives none of it. The load's achieved rates and any
refused request are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import requests

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import istio_payloads
from bench.decode_traces import otlp_request
from bench.harness.canopy import CanopyServer
from bench.harness.cpu import background_load
from bench.harness.table import print_columns
from bench.promql import build_dataset, load
from bench.traces_ingest import otel_spans
from tests.compat.prometheus_harness import PrometheusServer, prometheus_version

PASSWORD = "bench-password-1234"
# Run in `manage.py shell` with BENCH_PASSWORD and BENCH_APPS (JSON ["app/namespace", …]).
_SET_PASSWORD = """
import json, os
from backend.meshconfig.services import revision_publish
from backend.tenancy.models import Organization
from backend.tenancy.services import user_get_or_create
user = user_get_or_create(username="bench", password=os.environ["BENCH_PASSWORD"])
org = Organization.objects.get(slug="bench")
# 40 mesh-config revisions, each changing one app's VirtualService (the workload page's
# markers filter them by the service they touched).
apps = json.loads(os.environ["BENCH_APPS"])
resources = []
for n in range(40):
    app, ns = apps[n % len(apps)].split("/")
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": app, "namespace": ns},
          "spec": {"hosts": [app], "http": [{"timeout": f"{n + 1}s",
                   "route": [{"destination": {"host": app}}]}]}}
    resources = [r for r in resources if r["metadata"] != vs["metadata"]] + [vs]
    revision_publish(org=org, resources=resources, message=f"bench {n}", actor=user, force=True)
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


LOAD_SERIES_PER_REQUEST = 500
LOAD_SPANS_PER_REQUEST = 100


def ingest_load(url: str, token: str, samples_s: int, spans_s: int, stop, ready, report) -> None:
    """Until ``stop`` is set: each second, ``samples_s`` samples (remote write, requests of
    500 series, one fresh sample each) and ``spans_s`` spans (OTLP/HTTP protobuf, requests of
    100), spread over the second. Puts (samples, spans, seconds, refused) on ``report``."""
    host = url.removeprefix("http://")
    write_requests = max(1, samples_s // LOAD_SERIES_PER_REQUEST) if samples_s else 0
    span_requests = max(1, spans_s // LOAD_SPANS_PER_REQUEST) if spans_s else 0
    # Built before the clock starts, so that the sender spends its time sending: the label
    # blobs of 8 x 500 series (each request gets fresh timestamps), and a minute of span
    # requests (reused after that minute: the same spans again, as a retrying SDK would).
    shards = [
        [istio_payloads.encode_labels(s) for s in istio_payloads.series_for_shard(5000 + i, 500)]
        for i in range(8)
    ]
    start_us = int(time.time() * 1e6)
    span_bodies = [
        otlp_request(
            otel_spans(LOAD_SPANS_PER_REQUEST, seed=k, start_us=start_us + k * 10_000)
        ).SerializeToString()
        for k in range(span_requests * 60)
    ]
    conn = http.client.HTTPConnection(host, timeout=60)
    auth = {"Authorization": f"Bearer {token}"}
    sent_samples = sent_spans = 0
    refused: dict[int, int] = {}
    tick = 0
    ready.set()
    t0 = time.monotonic()

    def post(path: str, body: bytes, headers: dict) -> None:
        nonlocal conn
        try:
            conn.request("POST", path, body=body, headers={**headers, **auth})
            r = conn.getresponse()
            r.read()
            if r.status >= 300:
                refused[r.status] = refused.get(r.status, 0) + 1
        except (OSError, http.client.HTTPException):
            refused[0] = refused.get(0, 0) + 1
            conn = http.client.HTTPConnection(host, timeout=60)

    while not stop.is_set():
        second = t0 + tick
        jobs = [("w", i) for i in range(write_requests)] + [("t", i) for i in range(span_requests)]
        for k, (kind, i) in enumerate(jobs):
            at = second + k / max(1, len(jobs))
            time.sleep(max(0.0, at - time.monotonic()))
            if stop.is_set():
                break
            if kind == "w":
                blobs = shards[(tick * write_requests + i) % len(shards)]
                values = [[float(tick * 10 + j % 7)] for j in range(len(blobs))]
                now_ms = int(time.time() * 1000)
                body = istio_payloads.compress(
                    istio_payloads.encode_write_request_from_blobs(blobs, [now_ms], values)
                )
                post("/api/v1/push", body, dict(istio_payloads.REMOTE_WRITE_HEADERS))
                sent_samples += len(blobs)
            else:
                body = span_bodies[(tick * span_requests + i) % len(span_bodies)]
                post("/v1/traces", body, {"Content-Type": "application/x-protobuf"})
                sent_spans += LOAD_SPANS_PER_REQUEST
        tick += 1
        time.sleep(max(0.0, t0 + tick - time.monotonic()))
    report.put((sent_samples, sent_spans, time.monotonic() - t0, refused))


def loaded_phase(srv, args, measure, at_ms: int):
    stop = multiprocessing.Event()
    ready = multiprocessing.Event()
    report = multiprocessing.Queue()
    sender = multiprocessing.Process(
        target=ingest_load,
        args=(srv.url, srv.token, args.load_samples, args.load_spans, stop, ready, report),
        daemon=True,
    )
    sender.start()
    try:
        ready.wait(timeout=300)
        time.sleep(args.load_settle)  # the load settles (workers busy draining)
        background = background_load(2.0)
        print(
            f"loaded: {args.load_samples:,} samples/s + {args.load_spans:,} spans/s "
            f"sent; background load {background:.2f} of {os.cpu_count()} CPUs"
        )
        loaded = measure()
        if args.profile:
            profile_graph(srv, at_ms)  # still under load
    finally:
        stop.set()
        samples, spans, seconds, refused = report.get(timeout=120)
        sender.join(timeout=30)
    print(
        f"load achieved: {samples / seconds:,.0f} samples/s, {spans / seconds:,.0f} spans/s "
        f"over {seconds:.0f} s; refused or failed requests: {refused or 'none'}"
    )
    return ("loaded", background, loaded, refused)


def profile_graph(srv, at_ms: int) -> None:
    for group in ("workload", "app", "version", "namespace"):
        code = f"ARGS = {json.dumps(json.dumps([srv.org_id, group, at_ms]))}\n"
        out = srv._manage("shell", "-c", code + _PROFILE_GRAPH)
        print(f"--- in-process profile, group={group} ---")
        print("\n".join(x for x in out.splitlines() if "imported automatically" not in x))


# Run in `manage.py shell` with ARGS = JSON [org_id, grouping, time_ms]: mesh_graph's wall
# time (best of 5, the cache bypassed) and a cProfile of one call.
_PROFILE_GRAPH = r"""
import cProfile, io, json, pstats, time
from backend.metrics.mesh import mesh_graph
org_id, group, time_ms = json.loads(ARGS)
kw = dict(org_id=org_id, grouping=group, window="5m", time_ms=time_ms)
mesh_graph(**kw)
walls = []
for _ in range(5):
    t = time.perf_counter(); mesh_graph(**kw); walls.append(time.perf_counter() - t)
print(f"in-process mesh_graph ({group}): best {min(walls)*1000:.0f} ms, median "
      f"{sorted(walls)[2]*1000:.0f} ms of 5")
prof = cProfile.Profile()
prof.enable()
mesh_graph(**kw)
prof.disable()
for key, n in (("cumulative", 30), ("tottime", 15)):
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats(key).print_stats(n)
    text = out.getvalue()
    print(f"--- top {n} by {key} ---")
    print(text[text.find("   ncalls"):].rstrip())
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--interval", type=int, default=15_000, help="ms between scrapes")
    ap.add_argument("--samples-per-request", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--load-samples", type=int, default=5000, help="samples/s while loaded")
    ap.add_argument("--load-spans", type=int, default=500, help="spans/s while loaded")
    ap.add_argument("--no-quiet", action="store_true", help="measure under load only")
    ap.add_argument(
        "--load-settle",
        type=float,
        default=5,
        help="seconds under load before measuring (the whole run's pages take ~60 s)",
    )
    ap.add_argument(
        "--only",
        nargs="+",
        metavar="WORD",
        help="measure only the rows whose name contains one of these words (e.g. graph)",
    )
    ap.add_argument(
        "--no-load", action="store_true", help="measure quiet only (no ingest load phase)"
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile the mesh graph in-process (manage.py shell) for each grouping",
    )
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
        apps = sorted(
            {
                f"{s['destination_service_name']}/{s['destination_workload_namespace']}"
                for s in ds.label_sets
            }
        )
        srv._manage(
            "shell",
            "-c",
            _SET_PASSWORD,
            env={"BENCH_PASSWORD": PASSWORD, "BENCH_APPS": json.dumps(apps)},
        )
        # Traces for the Jaeger calls: 20,000 OTel SDK spans over the last ten minutes.
        start_us = int(time.time() * 1e6) - 600_000_000
        otlp_headers = {
            "Content-Type": "application/x-protobuf",
            "Authorization": f"Bearer {srv.token}",
        }
        for i in range(200):
            spans = otel_spans(100, seed=10**6 + i, start_us=start_us)
            r = requests.post(
                srv.url + "/v1/traces",
                data=otlp_request(spans).SerializeToString(),
                headers=otlp_headers,
                timeout=60,
            )
            r.raise_for_status()

        page = log_in(srv.url)
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {srv.token}"
        prom_s = requests.Session()
        at = f"{ds.end_ms / 1000:.3f}"
        workload = ds.label_sets[0]["destination_workload"]
        ns = ds.label_sets[0]["destination_workload_namespace"]

        page_org = {"org": "bench"}
        since_ms = str(ds.end_ms - 3600_000)
        app = workload.rsplit("-", 1)[0]

        def wanted(name: str) -> bool:
            return not args.only or any(word in name for word in args.only)

        def measure() -> list[tuple[str, list[float], str, list[float] | None]]:
            out = []
            pages = [
                "/",
                "/mesh",
                "/metrics",
                "/settings/usage",
                f"/mesh/workload/{ns}/{workload}",
                "/traces",
                "/traces/map",
                "/config/revisions",
                "/settings/tokens",
                "/alerts",
            ]
            for path in pages:
                if not wanted(f"page {path}"):
                    continue
                times, status = timed(page, srv.url + path, args.repeat)
                if status != 200:
                    raise RuntimeError(f"{path}: HTTP {status}")
                out.append((f"page {path}", times, "", None))

            for group in ("workload", "app", "version", "namespace"):
                if not wanted(f"/mesh/graph {group}"):
                    continue
                url = f"{srv.url}/mesh/graph?group={group}&window=5m&time={at}"
                times, status = timed(api, url, args.repeat)
                answer = api.get(url, timeout=300)
                if status != 200 or answer.status_code != 200:
                    raise RuntimeError(f"{url}: HTTP {status}, {answer.status_code}")
                graph = answer.json()
                ref = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    for q in graph["queries"]:
                        _ = prom_s.get(
                            f"{prom.url}/api/v1/query", params={"query": q, "time": at}
                        ).content
                    ref.append(time.perf_counter() - t)
                out.append(
                    (
                        f"/mesh/graph {group} ({len(graph['nodes'])} nodes, "
                        f"{len(graph['edges'])} edges)",
                        times,
                        f"prometheus, same {len(graph['queries'])} queries",
                        ref,
                    )
                )

            base = srv.url + "/prometheus/api/v1/cardinality/"
            tsdb = None
            for path in (
                "label_names",
                "label_values?label_names[]=__name__",
                "label_values?label_names[]=destination_workload&label_names[]=response_code",
                'label_names?selector={__name__="istio_requests_total"}',
                f'active_series?selector=istio_requests_total{{destination_workload="{workload}"}}',
            ):
                if not wanted(f"cardinality/{path}"):
                    continue
                if tsdb is None:
                    tsdb, _ = timed(prom_s, f"{prom.url}/api/v1/status/tsdb", args.repeat)
                times, status = timed(api, base + path, args.repeat)
                if status != 200:
                    raise RuntimeError(f"{path}: HTTP {status}")
                out.append((f"cardinality/{path}"[:90], times, "prometheus status/tsdb", tsdb))

            # The workload page's calls: its RED query_ranges (inbound shown; outbound is the
            # same shape), the trace services, recent traces, and the config revisions.
            sel = f'reporter="destination",destination_workload="{workload}"'
            total = f"sum(rate(istio_requests_total{{{sel}}}[1m]))"
            red = {
                "rate": total,
                "success": f"100 * (1 - ((sum(rate(istio_requests_total{{{sel},"
                f'response_code=~"5.."}}[1m])) or vector(0)) / {total}))',
                "p99": "histogram_quantile(0.99, sum by (le) "
                f"(rate(istio_request_duration_milliseconds_bucket{{{sel}}}[1m])))",
            }
            start = f"{ds.end_ms / 1000 - 3600:.3f}"
            for name, q in red.items():
                if not wanted(f"workload {name} 1h query_range"):
                    continue
                params = {"query": q, "start": start, "end": at, "step": "15"}
                times, _ = timed(
                    api, srv.url + "/prometheus/api/v1/query_range", args.repeat, params=params
                )
                ref, _ = timed(prom_s, prom.url + "/api/v1/query_range", args.repeat, params=params)
                out.append((f"workload {name} 1h query_range", times, "prometheus", ref))
            for name, url, session, params in (
                ("workload: jaeger services", "/jaeger/api/services", api, {}),
                (
                    "workload: jaeger recent traces",
                    "/jaeger/api/traces",
                    api,
                    {"service": "web", "lookback": "60m", "limit": "100"},
                ),
                (
                    "workload: config revisions touching it",
                    "/api/v1/config/revisions",
                    page,
                    {**page_org, "service": app, "namespace": ns, "since": since_ms},
                ),
            ):
                if not wanted(name):
                    continue
                times, status = timed(session, srv.url + url, args.repeat, params=params)
                if status != 200:
                    raise RuntimeError(f"{url}: HTTP {status}")
                out.append((name, times, "", None))
            return out

        phases = []
        if not args.no_quiet:
            background = background_load(2.0)
            print(f"quiet: background load {background:.2f} of {os.cpu_count()} CPUs")
            phases.append(("quiet", background, measure(), None))
            if args.profile and args.no_load:
                profile_graph(srv, ds.end_ms)
        if not args.no_load:
            phases.append(loaded_phase(srv, args, measure, ds.end_ms))
        if not phases:
            return 0

        header = ["what"]
        for name, *_ in phases:
            header += [f"{name} p50 ms", f"{name} p95 ms"]
        header += ["reference", "ref p50 ms", "ref p95 ms"]
        rows = [header]
        for k, (name, _, ref_name, _) in enumerate(phases[-1][2]):
            row = [name]
            for _, _, results, _ in phases:
                times = results[k][1]
                row += [ms(statistics.median(times)), ms(p95(times))]
            ref = phases[-1][2][k][3]
            row += [
                ref_name,
                ms(statistics.median(ref)) if ref else "",
                ms(p95(ref)) if ref else "",
            ]
            rows.append(row)
        print_columns(rows)
        for phase, _, results, _ in phases:
            over = [name for name, times, _, _ in results if p95(times) >= 0.3]
            print(f"{phase}: p95 >= 300 ms: " + (", ".join(over) if over else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
