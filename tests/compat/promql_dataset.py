"""A deterministic, Istio-shaped metrics dataset for comparing PromQL engines.

``build_dataset(end_ms)`` returns 284 series scraped every 15 s over the 50 minutes that
end at ``end_ms`` (which callers align to 15 s, e.g. :func:`default_end_ms`). Everything is
drawn from a ``random.Random`` with a fixed seed, and every timestamp is relative to
``end_ms``, so two runs differ only by where ``end_ms`` falls.

What is in it (the step numbers are those of :class:`Timeline`, 0 = first scrape):

* a small mesh (namespaces ``bookinfo``, ``shop``, ``istio-system``) and its Istio standard
  metrics: ``istio_requests_total`` (response codes 200/404/503, reporters ``source`` and
  ``destination``), the classic histograms ``istio_request_duration_milliseconds`` and
  ``istio_request_bytes`` (``_bucket`` with ``le`` up to ``+Inf``, ``_sum``, ``_count``) and the
  TCP counters ``istio_tcp_sent_bytes_total``, ``istio_tcp_received_bytes_total``,
  ``istio_tcp_connections_opened_total``;
* counter resets: the pod ``details-v1`` restarts at steps 60 and 160 (every series it reports),
  the TCP connection pool of ``cart-v1`` at step 100;
* a gap longer than 5 minutes (steps ``GAP_FIRST``..``GAP_LAST`` missing) in everything the
  ``frontend-v1`` pod reports and in ``node_memory_free_bytes{instance="node-c:9100"}``;
* staleness markers (NaN with the bits ``0x7ff0000000000002``): the ``reviews-v3`` pod goes
  away at ``STALE_END_STEP`` (a marker on every series it reported, nothing after); the
  ``cart-v1`` TCP series, ``temperature_celsius{sensor="ambient"}`` and one ``up`` series get a
  marker at ``STALE_STEP`` and come back at ``RESUME_STEP``;
* gauges with NaN, +Inf and -Inf (``temperature_celsius``), values in [-1, 1]
  (``cache_hit_ratio``, ``temperature_celsius{sensor="outdoor"}`` goes below zero), ``up``
  (0/1, one flapping target), ``istio_build``, and ``deployment_replicas`` with one sample only;
* ``edge_counter_total`` and ``edge_gauge``: histories with +Inf, -Inf, NaN, resets from near
  the largest double and from 1e17 (non-finite values through every range function).

:func:`remote_write_bodies` turns it into snappy-compressed remote-write 1.0 bodies in global
time order (a fresh Prometheus head refuses out-of-order samples, and samples older than its
newest minus one hour).
"""

from __future__ import annotations

import math
import random
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bench import istio_payloads as ip

SEED = 20_230_131
STEP_MS = 15_000
N_STEPS = 200  # 0 .. 199: 49m45s of scrapes
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]

# Steps (indexes of scrapes) where something happens.
GAP_FIRST, GAP_LAST = 80, 115  # no samples in between, both included: a 9-minute gap
STALE_STEP, RESUME_STEP = 120, 140  # a stale marker, then samples again
STALE_END_STEP = 130  # a stale marker, then nothing (the pod went away)
DETAILS_RESTARTS = (60, 160)  # counter resets
CART_TCP_RESTART = 100
SINGLE_SAMPLE_STEP = 185
SAMPLES_PER_REQUEST = 20  # scrapes per series in each remote-write request


def is_stale_nan(value: float) -> bool:
    return struct.pack("<d", value) == struct.pack("<Q", STALE_NAN_BITS)


def default_end_ms(now_s: float | None = None) -> int:
    """Now, rounded down to 15 s, minus one minute (in ms)."""
    now_ms = int((time.time() if now_s is None else now_s) * 1000)
    return now_ms - now_ms % STEP_MS - 60_000


