"""Prometheus remote-write decoding and validation (pure functions: no database needed)."""

from __future__ import annotations

import math
import struct
import time
import tracemalloc
from collections.abc import Iterable, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.decoders import remote_write, snappy_block
from ingest.decoders.errors import DecodeError, PayloadTooLarge, UnsupportedMediaType
from ingest.decoders.proto import remote_write_v1_pb2 as pb1
from ingest.decoders.proto import remote_write_v2_pb2 as pb2
from ingest.decoders.remote_write import (
    LabelLimits,
    WriteBatch,
    decode_remote_write,
    remote_write_protocol,
)

NOW = 1_700_000_000_000
HOUR = 3_600_000
V1 = "application/x-protobuf"
V2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]

Labels = Sequence[tuple[str, str]]
Samples = Sequence[tuple[int, float]]


# --- payload builders (the spec messages of the same .proto files) ----------------------------


def v1_request(
    series: Iterable[tuple[Labels, Samples]],
    *,
    metadata: Sequence[tuple[int, str, str, str]] = (),
    exemplars: int = 0,
    histograms: int = 0,
) -> bytes:
    request = pb1.WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name, value in labels:
            ts.labels.add(name=name, value=value)
        for timestamp, value in samples:
            ts.samples.add(timestamp=timestamp, value=value)
        for _ in range(exemplars):
            ts.exemplars.add(value=1.0, timestamp=NOW).labels.add(name="trace_id", value="abc")
        for _ in range(histograms):
            ts.histograms.add(count_int=3, sum=1.5, schema=1, timestamp=NOW)
    for kind, name, help_text, unit in metadata:
        request.metadata.add(type=kind, metric_family_name=name, help=help_text, unit=unit)
    return request.SerializeToString()


def v2_request(
    series: Iterable[tuple[Labels, Samples]],
    *,
    metadata: tuple[int, str, str] | None = None,
    exemplars: int = 0,
    histograms: int = 0,
) -> bytes:
    request = pb2.Request()
    request.symbols.append("")
    index = {"": 0}

    def ref(text: str) -> int:
        if text not in index:
            index[text] = len(request.symbols)
            request.symbols.append(text)
        return index[text]

    for labels, samples in series:
        ts = request.timeseries.add()
        for name, value in labels:
            ts.labels_refs.extend([ref(name), ref(value)])
        for timestamp, value in samples:
            ts.samples.add(timestamp=timestamp, value=value)
        for _ in range(exemplars):
            ts.exemplars.add(value=1.0, timestamp=NOW).labels_refs.extend([ref("a"), ref("b")])
        for _ in range(histograms):
            ts.histograms.add(count_int=3, sum=1.5, schema=1, timestamp=NOW)
        if metadata is not None:
            kind, help_text, unit = metadata
            ts.metadata.type = kind
            ts.metadata.help_ref = ref(help_text)
            ts.metadata.unit_ref = ref(unit)
    return request.SerializeToString()


def decode(
    raw: bytes,
    *,
    content_type: str = V1,
    limits: LabelLimits | None = None,
    max_age_ms: int | None = HOUR,
    compressed: bool = False,
    **kwargs,
) -> WriteBatch:
    return decode_remote_write(
        raw if compressed else snappy_block.compress(raw),
        content_type=content_type,
        content_encoding=kwargs.pop("content_encoding", "snappy"),
        remote_write_version=kwargs.pop("remote_write_version", None),
        max_size=kwargs.pop("max_size", 64 << 20),
        limits=limits or LabelLimits(),
        now_ms=kwargs.pop("now_ms", NOW),
        max_age_ms=max_age_ms,
        **kwargs,
    )


def both(raw_v1_and_v2: tuple[bytes, bytes], **kwargs) -> list[WriteBatch]:
    raw1, raw2 = raw_v1_and_v2
    return [decode(raw1, **kwargs), decode(raw2, content_type=V2, **kwargs)]


def request_pair(series, **kwargs) -> tuple[bytes, bytes]:
    series = list(series)
    v2_kwargs = {k: v for k, v in kwargs.items() if k != "metadata"}
    return v1_request(series, **kwargs), v2_request(series, **v2_kwargs)


