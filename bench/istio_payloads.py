"""Realistic Istio-shaped Prometheus remote-write 1.0 payloads.

Produces what a Prometheus server scraping Istio sidecars would send: ``istio_requests_total``
counters carrying the standard Istio label set (plus ``job``/``instance``), labels sorted by name,
2,000 samples per request, one or more shards each owning a disjoint set of series and advancing
time in order, exactly like the shards of Prometheus's remote-write queue.

The protobuf encoding is written by hand (no generated code, no ``protobuf`` runtime needed):

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }   // timestamp in ms

The body is then compressed with the snappy *block* (raw, not framed) format, as remote-write 1.0
requires. Everything is deterministic: the same arguments always give the same bytes.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence

import cramjam

Labels = list[tuple[str, str]]

METRIC_NAME = "istio_requests_total"
SAMPLES_PER_REQUEST = 2000
DEFAULT_STEP_MS = 15_000  # Istio's default scrape interval

REMOTE_WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "User-Agent": "canopy-bench/0.1",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}

# --- a small, plausible mesh ---------------------------------------------------------------

_NAMESPACES = ["bookinfo", "shop", "payments", "identity", "search", "media", "ads", "platform"]
_APPS = {
    "bookinfo": ["productpage", "reviews", "ratings", "details"],
    "shop": ["frontend", "cart", "checkout", "catalog", "recommendation"],
    "payments": ["payment-gateway", "ledger", "fraud-detector"],
    "identity": ["auth", "user-profile", "session-store"],
    "search": ["search-api", "indexer", "query-planner"],
    "media": ["image-resizer", "video-transcoder", "cdn-origin"],
    "ads": ["ad-server", "bidder", "campaign-manager"],
    "platform": ["api-gateway", "config-service", "notification"],
}
_VERSIONS = ["v1", "v2", "v3"]
_RESPONSE_CODES = ["200", "201", "404", "503", "500"]
_RESPONSE_FLAGS = {"200": "-", "201": "-", "404": "-", "503": "UF", "500": "-"}

# Each pod (one ``instance``) exposes this many istio_requests_total series:
# 2 reporters x 5 response codes x 4 destinations.
SERIES_PER_POD = 40
_DESTINATIONS_PER_POD = SERIES_PER_POD // (2 * len(_RESPONSE_CODES))

_ALL_APPS = [(ns, app) for ns in _NAMESPACES for app in _APPS[ns]]


def _pod_identity(pod: int) -> tuple[str, str, str, str]:
    """(namespace, app, workload, instance) of global pod number ``pod``."""
    ns, app = _ALL_APPS[pod % len(_ALL_APPS)]
    version = _VERSIONS[(pod // len(_ALL_APPS)) % len(_VERSIONS)]
    workload = f"{app}-{version}"
    # Unique, realistic pod IP per global pod number; 15020 is the sidecar's merged metrics port.
    ip = f"10.{(pod >> 16) & 0xFF}.{(pod >> 8) & 0xFF}.{pod & 0xFF}"
    return ns, app, workload, f"{ip}:15020"


def series_for_shard(shard: int, n_series: int = SAMPLES_PER_REQUEST) -> list[Labels]:
    """The ``n_series`` label sets owned by ``shard`` (disjoint from every other shard's).

    Each label set is a list of ``(name, value)`` pairs sorted by name, starting with ``__name__``.
    """
    if shard < 0 or n_series <= 0:
        raise ValueError("shard must be >= 0 and n_series > 0")
    pods_per_shard = -(-n_series // SERIES_PER_POD)
    out: list[Labels] = []
    for i in range(n_series):
        pod = shard * pods_per_shard + i // SERIES_PER_POD
        k = i % SERIES_PER_POD
        ns, app, workload, instance = _pod_identity(pod)
        reporter = ("source", "destination")[k % 2]
        code = _RESPONSE_CODES[(k // 2) % len(_RESPONSE_CODES)]
        peer = (pod * 7 + k // (2 * len(_RESPONSE_CODES)) + 1) % len(_ALL_APPS)
        dest_ns, dest_app = _ALL_APPS[peer]
        if reporter == "destination":
            # the inbound side: this pod is the destination, the peer is the source
            src_ns, src_app, dst_ns, dst_app = dest_ns, dest_app, ns, app
        else:
            src_ns, src_app, dst_ns, dst_app = ns, app, dest_ns, dest_app
        src_wl = workload if reporter == "source" else f"{src_app}-v1"
        dst_wl = workload if reporter == "destination" else f"{dst_app}-v1"
        labels = {
            "__name__": METRIC_NAME,
            "connection_security_policy": "mutual_tls" if reporter == "destination" else "unknown",
            "destination_service": f"{dst_app}.{dst_ns}.svc.cluster.local",
            "destination_service_name": dst_app,
            "destination_service_namespace": dst_ns,
            "destination_workload": dst_wl,
            "destination_workload_namespace": dst_ns,
            "instance": instance,
            "job": "kubernetes-pods",
            "reporter": reporter,
            "request_protocol": "grpc" if (pod + k) % 7 == 0 else "http",
            "response_code": code,
            "response_flags": _RESPONSE_FLAGS[code],
            "source_app": src_app,
            "source_workload": src_wl,
            "source_workload_namespace": src_ns,
        }
        out.append(sorted(labels.items()))
    return out


# --- protobuf encoding --------------------------------------------------------------------

_pack_double = struct.Struct("<d").pack


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 negative numbers are 10-byte varints
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field_bytes(field: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint((field << 3) | 2) + _varint(len(payload)) + payload


def encode_labels(labels: Sequence[tuple[str, str]]) -> bytes:
    """The ``labels`` fields (field 1, repeated) of one TimeSeries, ready to prefix samples."""
    parts = []
    for name, value in labels:
        label = _field_bytes(1, name.encode()) + _field_bytes(2, value.encode())
        parts.append(_field_bytes(1, label))
    return b"".join(parts)


def _encode_sample(value: float, ts_tail: bytes) -> bytes:
    # Sample{double value = 1 (tag 0x09, fixed64); int64 timestamp = 2 (tag 0x10, varint)}.
    # proto3 leaves out fields holding the default value, like Go's encoder does.
    body = (b"\x09" + _pack_double(value) if value != 0.0 else b"") + ts_tail
    return b"\x12" + _varint(len(body)) + body


def encode_write_request_from_blobs(
    label_blobs: Sequence[bytes],
    timestamps_ms: Sequence[int],
    values: Sequence[Sequence[float]],
) -> bytes:
    """:func:`encode_write_request` with label blobs pre-encoded by :func:`encode_labels`."""
    if len(label_blobs) != len(values):
        raise ValueError("one row of values per series is required")
    tails = [b"\x10" + _varint(t) if t != 0 else b"" for t in timestamps_ms]
    out = []
    for blob, row in zip(label_blobs, values, strict=True):
        if len(row) != len(tails):
            raise ValueError("one value per timestamp is required")
        ts_body = blob + b"".join(map(_encode_sample, row, tails))
        out.append(b"\x0a" + _varint(len(ts_body)) + ts_body)
    return b"".join(out)


def encode_write_request(
    series: Sequence[Sequence[tuple[str, str]]],
    timestamps_ms: Sequence[int],
    values: Sequence[Sequence[float]],
) -> bytes:
    """Uncompressed protobuf ``WriteRequest`` bytes.

    ``series[i]`` gets one sample per timestamp: ``values[i][j]`` at ``timestamps_ms[j]``.
    Labels are written in the order given (callers pass them sorted by name).
    """
    return encode_write_request_from_blobs(
        [encode_labels(s) for s in series], timestamps_ms, values
    )


def compress(body: bytes) -> bytes:
    """Snappy block-format compression (what remote-write 1.0 expects)."""
    return bytes(cramjam.snappy.compress_raw(body))


# --- counter values -----------------------------------------------------------------------


def _increment(series_index: int, step_index: int) -> int:
    """Requests added to series ``series_index`` during step ``step_index`` (always >= 1)."""
    rate = 1 + (series_index * 2654435761) % 97  # per-series base traffic
    jitter = ((series_index + 1) * 40503 + step_index * 9973) % (rate // 4 + 3)
    return rate + jitter


def counter_value(series_index: int, step_index: int) -> float:
    """The counter of ``series_index`` at step ``step_index`` (strictly increasing in steps)."""
    base = (series_index * 7919) % 5000
    return float(base + sum(_increment(series_index, s) for s in range(step_index + 1)))


# --- requests -----------------------------------------------------------------------------


def aligned_start_ms(
    n_steps: int, step_ms: int = DEFAULT_STEP_MS, end_ms: int | None = None
) -> int:
    """A start timestamp (whole seconds) such that ``n_steps`` steps end at ``end_ms`` (now)."""
    end = int(time.time() * 1000) if end_ms is None else end_ms
    end -= end % 1000
    return end - (n_steps - 1) * step_ms


def steps_needed(
    n_requests: int,
    n_series: int = SAMPLES_PER_REQUEST,
    samples_per_series: int = 1,
    samples_per_request: int = SAMPLES_PER_REQUEST,
) -> int:
    """How many distinct timestamps ``build_requests`` uses for these arguments."""
    series_per_request = max(1, samples_per_request // samples_per_series)
    chunks = -(-n_series // series_per_request)
    groups = -(-n_requests // chunks)
    return groups * samples_per_series


def build_uncompressed_requests(
    shard: int,
    n_requests: int,
    start_ms: int,
    step_ms: int = DEFAULT_STEP_MS,
    *,
    n_series: int = SAMPLES_PER_REQUEST,
    samples_per_series: int = 1,
    samples_per_request: int = SAMPLES_PER_REQUEST,
) -> list[tuple[bytes, int, int]]:
    """``(protobuf bytes, sample count, last timestamp)`` per request, in send order.

    Time advances in groups of ``samples_per_series`` consecutive timestamps; within a group the
    shard's series are split into requests of ``samples_per_request // samples_per_series`` series,
    each carrying the whole group's timestamps. With the defaults (2,000 series,
    ``samples_per_series=1``) every request holds one sample of each of the shard's 2,000 series at
    one scrape timestamp, and the next request the next timestamp.
    """
    if samples_per_series < 1 or samples_per_request < samples_per_series:
        raise ValueError("need 1 <= samples_per_series <= samples_per_request")
    series = series_for_shard(shard, n_series)
    blobs = [encode_labels(s) for s in series]
    # a global series number keeps values distinct across shards
    gidx = [shard * n_series + i for i in range(n_series)]
    series_per_request = max(1, samples_per_request // samples_per_series)
    chunks = [
        range(lo, min(lo + series_per_request, n_series))
        for lo in range(0, n_series, series_per_request)
    ]
    # running counter value per series, advanced step by step
    current = [float((g * 7919) % 5000) for g in gidx]
    out: list[tuple[bytes, int, int]] = []
    group = 0
    while len(out) < n_requests:
        steps = range(group * samples_per_series, (group + 1) * samples_per_series)
        timestamps = [start_ms + s * step_ms for s in steps]
        # values of every series for this group's steps
        group_values: list[list[float]] = []
        for i, g in enumerate(gidx):
            row = []
            v = current[i]
            for s in steps:
                v += _increment(g, s)
                row.append(v)
            current[i] = v
            group_values.append(row)
        for chunk in chunks:
            if len(out) >= n_requests:
                break
            body = encode_write_request_from_blobs(
                [blobs[i] for i in chunk], timestamps, [group_values[i] for i in chunk]
            )
            out.append((body, len(chunk) * len(timestamps), timestamps[-1]))
        group += 1
    return out


def build_requests(
    shard: int,
    n_requests: int,
    start_ms: int,
    step_ms: int = DEFAULT_STEP_MS,
    *,
    n_series: int = SAMPLES_PER_REQUEST,
    samples_per_series: int = 1,
    samples_per_request: int = SAMPLES_PER_REQUEST,
) -> list[bytes]:
    """Snappy-compressed WriteRequest bodies for ``shard``, ready to POST in order.

    See :func:`build_uncompressed_requests` for the meaning of the arguments.
    """
    return [
        compress(body)
        for body, _, _ in build_uncompressed_requests(
            shard,
            n_requests,
            start_ms,
            step_ms,
            n_series=n_series,
            samples_per_series=samples_per_series,
            samples_per_request=samples_per_request,
        )
    ]
