"""The accept services on their own: what a request becomes (stored, in part, or refused as a
whole) as typed results, before any protocol renders it."""

from __future__ import annotations

import time
from functools import partial

import grpc
import pytest
from django.db import DatabaseError
from django_redis import get_redis_connection
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from redis.exceptions import RedisError

from backend.tenancy.rejections import rejections_get
from backend.tenancy.services import limits_update
from bench import istio_payloads as ip
from ingest.accept import metrics as metrics_accept_module
from ingest.accept import traces as traces_accept_module
from ingest.accept.metrics import MetricsAccepted, metrics_accept
from ingest.accept.payload import Payload
from ingest.accept.refusals import Refusal, Refused
from ingest.accept.traces import TraceFormat, TracesAccepted, traces_accept
from ingest.grpc.otlp_traces import GRPC_STATUS
from ingest.http.transport import HTTP_STATUS, refused_response

pytestmark = pytest.mark.django_db


def remote_write(*label_sets: list[tuple[str, str]], t: int | None = None) -> Payload:
    t = t or int(time.time() * 1000)
    body = ip.compress(ip.encode_write_request(label_sets, [t], [[1.0]] * len(label_sets)))
    return Payload(read=lambda cap: body, content_type="application/x-protobuf")


def accept_metrics(org, payload: Payload):
    return metrics_accept(org_id=org.pk, payload=payload, remote_write_version=None)


def otlp(n_spans: int) -> Payload:
    start = time.time_ns() - 10**9
    spans = [
        Span(
            trace_id=bytes(range(16)),
            span_id=(i + 1).to_bytes(8, "big"),
            name="GET /",
            start_time_unix_nano=start,
            end_time_unix_nano=start + 1000,
        )
        for i in range(n_spans)
    ]
    body = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=Resource(), scope_spans=[ScopeSpans(spans=spans)])]
    ).SerializeToString()
    return Payload(read=lambda cap: body, content_type="application/x-protobuf")


def test_every_refusal_has_an_http_and_a_grpc_status():
    assert set(HTTP_STATUS) == set(Refusal) == set(GRPC_STATUS)


def test_metrics_accepted_in_full(tenants):
    outcome = accept_metrics(tenants.org, remote_write([("__name__", "up")]))
    assert outcome == MetricsAccepted(samples=1, written=1, rejected=[])


@pytest.mark.parametrize(
    ("payload", "refusal", "counter"),
    [
        (Payload(read=lambda cap: b"\x00garbage"), Refusal.INVALID, "http_400"),
        (
            Payload(read=lambda cap: b"", content_type="text/plain"),
            Refusal.UNSUPPORTED_MEDIA_TYPE,
            "http_415",
        ),
        (Payload(read=lambda cap: ip._varint(1 << 30)), Refusal.PAYLOAD_TOO_LARGE, "http_413"),
    ],
)
def test_metrics_bad_bodies_are_refused_and_counted(tenants, payload, refusal, counter):
    outcome = accept_metrics(tenants.org, payload)
    assert isinstance(outcome, Refused)
    assert outcome.refusal is refusal
    assert outcome.retry_after is None
    assert rejections_get(org_id=tenants.org.pk)["metrics"] == {counter: 1}


def test_metrics_rate_limit_is_a_refusal_with_retry_after(tenants):
    limits_update(org=tenants.org, changes={"ingestion_rate": 1, "ingestion_burst_size": 1})
    assert isinstance(
        accept_metrics(tenants.org, remote_write([("__name__", "a")])), MetricsAccepted
    )
    outcome = accept_metrics(tenants.org, remote_write([("__name__", "b")]))
    assert isinstance(outcome, Refused)
    assert outcome.refusal is Refusal.RATE_LIMITED
    assert outcome.retry_after >= 1
    assert "ingestion rate limit (1 samples/s)" in outcome.message


def test_series_limits_are_typed_partial_rejections(tenants):
    limits_update(
        org=tenants.org,
        changes={"max_global_series_per_user": 3, "max_global_series_per_metric": 2},
    )
    outcome = accept_metrics(
        tenants.org,
        remote_write(
            [("__name__", "up"), ("job", "a")],
            [("__name__", "up"), ("job", "b")],
            [("__name__", "up"), ("job", "c")],  # over the metric's limit
            [("__name__", "other")],
            [("__name__", "third")],  # over the org's limit
        ),
    )
    assert isinstance(outcome, MetricsAccepted)
    assert (outcome.samples, outcome.written) == (5, 3)
    assert [(r.reason, r.samples) for r in outcome.rejected] == [
        ("per_user_series_limit", 1),
        ("per_metric_series_limit", 1),
    ]
    assert outcome.rejected[0].message == (
        "per user series limit of 3 exceeded: 1 new series refused; existing series keep flowing"
    )