@dataclass(frozen=True)
class Timeline:
    """Where the dataset's scrapes and events fall, for a given ``end_ms``."""

    end_ms: int

    @property
    def start_ms(self) -> int:
        return self.at(0)

    def at(self, step: float) -> int:
        """The time (ms) of scrape ``step``; fractional steps fall between scrapes."""
        return self.end_ms - round((N_STEPS - 1 - step) * STEP_MS)

    def instant_times(self) -> dict[str, int]:
        """Evaluation times (ms) for instant queries, by name."""
        return {
            "end": self.end_ms,
            # 6.5 minutes into the gap: the series with a gap have no sample in the lookback.
            "in_gap": self.at(GAP_FIRST - 1) + 390_000,
            # 20 s after the stale markers of STALE_END_STEP; also between scrapes.
            "after_stale": self.at(STALE_END_STEP) + 20_000,
            # between two scrapes, before anything unusual happened
            "unaligned": self.at(50) + 7_500,
        }

    def ranges(self) -> dict[str, tuple[int, int, int]]:
        """``(start_ms, end_ms, step_ms)`` for range queries, by name."""
        start = self.start_ms + 5 * 60_000
        return {
            "step30s": (start, self.end_ms, 30_000),
            "step60s_unaligned": (start + 7_500, self.end_ms, 60_000),
        }

    def at_seconds(self) -> str:
        """The fixed timestamp used by ``@ <timestamp>`` in the expressions (20 minutes before
        the end), as PromQL source text."""
        return fmt_seconds(self.end_ms - 20 * 60_000)


def fmt_seconds(ms: int) -> str:
    """Milliseconds as the float seconds the Prometheus API takes (``1700000000.5``)."""
    whole, frac = divmod(ms, 1000)
    return f"{whole}.{frac:03d}".rstrip("0").rstrip(".")


@dataclass
class Series:
    labels: dict[str, str]
    samples: list[tuple[int, float]] = field(default_factory=list)


# --- the mesh ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str  # e.g. reviews-v2
    namespace: str
    app: str
    version: str
    ip: str
    service_account: str

    @property
    def instance(self) -> str:
        return f"{self.ip}:15020"

    @property
    def principal(self) -> str:
        return f"spiffe://cluster.local/ns/{self.namespace}/sa/{self.service_account}"

    @property
    def service(self) -> str:
        return f"{self.app}.{self.namespace}.svc.cluster.local"


def _wl(app: str, version: str, namespace: str, ip: str, sa: str | None = None) -> Workload:
    return Workload(f"{app}-{version}", namespace, app, version, ip, sa or f"{namespace}-{app}")


GATEWAY = _wl("istio-ingressgateway", "v1", "istio-system", "10.0.0.2", "istio-ingressgateway")
PRODUCTPAGE = _wl("productpage", "v1", "bookinfo", "10.0.1.10")
DETAILS = _wl("details", "v1", "bookinfo", "10.0.1.11")
REVIEWS_V1 = _wl("reviews", "v1", "bookinfo", "10.0.1.12")
REVIEWS_V2 = _wl("reviews", "v2", "bookinfo", "10.0.1.13")
REVIEWS_V3 = _wl("reviews", "v3", "bookinfo", "10.0.1.14")
RATINGS = _wl("ratings", "v1", "bookinfo", "10.0.1.15")
MONGODB = _wl("mongodb", "v1", "bookinfo", "10.0.1.16")
FRONTEND = _wl("frontend", "v1", "shop", "10.0.2.20")
CART = _wl("cart", "v1", "shop", "10.0.2.21")
REDIS = _wl("redis", "v1", "shop", "10.0.2.22")
WORKLOADS = (
    GATEWAY, PRODUCTPAGE, DETAILS, REVIEWS_V1, REVIEWS_V2, REVIEWS_V3, RATINGS, MONGODB,
    FRONTEND, CART, REDIS,
)  # fmt: skip