def rows(batch: WriteBatch) -> list[tuple[tuple[tuple[str, str], ...], int, int]]:
    """(labels, timestamp, value bits) per accepted sample, in order."""
    bits = batch.values.view(np.uint64).tolist()
    return [
        (batch.series_labels[s], t, b)
        for s, t, b in zip(
            batch.sample_series.tolist(), batch.timestamps_ms.tolist(), bits, strict=True
        )
    ]


def reasons(batch: WriteBatch) -> dict[str, int]:
    return {r.reason: r.samples for r in batch.rejected}


def as_tuple(batch: WriteBatch) -> tuple:
    return (
        batch.series_labels,
        batch.sample_series.tolist(),
        batch.timestamps_ms.tolist(),
        batch.values.view(np.uint64).tolist(),
        batch.metadata,
        batch.histograms_received,
        batch.exemplars_received,
        [(r.reason, r.message, r.samples) for r in batch.rejected],
    )


def bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def up(job: str, **extra: str) -> list[tuple[str, str]]:
    return sorted({"__name__": "up", "job": job, **extra}.items())


@pytest.fixture(autouse=True, params=["bulk", "one_by_one"])
def _fresh_caches(request, monkeypatch):
    # Every test runs twice: series new to the process decoded all together (what a request of
    # thousands of new series takes), and one by one (what a few new series take).
    monkeypatch.setattr(remote_write, "_BULK_MIN_SERIES", 1 if request.param == "bulk" else 10**9)
    remote_write.clear_caches()
    yield
    remote_write.clear_caches()


# --- round trips ---------------------------------------------------------------------------------


ISTIO = sorted(
    {
        "__name__": "istio_requests_total",
        "connection_security_policy": "mutual_tls",
        "destination_service": "reviews.bookinfo.svc.cluster.local",
        "destination_workload": "reviews-v1",
        "instance": "10.0.0.7:15020",
        "job": "kubernetes-pods",
        "reporter": "destination",
        "response_code": "200",
        "source_workload": "productpage-v1",
    }.items()
)


def test_round_trip_v1_and_v2_agree_and_survive_the_cache():
    series = [
        (ISTIO, [(NOW - 30_000, 1.0), (NOW - 15_000, 2.5), (NOW, 4.0)]),
        (up("api", instance="a:1"), [(NOW, 0.0)]),  # value 0: the field is left out on the wire
        (up("api", instance="a:2"), [(NOW, -7.25), (NOW + 1, math.inf)]),
        (up("db"), []),  # a series without samples is still a series
        (up("edge"), [(2**40, 3.0)]),  # a timestamp needing fewer varint bytes
    ]
    raw = request_pair(series)
    expected = [
        (tuple(labels), t, bits(v))
        for labels, samples in series
        for t, v in samples
        if t >= NOW - HOUR
    ]
    for _ in range(2):  # cold, then every label set from the cache
        for batch in both(raw):
            assert rows(batch) == expected
            assert [tuple(s) for s, _ in series] == batch.series_labels
            assert reasons(batch) == {"too_old": 1}
            assert batch.sample_series.dtype == np.int32
            assert batch.timestamps_ms.dtype == np.int64
            assert batch.values.dtype == np.float64


def test_stale_marker_nan_is_kept_bit_for_bit():
    other_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
    series = [(up("a"), [(NOW - 1, 1.0), (NOW, STALE_NAN)]), (up("b"), [(NOW, other_nan)])]
    for _ in range(2):
        for batch in both(request_pair(series)):
            assert batch.values.view(np.uint64).tolist() == [
                bits(1.0),
                STALE_NAN_BITS,
                0x7FF8000000000001,
            ]


def test_labels_are_sorted_and_empty_values_dropped():
    labels = [("__name__", "up"), ("empty", ""), ("job", "x")]
    for batch in both(request_pair([(labels, [(NOW, 1.0)])])):
        assert batch.series_labels == [(("__name__", "up"), ("job", "x"))]
        assert not batch.rejected