def test_metrics_storage_down_is_a_retryable_refusal(tenants, monkeypatch):
    def down(**kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(metrics_accept_module, "samples_write", down)
    outcome = accept_metrics(tenants.org, remote_write([("__name__", "up")]))
    assert outcome.refusal is Refusal.STORAGE_UNAVAILABLE
    assert outcome.message == "storage temporarily unavailable: DatabaseError"
    assert outcome.retry_after == 5
    assert isinstance(outcome.cause, DatabaseError)
    response = refused_response(outcome)
    assert (response.status_code, response["Retry-After"]) == (503, "5")


def test_traces_accepted(tenants):
    outcome = traces_accept(org_id=tenants.org.pk, trace_format=TraceFormat.OTLP, payload=otlp(2))
    assert outcome == TracesAccepted(stored=2, rejected=[])


def test_traces_over_the_per_trace_cap_are_rejected_in_part(tenants):
    limits_update(org=tenants.org, changes={"max_spans_per_trace": 3})
    outcome = traces_accept(org_id=tenants.org.pk, trace_format=TraceFormat.OTLP, payload=otlp(5))
    assert isinstance(outcome, TracesAccepted)
    assert outcome.stored == 3
    assert [(r.reason, r.spans) for r in outcome.rejected] == [("max_spans_per_trace", 2)]


def test_the_per_trace_cap_counts_across_requests_per_day(tenants):
    limits_update(org=tenants.org, changes={"max_spans_per_trace": 3})
    accept = partial(traces_accept, org_id=tenants.org.pk, trace_format=TraceFormat.OTLP)
    assert accept(payload=otlp(2)).stored == 2
    second = accept(payload=otlp(2))  # the same trace: one more span fits
    assert (second.stored, second.rejected_spans) == (1, 1)
    assert accept(payload=otlp(1)).rejected_spans == 1
    # one hash of counts per org and day, which outlives the day (a trace across midnight)
    day = time.time_ns() // 86_400_000_000_000
    key = traces_accept_module.trace_counts_key(tenants.org.pk, day)
    redis = get_redis_connection("default")
    assert redis.hgetall(key) == {bytes(range(16)): b"3"}
    assert 24 * 3600 < redis.ttl(key) <= traces_accept_module.TRACE_COUNTS_TTL_S
    other = traces_accept(
        org_id=tenants.other_org.pk, trace_format=TraceFormat.OTLP, payload=otlp(3)
    )
    assert other.stored == 3  # another org's counts are its own


def test_traces_refusals(tenants):
    def accept(payload, trace_format=TraceFormat.OTLP):
        return traces_accept(org_id=tenants.org.pk, trace_format=trace_format, payload=payload)

    garbage = Payload(read=lambda cap: b"\xff\xff", content_type="application/x-protobuf")
    assert accept(garbage).refusal is Refusal.INVALID
    zipkin_text = Payload(read=lambda cap: b"[]", content_type="text/plain")
    assert accept(zipkin_text, TraceFormat.ZIPKIN).refusal is Refusal.UNSUPPORTED_MEDIA_TYPE

    limits_update(org=tenants.org, changes={"max_request_bytes": 10})
    seen = []
    accept(Payload(read=lambda cap: seen.append(cap) or b"", max_bytes=4))
    accept(Payload(read=lambda cap: seen.append(cap) or b"", max_bytes=400))
    assert seen == [4, 10]  # the protocol's cap where it is below the org's

    limits_update(org=tenants.org, changes={"max_request_bytes": 10_000_000})
    limits_update(
        org=tenants.org, changes={"traces_ingestion_rate": 1, "traces_ingestion_burst_size": 2}
    )
    assert isinstance(accept(otlp(2), TraceFormat.OTLP_PROTOBUF), TracesAccepted)
    limited = accept(otlp(2), TraceFormat.OTLP_PROTOBUF)
    assert limited.refusal is Refusal.RATE_LIMITED
    assert limited.retry_after >= 1


def test_traces_storage_down_is_a_retryable_refusal(tenants, monkeypatch):
    def down(**kwargs):
        raise RedisError("gone")

    monkeypatch.setattr(traces_accept_module, "spans_write", down)
    unavailable = traces_accept(
        org_id=tenants.org.pk, trace_format=TraceFormat.OTLP_PROTOBUF, payload=otlp(1)
    )
    assert unavailable.refusal is Refusal.STORAGE_UNAVAILABLE
    assert str(unavailable.cause) == "gone"
    assert GRPC_STATUS[unavailable.refusal] is grpc.StatusCode.UNAVAILABLE