@dataclass(frozen=True)
class Edge:
    src: Workload
    dst: Workload
    rps: float  # requests per second, all codes
    codes: tuple[tuple[str, float], ...]  # (response code, share of the requests)
    protocol: str = "http"
    latency_ms: float = 20.0  # median
    reporters: tuple[str, ...] = ("source", "destination")
    histogram_reporters: tuple[str, ...] = ("destination",)
    request_bytes: bool = False  # also an istio_request_bytes histogram (destination, 200)


HTTP_EDGES = (
    Edge(GATEWAY, PRODUCTPAGE, 6.0, (("200", 0.92), ("404", 0.05), ("503", 0.03)),
         latency_ms=60, reporters=("source", "destination"),
         histogram_reporters=("source", "destination"), request_bytes=True),
    Edge(PRODUCTPAGE, DETAILS, 5.5, (("200", 0.97), ("503", 0.03)), latency_ms=8,
         request_bytes=True),
    Edge(PRODUCTPAGE, REVIEWS_V1, 1.8, (("200", 1.0),), latency_ms=12),
    Edge(PRODUCTPAGE, REVIEWS_V2, 1.8, (("200", 0.95), ("503", 0.05)), latency_ms=35,
         histogram_reporters=("source", "destination"), request_bytes=True),
    Edge(PRODUCTPAGE, REVIEWS_V3, 1.9, (("200", 0.9), ("404", 0.1)), latency_ms=45),
    Edge(REVIEWS_V2, RATINGS, 1.7, (("200", 0.99), ("503", 0.01)), latency_ms=5),
    Edge(REVIEWS_V3, RATINGS, 1.8, (("200", 1.0),), latency_ms=6),
    Edge(FRONTEND, CART, 3.0, (("200", 0.9), ("404", 0.1)), protocol="grpc", latency_ms=15,
         request_bytes=True),
    Edge(FRONTEND, PRODUCTPAGE, 0.8, (("200", 0.85), ("503", 0.15)), latency_ms=80,
         histogram_reporters=("source", "destination"), request_bytes=True),
)  # fmt: skip
TCP_EDGES = (
    Edge(RATINGS, MONGODB, 0.0, (), protocol="tcp"),
    Edge(CART, REDIS, 0.0, (), protocol="tcp"),
)
DURATION_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000)  # ms, then +Inf
BYTES_BUCKETS = (10, 100, 1000, 10000)  # then +Inf


def _fmt_le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else str(bound)


def _reporting(edge: Edge, reporter: str) -> Workload:
    """The pod whose sidecar reports ``edge`` for ``reporter`` (its ``instance``)."""
    return edge.src if reporter == "source" else edge.dst


def _istio_labels(edge: Edge, reporter: str, code: str | None) -> dict[str, str]:
    src, dst = edge.src, edge.dst
    reporting = _reporting(edge, reporter)
    mtls = reporter == "destination" or src is not GATEWAY
    labels = {
        "reporter": reporter,
        "source_workload": src.name,
        "source_workload_namespace": src.namespace,
        "source_principal": src.principal,
        "source_app": src.app,
        "source_version": src.version,
        "source_canonical_service": src.app,
        "source_canonical_revision": src.version,
        "source_cluster": "Kubernetes",
        "destination_workload": dst.name,
        "destination_workload_namespace": dst.namespace,
        "destination_principal": dst.principal,
        "destination_app": dst.app,
        "destination_version": dst.version,
        "destination_service": dst.service,
        "destination_service_name": dst.app,
        "destination_service_namespace": dst.namespace,
        "destination_canonical_service": dst.app,
        "destination_canonical_revision": dst.version,
        "destination_cluster": "Kubernetes",
        "request_protocol": edge.protocol,
        "connection_security_policy": "mutual_tls" if mtls else "none",
        "job": "kubernetes-pods",
        "instance": reporting.instance,
    }
    if code is not None:
        labels["response_code"] = code
        labels["response_flags"] = "UF" if code == "503" else "-"
    return labels


# --- what each reporting pod's scrapes look like -------------------------------------------


