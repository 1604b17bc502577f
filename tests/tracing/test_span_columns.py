"""Spans as columns (what the native OTLP scan hands the receiver, ``SpanColumns``): they are
the same spans as a list of them, they make the very same outbox row, and a request accepted
through them (time window, per-trace cap) stores what the runtime path stores."""

from __future__ import annotations

import time

import numpy as np
import pytest
from django.db import connection, transaction
from django_redis import get_redis_connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.tenancy.services import limits_update
from backend.tracing.spans import SpanColumns
from backend.tracing.storage import outbox
from backend.zstd_contexts import decompressor
from bench.decode_traces import envoy_spans, otlp_request
from bench.traces_ingest import otel_spans
from ingest.accept.payload import Payload
from ingest.accept.traces import TraceFormat, traces_accept
from ingest.decoders import otlp_native
from ingest.decoders.otlp_traces import decode_otlp_protobuf
from tests.ingest.test_trace_decoders import FUZZ, LIMITS, pb_span, random_request, request_of

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(otlp_native.LIB is None, reason="no native scan built (no C compiler)"),
]


def _columns(body: bytes) -> tuple[SpanColumns, object]:
    batch = decode_otlp_protobuf(body, LIMITS, columns=True)
    assert isinstance(batch.spans, SpanColumns)
    return batch.spans, batch.attributes


def _outbox_rows_agree(org_id: int, body: bytes) -> None:
    """The columns and the list of their spans: the same catalog numbers, the same row."""
    columns, entries = _columns(body)
    spans = list(columns)
    assert columns == spans and len(columns) == len(spans)
    with transaction.atomic(), connection.cursor() as cur:
        from_columns = outbox._catalog_numbers(cur, org_id, columns)
        from_spans = outbox._catalog_numbers(cur, org_id, spans)
    assert [np.asarray(c).tolist() for c in from_columns[:3]] == [list(c) for c in from_spans[:3]]
    assert from_columns[3:] == from_spans[3:]
    assert decompressor().decompress(
        outbox._payload(columns, *from_columns[:3], entries)
    ) == decompressor().decompress(outbox._payload(spans, *from_spans[:3], entries))


@pytest.mark.parametrize("make", [envoy_spans, otel_spans])
def test_the_bench_requests_make_the_same_outbox_row(tenants, make):
    for seed in range(2):
        body = otlp_request(make(700, seed=seed, start_us=1_700_000_000_000_000))
        _outbox_rows_agree(tenants.org.pk, body.SerializeToString())


def test_every_field_makes_the_same_outbox_row(tenants):
    spans = [
        pb_span(parent_span_id=b"\x01" * 8, kind=3, trace_state="k=v", flags=0x301),
        pb_span(span_id=b"\x02" * 8, kind=99, name="ü", trace_state="k=v"),
        pb_span(span_id=b"\x03" * 8, name="ü"),
    ]
    spans[0].status.code = 2
    spans[0].status.message = "boom"
    spans[2].status.message = "boom"
    request = request_of(*spans, zone="z")
    second = request.resource_spans.add()
    second.CopyFrom(request.resource_spans[0])
    second.scope_spans[0].scope.name = "lib"
    second.scope_spans[0].scope.version = "1.2"
    third = second.scope_spans.add()  # "lib@1.2" as a name: the same scope text
    third.CopyFrom(second.scope_spans[0])
    third.scope.name, third.scope.version = "lib@1.2", ""
    _outbox_rows_agree(tenants.org.pk, request.SerializeToString())


@settings(FUZZ, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=random_request(), picks=st.lists(st.integers(0, 10**6), max_size=12))
def test_random_requests_make_the_same_outbox_row(tenants, request, picks):
    body = request.SerializeToString()
    batch = decode_otlp_protobuf(body, LIMITS, columns=True)
    if not isinstance(batch.spans, SpanColumns):  # (left to the runtime path)
        return
    _outbox_rows_agree(tenants.org.pk, body)
    columns = batch.spans
    idx = [p % len(columns) for p in picks] if len(columns) else []
    assert columns.take(np.array(idx, dtype=np.int64)) == [columns[i] for i in idx]


def _accepted_rows(org, body: bytes, monkeypatch, *, native: bool) -> tuple[list, bytes]:
    """What ``traces_accept`` made of the body (rejections; the outbox row's content), the
    per-trace counters cleared first."""
    redis = get_redis_connection("default")
    for key in redis.scan_iter(f"canopy:trace-spans:{{{org.pk}}}:*"):
        redis.delete(key)
    with monkeypatch.context() as m:
        if not native:
            m.setattr(otlp_native, "LIB", None)
        outcome = traces_accept(
            org_id=org.pk,
            trace_format=TraceFormat.OTLP,
            payload=Payload(lambda cap: body, "application/x-protobuf"),
        )
    with connection.cursor() as cur:
        cur.execute(
            "DELETE FROM trace_batches WHERE org_id = %s RETURNING n_spans, payload", [org.pk]
        )
        ((n, payload),) = cur.fetchall()
    assert n == outcome.stored
    return [(r.reason, r.spans) for r in outcome.rejected], decompressor().decompress(payload)


def test_the_time_window_and_the_per_trace_cap_keep_the_same_spans(tenants, monkeypatch):
    limits_update(org=tenants.org, changes={"max_spans_per_trace": 3})
    now = time.time_ns()
    spans = [
        pb_span(
            trace_id=bytes([1 + i % 3]) * 16,
            span_id=(i + 1).to_bytes(8, "big"),
            start_time_unix_nano=now - (40 * 86400 * 10**9 if i % 5 == 0 else i * 10**6),
            end_time_unix_nano=now,
            name=f"op{i % 4}",
        )
        for i in range(20)
    ]
    body = request_of(*spans).SerializeToString()
    assert isinstance(_columns(body)[0], SpanColumns)
    scanned = _accepted_rows(tenants.org, body, monkeypatch, native=True)
    runtime = _accepted_rows(tenants.org, body, monkeypatch, native=False)
    assert scanned == runtime
    assert scanned[0] == [("outside_retention_window", 4), ("max_spans_per_trace", 7)]
