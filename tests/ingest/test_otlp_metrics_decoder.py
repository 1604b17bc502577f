"""The OTLP metrics decoder: Prometheus's translation of names, labels and types, refusals per
metric, JSON like protobuf, and no exception but DecodeError on damaged bodies."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import math
import time

import numpy as np
import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m

from ingest.decoders.errors import DecodeError, PayloadTooLarge, UnsupportedMediaType
from ingest.decoders.otlp_metrics import (
    decode_otlp_metrics,
    metric_name,
    normalize_label,
)
from ingest.decoders.remote_write import LabelLimits
from tests.helpers.mutations import mutated
from tests.helpers.otlp import kv
from tests.helpers.otlp_metrics import (
    DELTA,
    counter,
    exemplar,
    gauge,
    histogram,
    metrics_request,
)

PROTOBUF = "application/x-protobuf"
STALE_BITS = 0x7FF0000000000002


DEFAULT_LIMITS = LabelLimits()


def decode(
    request,
    *,
    content_type=PROTOBUF,
    encoding=None,
    body=None,
    limits=DEFAULT_LIMITS,
    promote_scope_metadata=False,
):
    return decode_otlp_metrics(
        body if body is not None else request.SerializeToString(),
        content_type=content_type,
        content_encoding=encoding,
        max_size=1 << 20,
        limits=limits,
        now_ms=int(time.time() * 1000),
        max_age_ms=3_600_000,
        promote_scope_metadata=promote_scope_metadata,
    )


def series_by_name(decoded):
    batch = decoded.batch
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for i, series in enumerate(batch.sample_series.tolist()):
        labels = dict(batch.series_labels[series])
        out.setdefault(labels["__name__"], []).append((labels, batch.values[i]))
    return out


@pytest.mark.parametrize(
    ("name", "unit", "kind", "monotonic", "expected"),
    [
        ("http.server.duration", "ms", "histogram", False, "http_server_duration_milliseconds"),
        ("http.server.requests", "{request}", "sum", True, "http_server_requests_total"),
        ("requests_total", "", "sum", True, "requests_total"),
        ("system.network.io", "By", "sum", True, "system_network_io_bytes_total"),
        ("throughput", "By/s", "gauge", False, "throughput_bytes_per_second"),
        ("cpu.utilization", "1", "gauge", False, "cpu_utilization_ratio"),
        ("queue.size", "1", "sum", False, "queue_size"),
        ("latency_seconds", "s", "histogram", False, "latency_seconds"),
        ("2xx.count", "", "sum", True, "_2xx_count_total"),
        ("temp", "Cel", "gauge", False, "temp_celsius"),
        ("weird__name..x", "", "gauge", False, "weird_name_x"),
    ],
)
def test_metric_names_follow_prometheus(name, unit, kind, monotonic, expected):
    assert metric_name(name, unit, kind=kind, monotonic=monotonic) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("http.route", "http_route"),
        ("k8s.pod-name", "k8s_pod_name"),
        ("0day", "key_0day"),
        ("_private", "key_private"),
        ("__meta", "__meta"),
        ("ok_name", "ok_name"),
    ],
)
def test_attribute_keys_become_label_names(key, expected):
    assert normalize_label(key) == expected


def test_counter_gauge_and_job_instance_from_the_resource():
    request = metrics_request(
        [
            counter("http.requests", 7.0, attrs={"http.route": "/cart", "http_route": "x"}),
            gauge("queue.depth", 3, unit="{item}", attrs={"queue": "emails"}),
        ],
        resource={
            "service.name": "cart",
            "service.namespace": "shop",
            "service.instance.id": "cart-1",
        },
    )
    decoded = decode(request)
    found = series_by_name(decoded)
    ((labels, value),) = found["http_requests_total"]
    # colliding label names join their values with ";" in key order (http.route < http_route)
    assert labels == {
        "__name__": "http_requests_total",
        "http_route": "/cart;x",
        "job": "shop/cart",
        "instance": "cart-1",
    }
    assert value == 7.0
    ((labels, value),) = found["queue_depth"]
    assert labels["queue"] == "emails" and value == 3.0
    # no target_info: the resource has only identifying attributes
    assert "target_info" not in found
    assert decoded.data_points == 2 and decoded.rejected_data_points == 0
    kinds = {name: kind for name, kind, _, _ in decoded.batch.metadata}
    assert kinds == {"http_requests_total": "counter", "queue_depth": "gauge"}


def test_target_info_carries_the_other_resource_attributes():
    request = metrics_request(
        [gauge("up", 1)],
        resource={"service.name": "cart", "k8s.pod.name": "cart-7d", "replicas": 3},
    )
    ((labels, value),) = series_by_name(decode(request))["target_info"]
    assert labels == {
        "__name__": "target_info",
        "job": "cart",
        "k8s_pod_name": "cart-7d",
        "replicas": "3",
    }
    assert value == 1.0


def _scoped_request(*scopes, resource):
    """One resource with one ScopeMetrics per (scope, schema URL, metrics)."""
    request = metrics_request([], resource=resource)
    (resource_metrics,) = request.resource_metrics
    del resource_metrics.scope_metrics[:]
    for scope, schema_url, metrics in scopes:
        resource_metrics.scope_metrics.append(
            m.ScopeMetrics(scope=scope, schema_url=schema_url, metrics=metrics)
        )
    return request


def test_scope_metadata_labels_every_series_of_the_scope_when_promoted():
    library = InstrumentationScope(
        name="io.opentelemetry.http",
        version="1.2.0",
        attributes=[kv("library.tier", "core"), kv("shard", 3), kv("name", "not-the-name")],
    )
    unversioned = InstrumentationScope(name="cache")
    request = _scoped_request(
        (
            library,
            "https://opentelemetry.io/schemas/1.21.0",
            [
                counter("http.requests", 1.0, attrs={"otel_scope_name": "from-the-point"}),
                histogram("http.duration", [10.0], [1, 1], 30.0, unit="ms"),
            ],
        ),
        # no version, no schema URL: empty values are no labels (and remove a point's own)
        (unversioned, "", [gauge("cache.size", 5, attrs={"otel_scope_version": "9"})]),
        # a scope without a name adds nothing
        (InstrumentationScope(version="7"), "", [gauge("anonymous", 1)]),
        resource={"service.name": "cart", "service.instance.id": "cart-1", "zone": "a"},
    )
    target = {"job": "cart", "instance": "cart-1"}
    scope_labels = {
        "otel_scope_name": "io.opentelemetry.http",  # wins over the point's attribute
        "otel_scope_version": "1.2.0",
        "otel_scope_schema_url": "https://opentelemetry.io/schemas/1.21.0",
        "otel_scope_library_tier": "core",  # attributes sanitised like any label
        "otel_scope_shard": "3",
    }
    found = series_by_name(decode(request, promote_scope_metadata=True))
    ((labels, _),) = found["http_requests_total"]
    assert labels == {"__name__": "http_requests_total", **scope_labels, **target}
    for name in ("http_duration_milliseconds_bucket", "http_duration_milliseconds_count"):
        assert all(
            {k: v for k, v in labels.items() if k.startswith("otel_scope_")} == scope_labels
            for labels, _ in found[name]
        )
    ((labels, _),) = found["cache_size"]
    assert labels == {"__name__": "cache_size", "otel_scope_name": "cache", **target}
    ((labels, _),) = found["anonymous"]
    assert labels == {"__name__": "anonymous", **target}
    # target_info describes the resource, not a scope
    ((labels, _),) = found["target_info"]
    assert labels == {"__name__": "target_info", "zone": "a", **target}

    # off (the default, as in Prometheus): the scope labels nothing, a point's own attribute stays
    found = series_by_name(decode(request))
    ((labels, _),) = found["http_requests_total"]
    own = {"otel_scope_name": "from-the-point"}
    assert labels == {"__name__": "http_requests_total", **own, **target}
    ((labels, _),) = found["cache_size"]
    assert labels == {"__name__": "cache_size", "otel_scope_version": "9", **target}


def test_job_and_instance_win_over_scope_attributes_of_the_same_name():
    scope = InstrumentationScope(name="lib", attributes=[kv("a", "1"), kv("a", "2")])
    request = _scoped_request(
        (scope, "", [gauge("up", 1, attrs={"otel_scope_a": "0"})]),
        resource={"service.name": "cart"},
    )
    ((labels, _),) = series_by_name(decode(request, promote_scope_metadata=True))["up"]
    # of two scope attributes of the same name the later wins, as labels.Builder.Set does
    scope_labels = {"otel_scope_a": "2", "otel_scope_name": "lib"}
    assert labels == {"__name__": "up", **scope_labels, "job": "cart"}


def test_histogram_becomes_cumulative_buckets_sum_and_count():
    request = metrics_request(
        [histogram("rpc.duration", [5.0, 10.0, 0.25], [1, 2, 3, 4], 123.5, unit="ms")]
    )
    found = series_by_name(decode(request))
    buckets = {labels["le"]: value for labels, value in found["rpc_duration_milliseconds_bucket"]}
    assert buckets == {"5": 1.0, "10": 3.0, "0.25": 6.0, "+Inf": 10.0}
    assert found["rpc_duration_milliseconds_sum"][0][1] == 123.5
    assert found["rpc_duration_milliseconds_count"][0][1] == 10.0


def test_summary_quantiles():
    point = m.SummaryDataPoint(
        time_unix_nano=time.time_ns(),
        count=4,
        sum=2.5,
        quantile_values=[
            m.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=0.4),
            m.SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=1.2),
        ],
    )
    summary = m.Metric(name="gc.pause", unit="s", summary=m.Summary(data_points=[point]))
    request = metrics_request([summary])
    found = series_by_name(decode(request))
    quantiles = {labels["quantile"]: value for labels, value in found["gc_pause_seconds"]}
    assert quantiles == {"0.5": 0.4, "0.99": 1.2}
    assert found["gc_pause_seconds_count"][0][1] == 4.0


def test_no_recorded_value_is_a_stale_marker():
    request = metrics_request([gauge("up", 1, flags=1)])
    ((_, value),) = series_by_name(decode(request))["up"]
    assert np.float64(value).view(np.uint64) == STALE_BITS


def test_delta_and_exponential_histograms_are_refused_per_metric():
    exp = m.Metric(
        name="latency",
        exponential_histogram=m.ExponentialHistogram(
            data_points=[m.ExponentialHistogramDataPoint(time_unix_nano=time.time_ns(), count=1)],
            aggregation_temporality=2,
        ),
    )
    request = metrics_request([counter("jobs", 1.0, temporality=DELTA), exp, gauge("up", 1)])
    decoded = decode(request)
    assert set(series_by_name(decoded)) == {"up"}
    assert decoded.data_points == 3 and decoded.rejected_data_points == 2
    reasons = {r.reason: r for r in decoded.batch.rejected}
    assert "delta" in reasons["invalid_temporality"].message
    assert reasons["exponential_histograms_not_supported"].samples == 1


def test_invalid_labels_and_old_samples_are_rejected_like_remote_write():
    long_value = "x" * 50
    request = metrics_request(
        [
            gauge("ok", 1),
            gauge("too.long", 1, attrs={"a": long_value}),
            gauge("old", 1, ts=(time.time_ns() - 7_200 * 10**9)),
        ]
    )
    decoded = decode(
        request,
        limits=LabelLimits(max_label_value_length=20),
    )
    assert set(series_by_name(decoded)) == {"ok"}
    reasons = {r.reason for r in decoded.batch.rejected}
    assert reasons == {"label_value_too_long", "too_old"}


def test_exemplars_carry_trace_and_span_ids_to_their_bucket():
    request = metrics_request(
        [
            histogram("rpc.duration", [10.0, 100.0], [1, 1, 0], 60.0, exemplars=[exemplar(55.0)]),
            counter("calls", 2.0, exemplars=[exemplar(1.0, span_id="00f067aa0ba902b7")]),
        ]
    )
    decoded = decode(request)
    assert len(decoded.exemplars) == 2
    bucket, call = decoded.exemplars
    assert dict(decoded.batch.series_labels[bucket.series])["le"] == "100"
    assert dict(bucket.labels) == {
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "b7ad6b7169203331",
    }
    assert bucket.value == 55.0
    assert dict(decoded.batch.series_labels[call.series])["__name__"] == "calls_total"


def test_json_and_gzip_decode_like_protobuf():
    request = metrics_request(
        [
            histogram("rpc.duration", [10.0], [1, 1], 12.0, exemplars=[exemplar(3.0)]),
            counter("calls", 2.0, attrs={"code": "200"}),
        ],
        resource={"service.name": "cart", "zone": "eu"},
    )
    document = json_format.MessageToDict(request)
    # OTLP JSON writes ids as hex, not base64
    ex = document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["histogram"]["dataPoints"][
        0
    ]["exemplars"][0]
    for key in ("traceId", "spanId"):
        ex[key] = base64.b64decode(ex[key]).hex()
    document["unknownField"] = {"ignored": True}
    from_json = decode(None, content_type="application/json", body=json.dumps(document).encode())
    from_pb = decode(None, encoding="gzip", body=gzip.compress(request.SerializeToString()))
    a, b = from_json.batch, from_pb.batch
    assert a.series_labels == b.series_labels
    assert np.array_equal(a.values, b.values)
    assert np.array_equal(a.timestamps_ms, b.timestamps_ms)
    assert [e.labels for e in from_json.exemplars] == [e.labels for e in from_pb.exemplars]


def test_whole_request_errors():
    with pytest.raises(UnsupportedMediaType):
        decode(None, content_type="text/plain", body=b"")
    with pytest.raises(UnsupportedMediaType):
        decode(None, encoding="br", body=b"")
    with pytest.raises(PayloadTooLarge):
        decode_otlp_metrics(
            b"x" * 100,
            content_type=PROTOBUF,
            content_encoding=None,
            max_size=10,
            limits=LabelLimits(),
            now_ms=0,
            max_age_ms=None,
        )
    with pytest.raises(DecodeError):
        decode(None, body=b"\xff\xff\xff")
    with pytest.raises(DecodeError):
        decode(None, content_type="application/json", body=b'{"resourceMetrics": 3}')


VALID = metrics_request(
    [
        histogram("rpc.duration", [10.0, 100.0], [1, 1, 0], 60.0, exemplars=[exemplar(55.0)]),
        counter("calls", 2.0, attrs={"code": "200"}),
        gauge("up", 1, attrs={"pod": "a"}),
    ],
    resource={"service.name": "cart", "zone": "eu"},
).SerializeToString()
VALID_JSON = json.dumps(json_format.MessageToDict(metrics_request([gauge("up", 1)]))).encode()


@settings(max_examples=200, deadline=None)
@given(
    body=st.one_of(st.binary(max_size=300), mutated(VALID)),
    content_type=st.just(PROTOBUF),
)
def test_damaged_protobuf_bodies_raise_only_decode_errors(body, content_type):
    try:
        decoded = decode(None, content_type=content_type, body=body)
    except DecodeError:
        return
    assert len(decoded.batch.values) == len(decoded.batch.sample_series)
    assert all(math.isfinite(e.timestamp_ms) for e in decoded.exemplars)


@settings(max_examples=150, deadline=None)
@given(body=st.one_of(st.binary(max_size=200), mutated(VALID_JSON)))
def test_damaged_json_bodies_raise_only_decode_errors(body):
    with contextlib.suppress(DecodeError):
        decode(None, content_type="application/json", body=body)