def test_same_series_twice_in_a_request_is_one_series():
    # Prometheus sends one TimeSeries per sample; the same labels with or without an empty label
    # are also the same series.
    series = [
        (up("a"), [(NOW - 2, 1.0)]),
        (up("b"), [(NOW - 2, 5.0)]),
        (up("a"), [(NOW - 1, 2.0)]),
        ([*up("a"), ("zzz", "")], [(NOW, 3.0)]),
    ]
    for batch in both(request_pair(series)):
        assert batch.series_labels == [tuple(up("a")), tuple(up("b"))]
        assert batch.sample_series.tolist() == [0, 1, 0, 0]
        assert batch.values.tolist() == [1.0, 5.0, 2.0, 3.0]


def test_many_samples_per_series():
    samples = [(NOW - 1000 * i, float(i)) for i in range(40, -1, -1)]  # more than the fast path
    for batch in both(request_pair([(up("a"), samples), (up("b"), samples[:3])])):
        assert batch.timestamps_ms.tolist() == [t for t, _ in samples] + [t for t, _ in samples[:3]]
        assert batch.sample_series.tolist() == [0] * len(samples) + [1] * 3


def test_histograms_and_exemplars_are_counted():
    series = [(up("a"), [(NOW, 1.0)]), (up("b"), [])]
    for batch in both(request_pair(series, exemplars=2, histograms=1)):
        assert batch.exemplars_received == 4
        assert batch.histograms_received == 2
        assert rows(batch) == [(tuple(up("a")), NOW, bits(1.0))]


def test_v1_metadata():
    metadata = [
        (1, "http_requests_total", "Requests.", ""),
        (2, "temperature", "Degrees.", "celsius"),
        (42, "odd", "", ""),
        (1, "", "nameless", ""),
    ]
    batch = decode(v1_request([], metadata=metadata))
    assert batch.metadata == [
        ("http_requests_total", "counter", "Requests.", ""),
        ("temperature", "gauge", "Degrees.", "celsius"),
        ("odd", "unknown", "", ""),
    ]
    assert reasons(batch) == {"metadata_missing_metric_name": 0}


def test_v2_metadata_is_deduplicated_per_metric():
    series = [(up(str(i)), [(NOW, 1.0)]) for i in range(5)]
    series.append(([("__name__", "bytes_total"), ("job", "x")], [(NOW, 1.0)]))
    raw = v2_request(series[:5], metadata=(1, "Whether up.", ""))
    batch = decode(raw, content_type=V2)
    assert batch.metadata == [("up", "counter", "Whether up.", "")]
    raw = v2_request(series[5:], metadata=(2, "Bytes.", "bytes"))
    assert decode(raw, content_type=V2).metadata == [("bytes_total", "gauge", "Bytes.", "bytes")]
    assert decode(v2_request(series)).metadata == []  # read as 1.0: an empty request


def test_empty_requests():
    for batch in both((b"", b"")):
        assert batch.series_labels == []
        assert len(batch.values) == len(batch.timestamps_ms) == len(batch.sample_series) == 0
        assert not batch.rejected


def test_ordinary_requests_never_decode_series_one_by_one(monkeypatch):
    # The vectorized reader handles what Prometheus sends; the per-series protobuf path is the
    # slow fallback and must stay unused for it (a performance guard).
    def refuse(data):
        raise AssertionError("per-series fallback used")

    monkeypatch.setattr(pb1.TimeSeriesView, "FromString", refuse)
    monkeypatch.setattr(pb2.TimeSeriesView, "FromString", refuse)
    series = [
        (ISTIO, [(NOW, 1.0)]),
        (up("a"), [(NOW - 1, 0.0), (NOW, STALE_NAN)]),
        (up("b"), [(NOW - 30_000 * i, float(i)) for i in range(5, -1, -1)]),
    ]
    for _ in range(2):
        for batch in both(request_pair(series, metadata=[(1, "up", "Up.", "")])):
            assert len(batch.values) == 9
            assert not batch.rejected