def _present_steps(pod: Workload) -> list[int]:
    """The scrape steps at which ``pod``'s series have a sample (a stale marker counts)."""
    if pod is FRONTEND:
        return [s for s in range(N_STEPS) if not GAP_FIRST <= s <= GAP_LAST]
    if pod is REVIEWS_V3:
        return list(range(STALE_END_STEP + 1))  # the last one is the stale marker
    return list(range(N_STEPS))


def _restarts(pod: Workload) -> tuple[int, ...]:
    return DETAILS_RESTARTS if pod is DETAILS else ()


def _counter(
    steps: Sequence[int], increments: Sequence[float], restarts: Iterable[int] = ()
) -> list[float]:
    """Counter values at ``steps`` from per-step increments (one per step of the whole
    timeline); the counter starts again from the step's increment at a restart."""
    restart_set = set(restarts)
    values, total, wanted = [], 0.0, set(steps)
    for s in range(N_STEPS):
        total = increments[s] if s in restart_set else total + increments[s]
        if s in wanted:
            values.append(total)
    return values


def _requests_per_step(rng: random.Random, edge: Edge, share: float) -> list[float]:
    mean = edge.rps * share * STEP_MS / 1000
    out = []
    for s in range(N_STEPS):
        if edge.src is REVIEWS_V3 and s >= STALE_END_STEP:  # the caller is gone
            out.append(0.0)
            continue
        if edge.dst is REVIEWS_V3 and s >= STALE_END_STEP:
            out.append(0.0)
            continue
        # diurnal-ish swell plus noise; small shares are often zero in a scrape interval
        level = mean * (1 + 0.4 * math.sin(s / 23.0 + edge.rps))
        out.append(float(max(0, round(rng.gauss(level, max(0.5, level * 0.15))))))
    return out


def _mesh_series(rng: random.Random) -> list[Series]:
    out: list[Series] = []
    for edge in HTTP_EDGES:
        for code, share in edge.codes:
            per_step = _requests_per_step(rng, edge, share)
            for reporter in edge.reporters:
                pod = _reporting(edge, reporter)
                steps = _present_steps(pod)
                # the two sidecars see (almost) the same requests
                incr = per_step if reporter == "source" else [
                    max(0.0, n - (1 if rng.random() < 0.1 else 0)) for n in per_step
                ]  # fmt: skip
                labels = {"__name__": "istio_requests_total", **_istio_labels(edge, reporter, code)}
                values = _counter(steps, incr, _restarts(pod))
                series = Series(labels, [(s, v) for s, v in zip(steps, values, strict=True)])
                out.append(series)
                # latency histograms for 200s, and for the 503s of frontend -> productpage
                failing = code == "503" and FRONTEND in (edge.src, edge.dst)
                if reporter in edge.histogram_reporters and (code == "200" or failing):
                    out += _histogram(
                        rng, "istio_request_duration_milliseconds", DURATION_BUCKETS,
                        edge, reporter, code, incr, steps,
                        lambda r, e=edge: r.lognormvariate(math.log(e.latency_ms), 0.8),
                    )  # fmt: skip
                if edge.request_bytes and reporter == "destination" and code == "200":
                    out += _histogram(
                        rng, "istio_request_bytes", BYTES_BUCKETS, edge, reporter, code, incr,
                        steps, lambda r: r.lognormvariate(math.log(600), 1.2),
                    )  # fmt: skip
    for edge in TCP_EDGES:
        sent_rate = rng.uniform(2_000, 20_000)
        for reporter in edge.reporters:
            pod = _reporting(edge, reporter)
            steps = _present_steps(pod)
            base = _istio_labels(edge, reporter, None)
            restarts: tuple[int, ...] = ()
            if edge.src is CART:
                restarts = (CART_TCP_RESTART, RESUME_STEP)
            per_metric = {
                "istio_tcp_sent_bytes_total": [rng.uniform(0.5, 1.5) * sent_rate * 15
                                               for _ in range(N_STEPS)],
                "istio_tcp_received_bytes_total": [rng.uniform(0.5, 1.5) * sent_rate * 4
                                                   for _ in range(N_STEPS)],
                "istio_tcp_connections_opened_total": [float(rng.random() < 0.3)
                                                       for _ in range(N_STEPS)],
            }  # fmt: skip
            for name, incr in per_metric.items():
                values = _counter(steps, [round(x) for x in incr], restarts)
                samples = list(zip(steps, values, strict=True))
                if edge.src is CART:
                    samples = _stale_and_resume(samples)
                out.append(Series({"__name__": name, **base}, samples))
    return out


