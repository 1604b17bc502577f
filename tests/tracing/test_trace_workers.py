"""Trace batches are drained by real Celery workers; a killed worker's batch is redelivered and
stored once; retention drops old spans."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from backend.pipeline.drain import org_drain
from backend.pipeline.retention import retention_apply
from backend.tenancy.services import limits_update, org_create, token_create, user_get_or_create
from backend.tracing import storage
from backend.tracing.selectors import span_count
from tests.helpers.credentials import bearer
from tests.workers import kill_a_worker_mid_drain

N_REQUESTS, SPANS = 4, 50


@pytest.fixture
def org(transactional_db):
    org = org_create(slug="acme", name="Acme", owner=user_get_or_create(username="ops"))
    yield org
    with connection.cursor() as cur:  # raw tables are not flushed between transactional tests
        cur.execute("DELETE FROM trace_batches WHERE org_id = %s", [org.pk])
        for table in ("trace_spans", "trace_blocks", "trace_span_keys", "trace_span_horizon"):
            cur.execute(f"DELETE FROM {table} WHERE org_id = %s", [org.pk])


def _pending(org) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM trace_batches WHERE org_id = %s", [org.pk])
        return cur.fetchone()[0]


def _push(client, org):
    _, token = token_create(org=org, name="w", scopes=["traces:write"])
    now = time.time_ns()
    for r in range(N_REQUESTS):
        spans = [
            Span(
                trace_id=(r + 1).to_bytes(16, "big"),
                span_id=(i + 1).to_bytes(8, "big"),
                name="op",
                kind=2,
                start_time_unix_nano=now - i,
                end_time_unix_nano=now + 1000,
            )
            for i in range(SPANS)
        ]
        body = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(resource=Resource(), scope_spans=[ScopeSpans(spans=spans)])
            ]
        ).SerializeToString()
        response = client.post(
            "/v1/traces", body, content_type="application/x-protobuf", **bearer(token)
        )
        assert response.status_code == 200


def test_a_killed_worker_batch_is_redelivered_and_stored_once(client, org, tmp_path):
    _push(client, org)
    log = tmp_path / "worker.log"
    kill_a_worker_mid_drain(
        table="trace_blocks",  # the drain writes blocks
        pending=lambda: _pending(org),
        stored=lambda: span_count(org_id=org.pk),
        batches=N_REQUESTS,
        log_path=log,
    )
    assert span_count(org_id=org.pk) == N_REQUESTS * SPANS
    assert "pipeline.tasks.drain_org" in log.read_text()


def test_retention_drops_old_spans_and_trims_shorter_retention(client, org):
    other = org_create(slug="globex", name="Globex", owner=user_get_or_create(username="o"))
    day = 24 * 3600 * 10**9
    now = time.time_ns()

    class S:  # the attributes storage needs
        def __init__(self, org_offset, start):
            self.trace_id, self.span_id = (
                (start % 10**9 + org_offset).to_bytes(16, "big"),
                b"\1" * 8,
            )
            self.parent_span_id, self.service, self.name, self.kind = None, "svc", "op", 2
            self.start_ns, self.duration_ns, self.status_code, self.status_message = start, 1, 0, ""
            self.attributes, self.events, self.links, self.resource = {}, [], [], {}
            self.scope_name = self.scope_version = self.trace_state = ""
            self.flags = 0

    for target in (org, other):
        storage.batch_append(org_id=target.pk, spans=[S(1, now - 20 * day), S(2, now - 5 * day)])
        org_drain(signal="traces", org_id=target.pk)
    limits_update(org=other, changes={"traces_retention_days": 3})
    result = retention_apply(signal="traces", now_ms=now // 10**6)
    assert any(n.startswith("trace_blocks_") for n in result["dropped_partitions"])
    assert span_count(org_id=org.pk) == 1  # 14 days by default: the 20-day-old span went
    assert span_count(org_id=other.pk) == 0  # 3 days: both went