def test_the_protobuf_reader_reads_every_series_with_the_runtime(monkeypatch):
    # the reference the vectorized reader is compared with below must really be the other path
    read: list[bytes] = []
    for view in (pb1.TimeSeriesView, pb2.TimeSeriesView):
        parse = view.FromString
        monkeypatch.setattr(
            view, "FromString", lambda data, parse=parse: read.append(data) or parse(data)
        )
    series = [(ISTIO, [(NOW, 1.0)]), (up("a"), [(NOW - 1, 0.0), (NOW, STALE_NAN)])]
    for batch in both(request_pair(series), series_reader="protobuf"):
        assert len(batch.values) == 3
    assert len(read) == 4


# --- label validation ------------------------------------------------------------------------


GOOD = (up("good"), [(NOW, 1.0)])

LABEL_CASES = {
    "missing_metric_name": [("job", "x")],
    "invalid_metric_name": [("__name__", "1up"), ("job", "x")],
    "invalid_label_name": [("__name__", "up"), ("job-name", "x")],
    "empty_label_name": [("", "x"), ("__name__", "up")],
    "duplicate_label_names": [("__name__", "up"), ("job", "x"), ("job", "y")],
    "labels_not_sorted": [("__name__", "up"), ("zone", "a"), ("job", "x")],
    "max_label_names_per_series": [("__name__", "up")] + [(f"l{i:02}", "v") for i in range(30)],
    "label_name_too_long": [("__name__", "up"), ("n" * 1025, "v")],
    "label_value_too_long": [("__name__", "up"), ("job", "é" * 1025)],  # 2050 bytes
    "invalid_label_value": [("__name__", "up"), ("job", "a\x00b")],  # PostgreSQL text can't
}


@pytest.mark.parametrize("reason", sorted(LABEL_CASES))
def test_invalid_series_are_rejected_and_the_rest_kept(reason):
    bad = (LABEL_CASES[reason], [(NOW - 1, 1.0), (NOW, 2.0)])
    for _ in range(2):
        for batch in both(request_pair([GOOD, bad])):
            assert reasons(batch) == {reason: 2}
            assert rows(batch) == [(tuple(up("good")), NOW, bits(1.0))]
            message = batch.rejected[0].message
            assert "series" in message
            assert len(message) < 2000


def test_a_cached_label_set_is_judged_by_each_tenants_limits():
    labels = [("__name__", "up"), ("job", "x" * 100)]
    raw = request_pair([(labels, [(NOW, 1.0)])])
    generous = LabelLimits()
    strict = LabelLimits(max_label_value_length=50)
    for limits, expected in ((generous, {}), (strict, {"label_value_too_long": 1}), (generous, {})):
        for batch in both(raw, limits=limits):
            assert reasons(batch) == expected


def test_raised_limits_accept_more():
    labels = LABEL_CASES["max_label_names_per_series"]
    roomy = LabelLimits(max_label_names_per_series=40)
    for batch in both(request_pair([(labels, [(NOW, 1.0)])]), limits=roomy):
        assert not batch.rejected


def test_checks_run_in_cortex_order():
    # too many labels is reported before an invalid label name, like Cortex's distributor
    labels = [("__name__", "up"), ("bad-name", "x")] + [(f"l{i:02}", "v") for i in range(30)]
    for batch in both(request_pair([(labels, [(NOW, 1.0)])])):
        assert reasons(batch) == {"max_label_names_per_series": 1}


def test_invalid_utf8_rejects_the_series_only():
    raw1 = bytearray(v1_request([GOOD, ([("__name__", "up"), ("job", "X")], [(NOW, 1.0)])]))
    raw1[raw1.rindex(b"X")] = 0xFF
    batch = decode(bytes(raw1))
    assert reasons(batch) == {"invalid_utf8": 1}
    assert batch.series_labels == [tuple(up("good"))]

    raw2 = bytearray(v2_request([GOOD, ([("__name__", "up"), ("job", "X")], [(NOW, 1.0)])]))
    raw2[raw2.rindex(b"X")] = 0xFF
    batch = decode(bytes(raw2), content_type=V2)
    assert reasons(batch) == {"invalid_utf8": 1}
    assert batch.series_labels == [tuple(up("good"))]