def _histogram(
    rng: random.Random,
    name: str,
    bounds: Sequence[float],
    edge: Edge,
    reporter: str,
    code: str,
    per_step: Sequence[float],
    steps: Sequence[int],
    draw,
) -> list[Series]:
    """``<name>_bucket`` (one per bound and ``+Inf``), ``_sum`` and ``_count``: cumulative
    counters fed by ``per_step`` observations drawn with ``draw(rng)``."""
    les = [*bounds, math.inf]
    bucket_incr = [[0.0] * N_STEPS for _ in les]
    sum_incr = [0.0] * N_STEPS
    for s in range(N_STEPS):
        for _ in range(int(per_step[s])):
            x = draw(rng)
            sum_incr[s] += x
            for i, le in enumerate(les):
                if x <= le:
                    bucket_incr[i][s] += 1
    pod = _reporting(edge, reporter)
    base = {**_istio_labels(edge, reporter, code)}
    out = []
    for le, incr in zip(les, bucket_incr, strict=True):
        values = _counter(steps, incr, _restarts(pod))
        labels = {"__name__": f"{name}_bucket", **base, "le": _fmt_le(le)}
        out.append(Series(labels, list(zip(steps, values, strict=True))))
    sums = _counter(steps, [round(x, 3) for x in sum_incr], _restarts(pod))
    out.append(Series({"__name__": f"{name}_sum", **base}, list(zip(steps, sums, strict=True))))
    counts = _counter(steps, bucket_incr[-1], _restarts(pod))
    out.append(Series({"__name__": f"{name}_count", **base}, list(zip(steps, counts, strict=True))))
    return out


