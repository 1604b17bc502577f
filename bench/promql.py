"""PromQL query latency: Canopy against a real Prometheus, same data, same queries, same run.

    .venv/bin/python bench/promql.py                      # 2,000 series, 24 h, ~2 min
    .venv/bin/python bench/promql.py --profile            # + cProfile of Canopy's slowest query
    .venv/bin/python bench/promql.py --series 10000 --repeat 5   # ~5 min
    .venv/bin/python bench/promql.py --results-cache on          # warm: the results cache on

A fresh Prometheus (Debian's 2.42, remote-write receiver on) and a fresh Canopy
(bench/harness/canopy.py: embedded PostgreSQL/Redis, the tenant's out-of-order window raised to
--hours + 2 h so that a day of history is accepted) receive the very same remote-write 1.0
requests, in global time order: each request is one time slice (--samples-per-request scrapes,
aligned to Canopy's 10-minute block windows) of every series, which is what a fresh Prometheus
head needs (it refuses samples older than its newest minus one hour).

Dataset: Istio's standard metrics over --hours ending now (aligned to --interval): for each
(reporter, source workload, destination workload, response code) label set one
``istio_requests_total`` counter and one ``istio_request_duration_milliseconds`` histogram
(14 ``le`` buckets up to +Inf, ``_sum``, ``_count``): 17 series per label set, 28 labels each
(29 with ``le``: Istio's standard labels plus ``instance``/``job``/``pod``). Traffic follows a
daily curve, a few pods restart (counter resets), latencies are log-logistic per label set.

Once Canopy has drained every sample into blocks (and compacted them, as beat would) and
Prometheus' CPU is idle again, every query of QUERIES (Istio's Grafana dashboards and Kiali)
runs as ``query_range`` over each of --ranges ending at the dataset's last scrape, with a
Grafana-like step (1h -> 15s, 6h -> 60s, 24h -> 300s; start and end aligned to the step):
through HTTP (form POST, as Grafana sends it), one warm-up, then --repeat timed runs per server,
one server after the other. Latency is the client's wall time until the whole body is read.
The warm-up answers of both servers are compared (series, points, values within 1e-6
relative) and differences are flagged with an example: a correctness smell worth a look (the one
seen so far: histogram_quantile jumping a bucket where the last bit of a sum differs).

--profile runs Canopy's engine in-process (``manage.py shell`` on the bench's database) under
cProfile for the slowest query, or for the cells named (``--profile 'count@1h' 'p99@24h'``), and
prints the time per phase (series match, SQL, block decoding, evaluation, JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue
import re
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import istio_payloads
from bench.harness.canopy import CanopyServer
from bench.harness.cpu import TreeCpu, background_load, machine_cpu_seconds, wait_idle
from bench.harness.table import print_columns
from tests.compat.prometheus_harness import PrometheusServer, prometheus_version

HOUR_MS = 3_600_000
WINDOW_MS = 600_000  # Canopy's block window: requests are cut on these boundaries

REQUESTS = "istio_requests_total"
DURATION = "istio_request_duration_milliseconds"
# Istio's default duration buckets, up to 10 s.
BUCKETS = ("0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000")
BUCKETS += ("10000", "+Inf")
SERIES_PER_SET = 1 + len(BUCKETS) + 2  # the counter, the buckets, _sum, _count

# (name, PromQL): the Istio Grafana dashboards' and Kiali's queries on this dataset.
QUERIES: list[tuple[str, str]] = [
    ("mesh rps", 'round(sum(irate(istio_requests_total{reporter="source"}[1m])), 0.001)'),
    (
        "mesh success ratio",
        'sum(irate(istio_requests_total{reporter="source",response_code!~"5.*"}[1m])) / '
        'sum(irate(istio_requests_total{reporter="source"}[1m]))',
    ),
    (
        "rps by workload",
        'sum(rate(istio_requests_total{reporter="destination"}[5m])) '
        "by (destination_workload, destination_workload_namespace)",
    ),
    (
        "p99 by workload",
        "histogram_quantile(0.99, sum(rate("
        'istio_request_duration_milliseconds_bucket{reporter="destination"}[1m])) '
        "by (le, destination_workload))",
    ),
    (
        "p50 mesh (irate)",
        "histogram_quantile(0.50, sum(irate("
        'istio_request_duration_milliseconds_bucket{reporter="source"}[1m])) by (le))',
    ),
    ("topk services", "topk(10, sum(rate(istio_requests_total[5m])) by (destination_service))"),
    (
        "kiali graph (ns)",
        'sum(rate(istio_requests_total{reporter="destination",'
        'destination_workload_namespace="shop"}[1m])) by (source_workload, '
        "source_workload_namespace, destination_service, destination_workload, response_code) "
        "> 0",
    ),
    (
        "kiali mean latency",
        'sum(rate(istio_request_duration_milliseconds_sum{reporter="destination",'
        'destination_workload_namespace="shop"}[1m])) by (destination_workload) / '
        'sum(rate(istio_request_duration_milliseconds_count{reporter="destination",'
        'destination_workload_namespace="shop"}[1m])) by (destination_workload)',
    ),
    (
        "raw selector (ns)",
        'istio_requests_total{reporter="destination",destination_workload_namespace="shop"}',
    ),
    ("count", "count(istio_requests_total)"),
    (
        "increase 1h by code",
        "sum(increase(istio_requests_total[1h])) by (response_code)",
    ),
]

# Grafana's step for a panel ~1,000 px wide with a 15 s min interval, roughly range / 250.
DEFAULT_STEPS = {HOUR_MS: 15_000, 6 * HOUR_MS: 60_000, 24 * HOUR_MS: 300_000}


# --- the dataset -----------------------------------------------------------------------------

_APPS = istio_payloads._ALL_APPS  # (namespace, app): 27 apps in 8 namespaces
_VERSIONS = ("v1", "v2", "v3")


def _frac(x: np.ndarray) -> np.ndarray:
    """A cheap deterministic pseudo-random number in [0, 1) per element."""
    return np.modf(np.abs(np.sin(x) * 43758.5453123))[0]


def _workload(i: int, version: str) -> dict[str, str]:
    ns, app = _APPS[i % len(_APPS)]
    return {"ns": ns, "app": app, "version": version, "workload": f"{app}-{version}"}


def _pod(w: dict[str, str]) -> tuple[str, str]:
    """(pod name, instance) of a workload's one pod."""
    h = sum((i + 1) * ord(c) for i, c in enumerate(w["workload"] + w["ns"]))  # stable
    ip = f"10.{(h >> 8) & 0xFF}.{h & 0xFF}.{len(w['workload'])}"
    return f"{w['workload']}-{h % 99991:05d}", f"{ip}:15020"