def v2_with_refs(refs: list[int], *, help_ref: int = 0) -> bytes:
    request = pb2.Request(symbols=["", "__name__", "up", "job", "x"])
    request.timeseries.add(labels_refs=[1, 2, 3, 4]).samples.add(timestamp=NOW, value=1.0)
    bad = request.timeseries.add(labels_refs=refs)
    bad.samples.add(timestamp=NOW, value=2.0)
    bad.metadata.help_ref = help_ref
    return request.SerializeToString()


@pytest.mark.parametrize(
    ("refs", "help_ref", "reason"),
    [
        ([1, 2, 3], 0, "invalid_label_refs"),
        ([1, 2, 3, 99], 0, "invalid_label_refs"),
        ([1, 2, 3, 4], 99, "invalid_metadata_refs"),
    ],
)
def test_v2_bad_references_reject_the_series(refs, help_ref, reason):
    for reader in ("vectorized", "protobuf"):
        batch = decode(v2_with_refs(refs, help_ref=help_ref), content_type=V2, series_reader=reader)
        assert reasons(batch) == {reason: 1}
        assert batch.values.tolist() == [1.0]


# --- sample validation -----------------------------------------------------------------------


def test_too_old_and_too_far_in_the_future():
    series = [
        (
            up("a"),
            [(NOW - HOUR - 1, 1.0), (NOW - HOUR, 2.0), (NOW + 600_000, 3.0), (NOW + 600_001, 4.0)],
        )
    ]
    for batch in both(request_pair(series)):
        assert batch.values.tolist() == [2.0, 3.0]
        assert reasons(batch) == {"too_old": 1, "too_far_in_future": 1}
        assert str(NOW - HOUR - 1) in batch.rejected[0].message
    for batch in both(request_pair(series), max_age_ms=None, future_grace_ms=0):
        assert batch.values.tolist() == [1.0, 2.0]
        assert reasons(batch) == {"too_far_in_future": 2}


def test_out_of_order_and_duplicate_samples_within_a_request():
    series = [
        (up("a"), [(NOW - 10, 1.0), (NOW - 20, 2.0), (NOW - 10, 1.0), (NOW - 10, 9.0)]),
        (up("b"), [(NOW - 5, 1.0)]),
        (up("a"), [(NOW - 15, 3.0), (NOW, STALE_NAN), (NOW, STALE_NAN)]),
        (up("b"), [(NOW - 5, 1.0), (NOW - 4, 1.0)]),
    ]
    for batch in both(request_pair(series)):
        assert rows(batch) == [
            (tuple(up("a")), NOW - 10, bits(1.0)),
            (tuple(up("b")), NOW - 5, bits(1.0)),
            (tuple(up("a")), NOW, STALE_NAN_BITS),
            (tuple(up("b")), NOW - 4, bits(1.0)),
        ]
        assert reasons(batch) == {"out_of_order": 2, "duplicate_timestamp": 1}
        duplicate = next(r for r in batch.rejected if r.reason == "duplicate_timestamp")
        assert str(NOW - 10) in duplicate.message
        assert 'job="a"' in duplicate.message


def test_samples_of_a_rejected_series_are_counted_once():
    bad = LABEL_CASES["invalid_label_name"]
    series = [(bad, [(NOW, 1.0)]), (bad, [(NOW - HOUR * 2, 1.0), (NOW + 1, 1.0)])]
    for batch in both(request_pair(series)):
        assert reasons(batch) == {"invalid_label_name": 3}
        assert batch.samples_rejected == 3


# --- content negotiation and sizes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "encoding", "version"),
    [
        ("application/x-protobuf", "snappy", 1),
        ("application/x-protobuf;proto=prometheus.WriteRequest", "snappy", 1),
        ("Application/X-Protobuf; proto=prometheus.WriteRequest", "SNAPPY", 1),
        ("application/x-protobuf;proto=io.prometheus.write.v2.Request", "snappy", 2),
        ('application/x-protobuf; charset=utf-8; proto="io.prometheus.write.v2.Request"', None, 2),
        (None, None, 1),
        ("application/x-protobuf", "", 1),
    ],
)
def test_content_negotiation(content_type, encoding, version):
    assert remote_write_protocol(content_type, encoding) == version


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [
        ("application/json", "snappy"),
        ("text/plain", None),
        ("application/x-protobuf;proto=io.prometheus.write.v3.Request", "snappy"),
        ("application/x-protobuf;proto=", "snappy"),
        ("application/x-protobuf", "gzip"),
        ("application/x-protobuf", "zstd"),
        ("application/x-protobuf", "identity"),
    ],
)
def test_unsupported_media_types(content_type, encoding):
    with pytest.raises(UnsupportedMediaType) as caught:
        decode(v1_request([GOOD]), content_type=content_type, content_encoding=encoding)
    assert caught.value.http_status == 415