def _stale_and_resume(samples: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """A stale marker at STALE_STEP, nothing until RESUME_STEP, then samples again."""
    out = []
    for s, v in samples:
        if s == STALE_STEP:
            out.append((s, STALE_NAN))
        elif not STALE_STEP < s < RESUME_STEP:
            out.append((s, v))
    return out


# --- gauges and the rest ---------------------------------------------------------------------


def _up_series() -> list[Series]:
    out = []
    for pod in WORKLOADS:
        if pod in (MONGODB, REDIS):
            continue
        steps = _present_steps(pod)
        values = [1.0] * len(steps)
        if pod is RATINGS:  # a flapping target
            values = [0.0 if 40 <= s < 44 or 150 <= s < 153 else 1.0 for s in steps]
        samples = list(zip(steps, values, strict=True))
        if pod is CART:
            samples = _stale_and_resume(samples)
        out.append(Series({"__name__": "up", "job": "kubernetes-pods", "instance": pod.instance},
                          samples))  # fmt: skip
    for node in ("node-a", "node-b", "node-c"):
        out.append(Series({"__name__": "up", "job": "node", "instance": f"{node}:9100"},
                          [(s, 1.0) for s in range(N_STEPS)]))  # fmt: skip
    return out


def _gauges(rng: random.Random) -> list[Series]:
    out = []
    for i, node in enumerate(("node-a", "node-b", "node-c")):
        base = (2 + 3 * i) * 2**30
        samples = []
        for s in range(N_STEPS):
            if node == "node-c" and GAP_FIRST <= s <= GAP_LAST:
                continue
            value = base + 2**28 * math.sin(s / (9.0 + i)) + rng.randrange(0, 2**20) * 4096
            samples.append((s, float(round(value))))
        out.append(Series({"__name__": "node_memory_free_bytes", "job": "node",
                           "instance": f"{node}:9100"}, samples))  # fmt: skip

    def temperature(sensor: str, location: str, level: float, swing: float) -> Series:
        samples = []
        for s in range(N_STEPS):
            samples.append((s, round(level + swing * math.sin(s / 17.0) + rng.gauss(0, 0.3), 2)))
        return Series({"__name__": "temperature_celsius", "sensor": sensor, "location": location,
                       "job": "sensors", "instance": "sensors:9100"}, samples)  # fmt: skip

    cpu0 = temperature("cpu0", "rack1", 55, 8)
    cpu1 = temperature("cpu1", "rack1", 58, 9)
    # a sensor that reports NaN now and then
    cpu1.samples = [(s, math.nan if s % 23 == 7 or 100 <= s <= 103 else v)
                    for s, v in cpu1.samples]  # fmt: skip
    gpu = temperature("gpu", "rack2", 70, 10)
    # overflow readings: +Inf for a while, -Inf once, NaN at the end
    gpu.samples = [
        (s, math.inf if 90 <= s <= 95 or s == 170 else -math.inf if s == 150 else v)
        for s, v in gpu.samples
    ]
    gpu.samples[-1] = (gpu.samples[-1][0], math.nan)
    ambient = temperature("ambient", "rack2", 22, 1.5)
    ambient.samples = _stale_and_resume(ambient.samples)
    outdoor = temperature("outdoor", "roof", 0.5, 4)  # crosses zero
    # a value that is exactly representable and sits on .5 for round()
    outdoor.samples[-1] = (outdoor.samples[-1][0], -2.5)
    out += [cpu0, cpu1, gpu, ambient, outdoor]

    for cache, level in (("l1", 0.9), ("l2", 0.55)):
        out.append(Series(
            {"__name__": "cache_hit_ratio", "cache": cache, "job": "cache"},
            [(s, round(min(1.0, max(-1.0, level + 0.3 * math.sin(s / 11.0)
                                    + rng.gauss(0, 0.05))), 4)) for s in range(N_STEPS)],
        ))  # fmt: skip
    for component in ("pilot", "proxy"):
        out.append(Series({"__name__": "istio_build", "component": component, "tag": "1.17.2"},
                          [(s, 1.0) for s in range(N_STEPS)]))  # fmt: skip
    # istiod's config counters, as the Istio Mesh dashboard reads them (no DestinationRule
    # has ever been deleted: the dashboard falls back to `max(up * 0)` for it)
    for kind, event, level in (("VirtualService", "add", 12), ("VirtualService", "delete", 3),
                               ("DestinationRule", "add", 9), ("Gateway", "add", 2)):  # fmt: skip
        out.append(Series(
            {"__name__": "pilot_k8s_cfg_events", "type": kind, "event": event,
             "job": "pilot", "instance": "10.0.0.3:15014"},
            [(s, float(level + s // 50)) for s in range(N_STEPS)],
        ))  # fmt: skip
    out.append(Series({"__name__": "deployment_replicas", "deployment": "legacy"},
                      [(SINGLE_SAMPLE_STEP, 3.0)]))  # fmt: skip
    return out


def _non_finite_series() -> list[Series]:
    """Counters and a gauge whose histories hold +Inf, -Inf, NaN and values near the float
    limits: one such value must only affect the windows that contain it (a prefix sum over a
    series' history would spread it, or its rounding, to every later window)."""

    def counter(case: str, values: list[float]) -> Series:
        return Series({"__name__": "edge_counter_total", "case": case},
                      list(enumerate(values)))  # fmt: skip

    # +Inf, then a reset (the correction adds +Inf), then finite resets much later
    inf_reset = [float(10 * s) for s in range(N_STEPS)]
    inf_reset[50] = math.inf
    for s in range(51, N_STEPS):
        inf_reset[s] = float(3 * (s - 51)) if s < 150 else float(2 * (s - 150))
    # NaN readings (not stale markers) inside a rising counter
    nan_inside = [float(5 * s) for s in range(N_STEPS)]
    for s in (70, 71, 130):
        nan_inside[s] = math.nan
    # resets from near the largest double: their sum overflows, each alone does not
    huge = [1.7e308 * ((s % 40) + 1) / 40 for s in range(N_STEPS)]
    # a huge reset early, then resets of 1: a prefix sum would round the small ones away
    precision = [1e17 + s for s in range(60)] + [float(s % 2 + (s // 20)) for s in range(140)]
    # -Inf readings in a counter (a reset to -Inf adds the value before it)
    minus_inf = [float(s) for s in range(N_STEPS)]
    minus_inf[90] = -math.inf
    minus_inf[91] = 92.0
    gauge = [float(s % 7) for s in range(N_STEPS)]
    for s, v in ((30, math.inf), (31, -math.inf), (32, 1.0), (33, math.nan), (120, math.inf),
                 (121, math.inf), (160, -math.inf)):  # fmt: skip
        gauge[s] = v
    return [
        counter("inf_reset", inf_reset),
        counter("nan_inside", nan_inside),
        counter("huge", huge),
        counter("precision", precision),
        counter("minus_inf", minus_inf),
        Series({"__name__": "edge_gauge", "case": "non_finite"}, list(enumerate(gauge))),
    ]


def build_dataset(end_ms: int) -> list[Series]:
    """The series, each with ``(timestamp_ms, value)`` samples in time order."""
    if end_ms % STEP_MS:
        raise ValueError("end_ms must be a multiple of 15 s")
    rng = random.Random(SEED)
    series = _mesh_series(rng) + _up_series() + _gauges(rng) + _non_finite_series()
    for s in series:  # the reviews-v3 pod went away: a stale marker ends all it reported
        if s.labels.get("instance") == REVIEWS_V3.instance:
            (step, _) = s.samples[-1]
            s.samples[-1] = (step, STALE_NAN)
    timeline = Timeline(end_ms)
    for s in series:  # steps -> timestamps
        s.samples = [(timeline.at(step), float(v)) for step, v in s.samples]
    keys = [tuple(sorted(s.labels.items())) for s in series]
    if len(set(keys)) != len(keys):
        raise AssertionError("duplicate series in the dataset")
    return series


# --- remote write ----------------------------------------------------------------------------


def remote_write_bodies(
    series: Sequence[Series], samples_per_series: int = SAMPLES_PER_REQUEST
) -> list[bytes]:
    """Snappy-compressed remote-write 1.0 ``WriteRequest`` bodies, to be POSTed in order.

    Request ``i`` holds every series' samples of scrapes ``i * samples_per_series`` up to the
    next request's first scrape, so time only moves forward across requests (what a fresh
    Prometheus head requires).
    """
    if not series:
        return []
    start = min(s.samples[0][0] for s in series if s.samples)
    window = samples_per_series * STEP_MS
    blobs = [ip.encode_labels(sorted(s.labels.items())) for s in series]
    chunks: dict[int, list[bytes]] = {}
    for blob, s in zip(blobs, series, strict=True):
        by_window: dict[int, list[tuple[int, float]]] = {}
        for t, v in s.samples:
            by_window.setdefault((t - start) // window, []).append((t, v))
        for w, samples in by_window.items():
            ts, values = zip(*samples, strict=True)
            # A WriteRequest is a repeated field: one-series messages concatenate into one.
            chunks.setdefault(w, []).append(
                ip.encode_write_request_from_blobs([blob], list(ts), [list(values)])
            )
    return [ip.compress(b"".join(chunks[w])) for w in sorted(chunks)]


def sample_count(series: Sequence[Series]) -> int:
    return sum(len(s.samples) for s in series)