@dataclass
class Dataset:
    interval_ms: int
    start_ms: int  # first scrape
    end_ms: int  # last scrape
    label_sets: list[dict[str, str]]  # without __name__ / le
    rate: np.ndarray  # requests/s per label set
    median_ms: np.ndarray  # latency median per label set
    reset_step: np.ndarray  # step at which the label set's pod restarts (-1: never)
    blobs: list[bytes] = field(default_factory=list)  # encoded labels per series, in order

    @property
    def n_steps(self) -> int:
        return (self.end_ms - self.start_ms) // self.interval_ms + 1

    @property
    def n_series(self) -> int:
        return len(self.label_sets) * SERIES_PER_SET

    @property
    def n_samples(self) -> int:
        return self.n_series * self.n_steps


def build_dataset(n_series: int, hours: float, interval_ms: int, end_ms: int) -> Dataset:
    """Label sets enough for ``n_series`` series, rates, latencies and restarts."""
    n_sets = max(1, round(n_series / SERIES_PER_SET))
    sets: list[dict[str, str]] = []
    rates, medians = [], []
    edge = 0
    while len(sets) < n_sets:
        n = len(_APPS)
        src_i, k = edge % n, (edge // n) % 3
        dst_i = (src_i * 7 + 3 * k + 1) % n
        if dst_i == src_i:
            dst_i = (dst_i + 1) % n
        src = _workload(src_i, _VERSIONS[(edge // (3 * n)) % 3])
        dst = _workload(dst_i, _VERSIONS[(edge // (9 * n)) % 3])
        codes = ["200"] + ["503"] * (edge % 3 == 0) + ["404"] * (edge % 5 == 1)
        codes += ["500"] * (edge % 7 == 2)
        grpc = edge % 6 == 0
        for reporter in ("source", "destination"):
            me = src if reporter == "source" else dst
            pod, instance = _pod(me)
            for code in codes:
                labels = {
                    "connection_security_policy": (
                        "mutual_tls" if reporter == "destination" else "unknown"
                    ),
                    "destination_app": dst["app"],
                    "destination_canonical_revision": dst["version"],
                    "destination_canonical_service": dst["app"],
                    "destination_cluster": "Kubernetes",
                    "destination_principal": f"spiffe://cluster.local/ns/{dst['ns']}/sa/"
                    f"{dst['app']}",
                    "destination_service": f"{dst['app']}.{dst['ns']}.svc.cluster.local",
                    "destination_service_name": dst["app"],
                    "destination_service_namespace": dst["ns"],
                    "destination_version": dst["version"],
                    "destination_workload": dst["workload"],
                    "destination_workload_namespace": dst["ns"],
                    "instance": instance,
                    "job": "kubernetes-pods",
                    "pod": pod,
                    "reporter": reporter,
                    "request_protocol": "grpc" if grpc else "http",
                    "response_code": code,
                    "response_flags": "UF" if code == "503" else "-",
                    "source_app": src["app"],
                    "source_canonical_revision": src["version"],
                    "source_canonical_service": src["app"],
                    "source_cluster": "Kubernetes",
                    "source_principal": f"spiffe://cluster.local/ns/{src['ns']}/sa/{src['app']}",
                    "source_version": src["version"],
                    "source_workload": src["workload"],
                    "source_workload_namespace": src["ns"],
                }
                u = float(_frac(np.array([edge * 3.7 + 1.3]))[0])
                base = {"200": 0.5 + 40 * u * u, "404": 0.05 + u, "503": 0.01 + 0.5 * u}
                rates.append(base.get(code, 0.02 + 0.2 * u))
                medians.append(5.0 + 200.0 * u**3 + (300.0 if code == "503" else 0.0))
                sets.append(labels)
        edge += 1
    sets = sets[:n_sets]
    n_steps = int(hours * HOUR_MS) // interval_ms
    start_ms = end_ms - (n_steps - 1) * interval_ms
    idx = np.arange(len(sets))
    # one label set in 25 sees its pod restart once (a counter reset in all its series)
    reset = np.where(idx % 25 == 7, (idx * 977 + 131) % n_steps, -1)
    ds = Dataset(
        interval_ms,
        start_ms,
        end_ms,
        sets,
        np.array(rates[:n_sets]),
        np.array(medians[:n_sets]),
        reset,
    )
    for labels in sets:
        for name, extra in series_names():
            full = {"__name__": name, **labels, **extra}
            ds.blobs.append(istio_payloads.encode_labels(sorted(full.items())))
    return ds


def series_names() -> list[tuple[str, dict[str, str]]]:
    """(metric name, extra labels) of the SERIES_PER_SET series of one label set, in order."""
    out: list[tuple[str, dict[str, str]]] = [(REQUESTS, {})]
    out += [(f"{DURATION}_bucket", {"le": le}) for le in BUCKETS]
    out += [(f"{DURATION}_sum", {}), (f"{DURATION}_count", {})]
    return out


def generate_requests(ds: Dataset, samples_per_request: int):
    """Yield (snappy body, samples) per request, in time order: each request one slice of
    ``samples_per_request`` scrapes (cut on block-window boundaries) of every series."""
    n_sets = len(ds.label_sets)
    les = np.array([float(b) for b in BUCKETS[:-1]])
    log_le = np.log(les)
    sid = np.arange(n_sets, dtype=np.float64)
    u0 = _frac(sid * 1.618 + 0.5)
    # counters have been running before the dataset starts
    cum_req = np.floor(ds.rate * 3600 * (1 + 5 * u0))
    frac0 = 1 / (1 + np.exp(-(log_le[None, :] - np.log(ds.median_ms)[:, None]) / 0.35))
    cum_bkt = np.round(cum_req[:, None] * frac0)
    cum_sum = cum_req * ds.median_ms * 1.1
    interval_s = ds.interval_ms / 1000
    slice_ms = samples_per_request * ds.interval_ms
    step = 0
    while step < ds.n_steps:
        ts0 = ds.start_ms + step * ds.interval_ms
        n = min(((ts0 // slice_ms) + 1) * slice_ms - ts0, ds.end_ms + ds.interval_ms - ts0)
        k = max(1, -(-n // ds.interval_ms))
        k = min(k, ds.n_steps - step)
        timestamps = [ts0 + j * ds.interval_ms for j in range(k)]
        vals = np.empty((n_sets, SERIES_PER_SET, k))
        for j, ts in enumerate(timestamps):
            s = step + j
            day = 1 + 0.5 * math.sin(2 * math.pi * (ts % 86_400_000) / 86_400_000)
            noise = 0.7 + 0.6 * _frac(sid * 12.9898 + s * 78.233)
            inc = np.floor(ds.rate * interval_s * day * noise)
            median = ds.median_ms * (0.75 + 0.5 * day) * (0.9 + 0.2 * noise)
            frac = 1 / (1 + np.exp(-(log_le[None, :] - np.log(median)[:, None]) / 0.35))
            restart = ds.reset_step == s
            if restart.any():
                cum_req[restart] = 0
                cum_bkt[restart] = 0
                cum_sum[restart] = 0
            cum_req += inc
            cum_bkt += np.round(inc[:, None] * frac)  # monotonic in le, <= inc
            cum_sum += np.round(inc * median * 1.1, 3)
            vals[:, 0, j] = cum_req
            vals[:, 1 : len(BUCKETS), j] = cum_bkt
            vals[:, len(BUCKETS), j] = cum_req  # +Inf
            vals[:, len(BUCKETS) + 1, j] = cum_sum
            vals[:, len(BUCKETS) + 2, j] = cum_req  # _count
        rows = vals.reshape(n_sets * SERIES_PER_SET, k).tolist()
        body = istio_payloads.encode_write_request_from_blobs(ds.blobs, timestamps, rows)
        yield istio_payloads.compress(body), len(rows) * k
        step += k


# --- loading ---------------------------------------------------------------------------------


class Sender(threading.Thread):
    """POSTs the bodies it is given, one after the other, on one keep-alive connection."""

    def __init__(self, name: str, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True, name=name)
        self.url, self.headers = url, headers
        self.q: queue.Queue = queue.Queue(maxsize=6)
        self.ok_samples = 0
        self.errors: list[str] = []
        self.busy = 0.0

    def run(self) -> None:
        with requests.Session() as session:
            while (item := self.q.get()) is not None:
                body, n = item
                t = time.perf_counter()
                try:
                    r = session.post(self.url, data=body, headers=self.headers, timeout=120)
                    status, text = r.status_code, r.text
                except requests.RequestException as exc:
                    status, text = 0, str(exc)
                self.busy += time.perf_counter() - t
                if 200 <= status < 300:
                    self.ok_samples += n
                elif len(self.errors) < 5:
                    self.errors.append(f"{status}: {text[:300].strip()}")


def load(ds: Dataset, targets: dict[str, tuple[str, dict[str, str]]], spr: int) -> dict:
    senders = [Sender(name, url, headers) for name, (url, headers) in targets.items()]
    for s in senders:
        s.start()
    t0 = time.perf_counter()
    n_requests = 0
    for body, n in generate_requests(ds, spr):
        n_requests += 1
        for s in senders:
            s.q.put((body, n))
    for s in senders:
        s.q.put(None)
    for s in senders:
        s.join()
    wall = time.perf_counter() - t0
    for s in senders:
        if s.errors:
            print(f"  {s.name}: {len(s.errors)}+ refused requests, first: {s.errors[0]}")
    return {
        "requests": n_requests,
        "wall_s": wall,
        **{s.name: {"ok_samples": s.ok_samples, "busy_s": s.busy} for s in senders},
    }


# --- querying --------------------------------------------------------------------------------


class Api:
    def __init__(self, name: str, base: str, headers: dict[str, str] | None = None) -> None:
        self.name, self.base = name, base.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(headers or {})

    def post(self, path: str, params: dict[str, str]) -> tuple[float, int, dict]:
        """(seconds, response bytes, parsed body) of one call, timed until the body is read."""
        t = time.perf_counter()
        r = self.session.post(self.base + path, data=params, timeout=300)
        content = r.content
        elapsed = time.perf_counter() - t
        try:
            body = json.loads(content)
        except ValueError:
            body = {"status": "error", "error": f"HTTP {r.status_code}: {content[:200]!r}"}
        return elapsed, len(content), body

    def query(self, expr: str, at_ms: int) -> dict:
        return self.post("/api/v1/query", {"query": expr, "time": f"{at_ms / 1000:.3f}"})[2]


def scalar_of(body: dict) -> float | None:
    if body.get("status") != "success":
        raise RuntimeError(f"query failed: {body.get('errorType')}: {body.get('error')}")
    result = body["data"]["result"]
    if body["data"]["resultType"] == "scalar":
        return float(result[1])
    return float(result[0]["value"][1]) if result else None


def compare(a: dict, b: dict, rel: float = 1e-6) -> tuple[str, bool]:
    """A short note on how two query_range answers differ, and whether they differ."""
    if a.get("status") != "success" or b.get("status") != "success":
        return f"error: {a.get('error') or b.get('error')}", True

    def index(body: dict) -> dict:
        return {
            tuple(sorted(s["metric"].items())): {float(t): v for t, v in s["values"]}
            for s in body["data"]["result"]
        }

    ia, ib = index(a), index(b)
    notes = []
    if len(ia) != len(ib):
        notes.append(f"series {len(ia)} vs {len(ib)}")
    only_a, only_b = len(ia.keys() - ib.keys()), len(ib.keys() - ia.keys())
    if only_a or only_b:
        notes.append(f"label sets only in canopy {only_a}, only in prometheus {only_b}")
    points_a = points_b = bad = 0
    worst = 0.0
    example = ""
    for key in ia.keys() & ib.keys():
        pa, pb = ia[key], ib[key]
        points_a += len(pa)
        points_b += len(pb)
        for t in pa.keys() & pb.keys():
            x, y = float(pa[t]), float(pb[t])
            if (math.isnan(x) and math.isnan(y)) or x == y:
                continue
            diff = abs(x - y) / max(abs(x), abs(y), 1e-12)
            if not diff <= rel:  # NaN against a number counts too
                bad += 1
                if not diff <= worst:
                    worst = diff if not math.isnan(diff) else math.inf
                    short = ",".join(f"{k}={v}" for k, v in key if k != "__name__")
                    example = f"{{{short}}} at {t:.0f}: canopy {pa[t]}, prometheus {pb[t]}"
    if points_a != points_b:
        notes.append(f"points {points_a} vs {points_b}")
    if bad:
        notes.append(f"{bad} values differ (worst {worst:.2g} rel.: {example})")
    return ("; ".join(notes) or "same"), bool(notes)


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(p * len(s)) - 1)]


@dataclass
class Cell:
    query: str
    expr: str
    range_ms: int
    step_ms: int
    start_ms: int
    end_ms: int
    times: dict[str, list[float]] = field(default_factory=dict)
    series: dict[str, int] = field(default_factory=dict)
    points: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    diff: str = ""
    differs: bool = False

    def p50(self, who: str) -> float | None:
        return statistics.median(self.times[who]) if self.times.get(who) else None

    def p95(self, who: str) -> float | None:
        return _pct(self.times[who], 0.95) if self.times.get(who) else None

    def ratio(self) -> float | None:
        c, p = self.p50("canopy"), self.p50("prometheus")
        return c / p if c and p else None


def run_cell(cell: Cell, apis: list[Api], repeat: int) -> None:
    params = {
        "query": cell.expr,
        "start": f"{cell.start_ms / 1000:.3f}",
        "end": f"{cell.end_ms / 1000:.3f}",
        "step": f"{cell.step_ms / 1000:g}",
    }
    warm = {}
    for api in apis:
        _, size, body = api.post("/api/v1/query_range", params)  # warm-up, kept for comparing
        warm[api.name] = body
        if body.get("status") != "success":
            cell.errors[api.name] = f"{body.get('errorType')}: {body.get('error')}"
            continue
        result = body["data"]["result"]
        cell.series[api.name] = len(result)
        cell.points[api.name] = sum(len(s["values"]) for s in result)
        cell.bytes[api.name] = size
        cell.times[api.name] = [api.post("/api/v1/query_range", params)[0] for _ in range(repeat)]
    if len(warm) == 2:
        cell.diff, cell.differs = compare(warm["canopy"], warm["prometheus"])


# --- output ----------------------------------------------------------------------------------


def _range_text(ms: int) -> str:
    return f"{ms // HOUR_MS}h" if ms % HOUR_MS == 0 else f"{ms // 60_000}m"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f}"


def print_table(cells: list[Cell]) -> None:
    head = ["query", "range/step", "series", "canopy p50/p95 ms", "prom p50/p95 ms", "ratio"]
    rows = [head]
    for c in cells:
        ratio = c.ratio()
        series = f"{c.series.get('canopy', '-')}/{c.series.get('prometheus', '-')}"
        rows.append(
            [
                c.query,
                f"{_range_text(c.range_ms)}/{c.step_ms // 1000}s",
                series,
                f"{_ms(c.p50('canopy'))} / {_ms(c.p95('canopy'))}",
                f"{_ms(c.p50('prometheus'))} / {_ms(c.p95('prometheus'))}",
                "n/a" if ratio is None else f"{ratio:.1f}x" + (" !" if c.differs else ""),
            ]
        )
    print_columns(rows, left=2)
    ratios = [r for c in cells if (r := c.ratio()) is not None]
    if ratios:
        print(
            f"\noverall: median canopy/prometheus p50 ratio {statistics.median(ratios):.1f}x "
            f"(geometric mean {math.exp(statistics.fmean(map(math.log, ratios))):.1f}x, "
            f"range {min(ratios):.1f}x-{max(ratios):.1f}x over {len(ratios)} cells)"
        )
        for rng in sorted({c.range_ms for c in cells}):
            rr = [r for c in cells if c.range_ms == rng and (r := c.ratio()) is not None]
            if rr:
                print(f"  {_range_text(rng)}: median ratio {statistics.median(rr):.1f}x")
    flagged = [c for c in cells if c.differs or c.errors]
    if flagged:
        print("\nWARNING: the answers differ (compared on the warm-up run):")
        for c in flagged:
            why = "; ".join(f"{k}: {v}" for k, v in c.errors.items()) or c.diff
            print(f"  - {c.query} {_range_text(c.range_ms)}: {why}")
    else:
        print("\nanswers: same series, points and values (1e-6 rel.) on every query and range")


# --- profiling Canopy in-process -------------------------------------------------------------

_PROFILE = r"""
import cProfile, io, json, pstats, time
from backend.metrics import promql
from backend.metrics.promql import parse as _parse
from backend.metrics.storage.reader import PostgresQuerier
kw = json.loads(ARGS)
kw["querier"] = PostgresQuerier(org_id=kw.pop("org_id"))
promql.range_query(**kw)  # warm: caches, plans, imports
walls = []
for _ in range(3):
    t = time.perf_counter(); promql.range_query(**kw); walls.append(time.perf_counter() - t)
t = time.perf_counter()
data = promql.range_query(**kw)
t_eval = time.perf_counter() - t
t = time.perf_counter()
body = json.dumps({"status": "success", "data": data}, separators=(",", ":"))
t_json = time.perf_counter() - t
print(f"in-process range_query: best {min(walls)*1000:.0f} ms of 3; json.dumps {t_json*1000:.0f} ms"
      f" ({len(body):,} bytes)")
prof = cProfile.Profile()
prof.enable()
data = promql.range_query(**kw)
json.dumps({"status": "success", "data": data}, separators=(",", ":"))
prof.disable()
stats = pstats.Stats(prof)
total = sum(v[2] for v in stats.stats.values())
print(f"profiled run: {total*1000:.0f} ms of own time in total (cProfile inflates Python calls)")
WANT = ["parse_expr", "series_match", "label_pairs_by_id", "label_pair_ids", "samples_fetch_flat",
        "_fetch_blocks", "decode", "normalize", "isin", "fetch", "instant_selector",
        "range_selector", "evaluate", "range_query", "_matches", "labels_key", "format_value",
        "format_time", "dumps", "execute", "fetchall"]
print("phases (cumulative ms, calls):")
rows = []
for (path, line, fn), (cc, nc, tt, ct, _) in stats.stats.items():
    short = path.split("/backend/")[-1] if "/backend/" in path else path.rsplit("/", 1)[-1]
    if fn in WANT and (("backend" in path) or fn in ("dumps", "execute", "fetchall", "isin")):
        rows.append((ct, nc, f"{short}:{line}({fn})"))
for ct, nc, name in sorted(rows, reverse=True)[:25]:
    print(f"  {ct*1000:9.1f} ms  {nc:8d}  {name}")
for key, n in (("cumulative", 30), ("tottime", 25)):
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats(key).print_stats(n)
    text = out.getvalue()
    print(f"--- top {n} by {key} ---")
    print(text[text.find("   ncalls"):].rstrip())
"""


def profile_canopy(srv: CanopyServer, cell: Cell) -> str:
    args = {
        "org_id": srv.org_id,
        "query": cell.expr,
        "start_ms": cell.start_ms,
        "end_ms": cell.end_ms,
        "step_ms": cell.step_ms,
    }
    code = f"ARGS = {json.dumps(json.dumps(args))}\n" + _PROFILE
    out = srv._manage("shell", "-c", code)
    return "\n".join(line for line in out.splitlines() if "imported automatically" not in line)


# --- main ------------------------------------------------------------------------------------


def parse_duration(text: str) -> int:
    m = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 1h)")
    return int(m[1]) * {"s": 1000, "m": 60_000, "h": HOUR_MS, "d": 24 * HOUR_MS}[m[2]]


def grafana_step(range_ms: int) -> int:
    if range_ms in DEFAULT_STEPS:
        return DEFAULT_STEPS[range_ms]
    raw = range_ms / 250
    for nice in (15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000):
        if raw <= nice:
            return nice
    return 3_600_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--series", type=int, default=2000, help="about this many series (2000)")
    p.add_argument("--hours", type=float, default=24, help="history ending now (24)")
    p.add_argument("--interval", type=parse_duration, default=30_000, help="scrape (30s)")
    p.add_argument(
        "--samples-per-request",
        type=int,
        default=20,
        help="scrapes of every series per remote-write request (20 = one 10-minute window)",
    )
    p.add_argument("--ranges", default="1h,6h,24h", help="query ranges (1h,6h,24h)")
    p.add_argument("--repeat", type=int, default=10, help="timed runs per query and server (10)")
    p.add_argument("--queries", help="regex: only the queries whose name matches")
    p.add_argument(
        "--profile",
        nargs="*",
        metavar="QUERY@RANGE",
        help="cProfile Canopy in-process on its slowest query, or on the cells named "
        "(e.g. 'count@1h'; the query name is a regex)",
    )
    p.add_argument(
        "--results-cache",
        choices=("off", "on"),
        default="off",
        help="Canopy's PromQL results cache (off: every step evaluated, the figure compared "
        "with Prometheus, which has none; on: after loading, the tenant's out-of-order window "
        "is lowered to 10 min so that steps older than 20 min are cacheable, and the timed "
        "runs after the warm-up are served from it but for the recent steps)",
    )
    p.add_argument(
        "--block-cache",
        choices=("on", "off"),
        default="on",
        help="Canopy's per-process cache of decoded blocks (on: the default, 128 MB per web "
        "process, warm after the warm-up run as Prometheus's page cache is; off: every query "
        "reads and decompresses its blocks)",
    )
    p.add_argument("--canopy-web-workers", type=int, default=2)
    p.add_argument("--drain-timeout", type=float, default=600)
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    args.range_list = [parse_duration(x) for x in args.ranges.split(",") if x.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    now = int(time.time() * 1000)
    end_ms = now - now % args.interval - args.interval  # the last complete scrape
    ds = build_dataset(args.series, args.hours, args.interval, end_ms)
    namespaces = {ls["destination_workload_namespace"] for ls in ds.label_sets}
    n_labels = len(ds.label_sets[0]) + 1  # with __name__; the buckets have le too
    print(
        f"dataset: {len(ds.label_sets)} label sets x {SERIES_PER_SET} = {ds.n_series:,} series "
        f"({REQUESTS}, {DURATION}_bucket/_sum/_count; {n_labels}-{n_labels + 1} labels), "
        f"{ds.n_steps:,} scrapes {args.interval // 1000}s apart = {ds.n_samples:,} samples; "
        f"{len(namespaces)} destination namespaces; machine: {os.cpu_count()} CPUs"
    )
    queries = [
        q for q in QUERIES if not args.queries or re.search(args.queries, q[0], re.IGNORECASE)
    ]
    limits = {"out_of_order_time_window_seconds": int(args.hours * 3600) + 7200}
    os.environ["CANOPY_PROMQL_RESULTS_CACHE"] = "1" if args.results_cache == "on" else "0"
    if args.block_cache == "off":
        os.environ["CANOPY_PROMQL_BLOCK_CACHE_MB"] = "0"
    else:
        os.environ.pop("CANOPY_PROMQL_BLOCK_CACHE_MB", None)
    print(f"canopy results cache: {args.results_cache}; block cache: {args.block_cache}")
    with contextlib.ExitStack() as stack:
        prom = stack.enter_context(PrometheusServer(remote_write_receiver=True, scrape_self=False))
        print(f"prometheus {prometheus_version()} at {prom.url}")
        srv = stack.enter_context(
            CanopyServer(web_workers=args.canopy_web_workers, extra_limits=limits)
        )
        print(f"canopy at {srv.url} (data {srv.data_dir})")

        # -- load
        push = dict(istio_payloads.REMOTE_WRITE_HEADERS)
        loaded = load(
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
        print(
            f"load: {loaded['requests']} requests in {loaded['wall_s']:.0f}s; acknowledged "
            f"prometheus {loaded['prometheus']['ok_samples']:,} "
            f"(busy {loaded['prometheus']['busy_s']:.0f}s), canopy "
            f"{loaded['canopy']['ok_samples']:,} (busy {loaded['canopy']['busy_s']:.0f}s)"
        )
        if min(loaded["prometheus"]["ok_samples"], loaded["canopy"]["ok_samples"]) < ds.n_samples:
            print("not every sample was acknowledged; the comparison would be meaningless")
            return 1

        # -- wait for both to have everything
        t = time.monotonic()
        while srv.stored_samples() < ds.n_samples:
            if time.monotonic() - t > args.drain_timeout:
                print(f"canopy: only {srv.stored_samples():,.0f} samples drained; giving up")
                return 1
            time.sleep(1)
        print(f"canopy: drained {time.monotonic() - t:.0f}s after the last request")
        t = time.monotonic()
        srv.compact()
        srv.sql("ANALYZE")
        ((n_blocks, block_bytes),) = srv.sql(
            'SELECT count(*), sum(length(series) + length(timestamps) + length("values")) '
            "FROM metric_blocks WHERE org_id = %s",
            [srv.org_id],
        )
        print(
            f"canopy: compacted (as beat would) in {time.monotonic() - t:.0f}s: "
            f"{n_blocks} blocks, {int(block_bytes) / ds.n_samples:.2f} B/sample of block data"
        )
        t = time.monotonic()
        wait_idle(prom.cpu_seconds, timeout=300, idle_share=0.05)
        print(f"prometheus: idle (head compacted into blocks) after {time.monotonic() - t:.0f}s")

        head = prom.api("status/tsdb")["headStats"]
        n_prom_blocks = sum(1 for d in prom.data_dir.iterdir() if (d / "meta.json").exists())
        print(
            f"prometheus: {n_prom_blocks} persisted blocks; the head holds "
            f"{(int(head['maxTime']) - int(head['minTime'])) / HOUR_MS:.1f} h "
            f"({head['numSeries']} series, {head['chunkCount']} chunks)"
        )
        if args.results_cache == "on":
            srv.sql(
                "UPDATE tenancy_orglimits SET out_of_order_time_window_seconds = 600 "
                "WHERE org_id = %s",
                [srv.org_id],
            )
            time.sleep(11)  # the web workers keep an org's limits for 10 s
            print("canopy: out-of-order window lowered to 10 min (results cache on)")
        canopy = Api("canopy", srv.url + "/prometheus", {"Authorization": f"Bearer {srv.token}"})
        prometheus = Api("prometheus", prom.url)
        span = f"{int(args.hours * 3600) + 60}s"
        check = " + ".join(
            f"sum(count_over_time({name}[{span}]))"
            for name in (REQUESTS, f"{DURATION}_bucket", f"{DURATION}_sum", f"{DURATION}_count")
        )
        for api in (canopy, prometheus):
            got = scalar_of(api.query(check, ds.end_ms))
            note = "" if got == ds.n_samples else f"  <- expected {ds.n_samples:,}"
            print(f"{api.name}: {check} = {got:,.0f}{note}")

        # -- measure
        background = background_load(2.0)
        print(f"background load before the queries: {background:.2f} of {os.cpu_count()} CPUs")
        floor = Cell("vector(1)", "vector(1)", HOUR_MS, 15_000, ds.end_ms - HOUR_MS, ds.end_ms)
        run_cell(floor, [canopy, prometheus], 20)
        print(
            f"HTTP floor (query_range vector(1), 1h/15s, p50 of 20): canopy "
            f"{_ms(floor.p50('canopy'))} ms, prometheus {_ms(floor.p50('prometheus'))} ms\n"
        )
        # CPU used by anything but the two servers and this process while the queries run
        canopy_cpu = TreeCpu(srv.root_pids(), srv.cpu_patterns())

        def others() -> float:
            mine = os.times()
            return (
                machine_cpu_seconds()
                - prom.cpu_seconds()
                - canopy_cpu()
                - (mine.user + mine.system + mine.children_user + mine.children_system)
            )

        o0, t0 = others(), time.monotonic()
        cells = []
        for name, expr in queries:
            for rng in args.range_list:
                step = grafana_step(rng)
                end = ds.end_ms - ds.end_ms % step
                cell = Cell(name, expr, rng, step, end - rng, end)
                run_cell(cell, [canopy, prometheus], args.repeat)
                cells.append(cell)
                print(
                    f"  {name:22} {_range_text(rng):>3}: canopy {_ms(cell.p50('canopy')):>8} ms,"
                    f" prometheus {_ms(cell.p50('prometheus')):>7} ms  "
                    f"[{cell.diff or '; '.join(cell.errors.values())}]",
                    flush=True,
                )
        foreign = (others() - o0) / (time.monotonic() - t0)
        print(f"\nother load while querying: {max(0.0, foreign):.2f} of {os.cpu_count()} CPUs\n")
        print_table(cells)

        profile_out = []
        timed = [c for c in cells if c.p50("canopy") is not None]
        chosen = []
        if args.profile is not None and timed:
            for spec in args.profile:
                name, _, rng = spec.rpartition("@")
                chosen += [
                    c
                    for c in timed
                    if re.search(name or spec, c.query, re.IGNORECASE)
                    and (not name or _range_text(c.range_ms) == rng)
                ]
            chosen = chosen or [max(timed, key=lambda c: c.p50("canopy"))]
        for cell in chosen:
            print(
                f"\nprofiling canopy in-process: {cell.query}, {_range_text(cell.range_ms)} "
                f"(HTTP p50 {_ms(cell.p50('canopy'))} ms)"
            )
            profile_out.append(profile_canopy(srv, cell))
            print(profile_out[-1])
        print(f"\ntotal run time {time.monotonic() - t_start:.0f}s")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "series": ds.n_series,
                        "results_cache": args.results_cache,
                        "samples": ds.n_samples,
                        "interval_ms": ds.interval_ms,
                        "load": loaded,
                        "background_cpus": background,
                        "foreign_cpus_during_queries": foreign,
                        "floor_s": floor.times,
                        "cells": [
                            {
                                "query": c.query,
                                "expr": c.expr,
                                "range_ms": c.range_ms,
                                "step_ms": c.step_ms,
                                "times": c.times,
                                "series": c.series,
                                "points": c.points,
                                "bytes": c.bytes,
                                "errors": c.errors,
                                "diff": c.diff,
                            }
                            for c in cells
                        ],
                        "profile": profile_out,
                    },
                    indent=2,
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