def test_a_body_declaring_a_gibibyte_fails_fast_without_allocating():
    body = bytes([0x80, 0x80, 0x80, 0x80, 0x04]) + b"\x00" * 64  # declares 1 << 30 bytes
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PayloadTooLarge) as caught:
            decode(body, compressed=True, max_size=10 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 0.5
    assert peak < 1 << 20
    assert caught.value.http_status == 413
    assert str(1 << 30) in str(caught.value)


def test_size_cap_applies_to_the_decompressed_size():
    raw = v1_request([(up("a"), [(NOW - 100 + i, 1.0)]) for i in range(100)])
    assert len(snappy_block.compress(raw)) < len(raw)
    with pytest.raises(PayloadTooLarge):
        decode(raw, max_size=len(raw) - 1)
    assert len(decode(raw, max_size=len(raw)).values) == 100


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff\xff\xff\xff\xff\xff", b"\x05abc", snappy_block.compress(b"\x0a\x05\x0a\x03")],
)
def test_corrupt_bodies_are_decode_errors(body):
    for content_type in (V1, V2):
        with pytest.raises(DecodeError) as caught:
            decode(body, compressed=True, content_type=content_type)
        assert caught.value.http_status == 400
        assert str(caught.value)


def test_corrupt_series_inside_a_valid_request():
    # a TimeSeries whose bytes are not a valid message (the request itself parses)
    raw = v1_request([GOOD]) + b"\x0a\x03\x0a\x05\x0a"
    with pytest.raises(DecodeError, match="not a valid protobuf"):
        decode(raw)
    raw = v1_request([GOOD]) + b"\x0a\x04\x0a\x02\x0a\x05"  # a corrupt Label
    with pytest.raises(DecodeError, match="not a valid protobuf"):
        decode(raw)


def test_label_cache_stays_bounded():
    remote_write.configure_caches(label_sets=50, symbols=1000)
    try:
        for chunk in range(5):
            series = [(up(f"{chunk}-{i}"), [(NOW, 1.0)]) for i in range(40)]
            for batch in both(request_pair(series)):
                assert len(batch.series_labels) == 40
        assert len(remote_write.V1_LABEL_SETS) <= 50
        assert len(remote_write.V2_LABEL_SETS) <= 50
    finally:
        remote_write.configure_caches(label_sets=50_000, symbols=200_000)


# --- the vectorized reader agrees with the protobuf runtime -------------------------------------


def decode_both_ways(raw: bytes, content_type: str) -> tuple:
    """Decode with the vectorized reader and with the protobuf runtime only (cold caches)."""
    results = []
    for reader in ("vectorized", "protobuf"):
        remote_write.clear_caches()
        try:
            results.append(as_tuple(decode(raw, content_type=content_type, series_reader=reader)))
        except DecodeError as exc:
            results.append(type(exc))
    return tuple(results)


@pytest.mark.parametrize("content_type", [V1, V2])
def test_a_crowd_of_new_series_with_odd_ones_among_them_decodes_like_the_runtime(content_type):
    # what a first request of thousands of series takes (all of them new to the process), with
    # series that the bulk reader must leave to the one-by-one path in between
    odd = [
        [("__name__", "up"), ("job", "x" * 200)],  # a label of more than 127 bytes
        [("__name__", "up"), ("empty", ""), ("job", "e")],  # an empty value is dropped
        [("__name__", "up"), ("zone", "a"), ("job", "b")],  # unsorted
        [("__name__", "up"), ("job", "a\x00b")],  # NUL
        [("__name__", "1up"), ("job", "c")],  # invalid metric name
        [("job", "nameless")],
        [("__name__", "up"), ("job", "é")],  # multi-byte UTF-8, fine
        [("__name__", "up"), ("job-x", "d")],  # invalid label name
    ]
    series = []
    for i in range(40):
        series.append((up(f"job{i}", instance=f"10.0.0.{i}:9090"), [(NOW, float(i))]))
        if i % 5 == 0:
            series.append((odd[i // 5], [(NOW - 1, 1.0), (NOW, 2.0)]))
    series.append(series[3])  # the same series twice
    raw = bytearray(v1_request(series) if content_type == V1 else v2_request(series))
    raw[raw.index(b"job39") + 3] = 0xFF  # and one label value that is not UTF-8
    first, second = decode_both_ways(bytes(raw), content_type)
    assert first == second
    assert len(first[0]) == 40 - 1 + 3  # job39 out; the long, the empty-valued and "é" in
    assert {r[0] for r in first[-1]} == {
        "invalid_utf8",
        "labels_not_sorted",
        "invalid_label_value",
        "invalid_metric_name",
        "missing_metric_name",
        "invalid_label_name",
    }


def test_unusual_encodings_decode_like_the_protobuf_runtime():
    ordinary = v1_request([(up("a"), [(NOW, 1.0)])])
    samples_first = pb1.TimeSeries()
    samples_first.samples.add(timestamp=NOW, value=2.0)
    labels_after = pb1.TimeSeries()
    for name, value in up("b"):
        labels_after.labels.add(name=name, value=value)
    series_bytes = samples_first.SerializeToString() + labels_after.SerializeToString()
    unknown_field = b"\x78\x01"  # field 15, varint: unknown, skipped
    overlong_length = b"\x0a\x84\x80\x00\x0a\x02ab"  # a label with a padded length varint
    variants = [
        ordinary,
        b"\x0a" + bytes([len(series_bytes)]) + series_bytes,
        v1_request([(up("c"), [(0, 1.0)])]),  # timestamp 0
        v1_request([(up("c"), [(-5, 1.0)])]),  # negative timestamp: 10-byte varint
        v1_request([(up("d"), [(NOW, 1.0)])], exemplars=1),
        ordinary[:2] + unknown_field + ordinary[2:],
        b"\x0a\x0c" + overlong_length + b"\x12\x02\x10\x01",
    ]
    for raw in variants:
        fast, reference = decode_both_ways(raw, V1)
        assert fast == reference, raw


def test_unusual_v2_encodings_decode_like_the_protobuf_runtime():
    ordinary = v2_request([(up("a"), [(NOW, 1.0), (NOW + 1, 0.0)])], metadata=(1, "h", "u"))
    request = pb2.Request.FromString(ordinary)
    series = request.timeseries[0]
    unpacked = b"".join(b"\x08" + bytes([r]) for r in series.labels_refs)
    rest = series.SerializeToString()[2 + len(series.labels_refs) :]
    variants = [
        ordinary,
        pb2.Request(
            symbols=request.symbols, timeseries=[pb2.TimeSeries(labels_refs=[1, 2] * 200)]
        ).SerializeToString(),
        b"".join(b"\x22" + bytes([len(s)]) + s.encode() for s in request.symbols)
        + b"\x2a"
        + bytes([len(unpacked + rest)])
        + unpacked
        + rest,
        v2_request([(up("b"), [(NOW, 1.0)])], exemplars=2, histograms=1),
    ]
    for raw in variants:
        fast, reference = decode_both_ways(raw, V2)
        assert fast == reference, raw


# --- fuzzing: nothing but DecodeError ever escapes ------------------------------------------------

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SEEDS_V1 = [
    v1_request(
        [(ISTIO, [(NOW, 1.0)]), (up("a"), [(NOW - 1, 0.0), (NOW, STALE_NAN)])],
        metadata=[(1, "up", "Up.", "")],
    ),
    v1_request([(up("b"), [(NOW, 2.0)])], exemplars=1, histograms=1),
]
SEEDS_V2 = [
    v2_request(
        [(ISTIO, [(NOW, 1.0)]), (up("a"), [(NOW - 1, 0.0), (NOW, STALE_NAN)])],
        metadata=(1, "Up.", ""),
    ),
    v2_request([(up("b"), [(NOW, 2.0)])], exemplars=1, histograms=1),
]


def mutations(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def mutate(draw) -> bytes:
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(1, 6))):
            kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
            at = draw(st.integers(0, max(0, len(data) - 1)))
            if kind == "flip" and data:
                data[at] ^= 1 << draw(st.integers(0, 7))
            elif kind == "set" and data:
                data[at] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x12]))
            elif kind == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=4))
            elif kind == "delete":
                del data[at : at + draw(st.integers(1, 4))]
            else:
                del data[at:]
        return bytes(data)

    return mutate()


def decodes_or_rejects(body: bytes, content_type: str) -> None:
    try:
        batch = decode(body, compressed=True, content_type=content_type)
    except DecodeError:
        return
    assert len(batch.values) == len(batch.timestamps_ms) == len(batch.sample_series)
    assert (batch.sample_series < len(batch.series_labels)).all()


@FUZZ
@given(body=st.binary(max_size=300), content_type=st.sampled_from([V1, V2]))
def test_fuzz_random_bodies(body, content_type):
    decodes_or_rejects(body, content_type)
    decodes_or_rejects(snappy_block.compress(body), content_type)


@FUZZ
@given(raw=mutations(SEEDS_V1))
def test_fuzz_mutated_v1_requests_agree_with_the_protobuf_runtime(raw):
    fast, reference = decode_both_ways(raw, V1)
    assert fast == reference


@FUZZ
@given(raw=mutations(SEEDS_V2))
def test_fuzz_mutated_v2_requests_agree_with_the_protobuf_runtime(raw):
    fast, reference = decode_both_ways(raw, V2)
    assert fast == reference


@settings(max_examples=100, deadline=None)
@given(
    content_type=st.one_of(st.none(), st.text(max_size=60)),
    encoding=st.one_of(st.none(), st.text(max_size=10)),
)
def test_fuzz_headers(content_type, encoding):
    try:
        assert remote_write_protocol(content_type, encoding) in (1, 2)
    except UnsupportedMediaType as exc:
        assert str(exc)


@pytest.mark.parametrize(("build", "content_type"), [(v1_request, V1), (v2_request, V2)])
@pytest.mark.parametrize("series_reader", ["vectorized", "protobuf"])
def test_exemplars_are_read_for_their_series(build, content_type, series_reader):
    many = [([("__name__", "up"), ("job", f"j{i}")], [(NOW, 1.0)]) for i in range(20)]
    batch = decode(build(many, exemplars=1), content_type=content_type, series_reader=series_reader)
    assert batch.exemplars_received == 20 and len(batch.exemplars) == 20
    labels = {"trace_id": "abc"} if build is v1_request else {"a": "b"}
    for exemplar in batch.exemplars:
        assert dict(exemplar.labels) == labels
        assert (exemplar.timestamp_ms, exemplar.value) == (NOW, 1.0)
    jobs = sorted(dict(batch.series_labels[e.series])["job"] for e in batch.exemplars)
    assert jobs == sorted(f"j{i}" for i in range(20))


def test_invalid_exemplars_are_rejected_without_their_series():
    request = pb1.WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name="__name__", value="up")
    ts.samples.add(timestamp=NOW, value=1.0)
    ts.exemplars.add(value=1.0, timestamp=NOW).labels.add(name="trace_id", value="x" * 200)
    ts.exemplars.add(value=2.0, timestamp=0).labels.add(name="trace_id", value="ab")
    ts.exemplars.add(value=3.0, timestamp=NOW + 1).labels.add(name="0bad", value="ab")
    batch = decode(request.SerializeToString())
    assert batch.exemplars == [] and len(batch.values) == 1
    reasons = {r.reason: r.samples for r in batch.rejected}
    assert reasons == {
        "exemplar_labels_too_long": 0,
        "exemplar_missing_timestamp": 0,
        "exemplar_invalid_label": 0,
    }
