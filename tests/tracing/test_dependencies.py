"""Dependency rollups equal a brute-force computation over the same spans."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from django.db import connection
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from backend.pipeline.drain import org_drain
from backend.tracing import dependencies
from backend.tracing.selectors import traces_get
from tests.helpers.credentials import bearer
from tests.helpers.otlp import kv, post_otlp

pytestmark = pytest.mark.django_db
SERVICES = ["gateway", "frontend", "cart", "db-proxy"]
MINUTE_NS = 60 * 10**9


def _random_traces(seed: int, start_ns: int, n_traces: int = 30):
    """Spans per service: random call trees, some errors, some leaf calls to a peer."""
    rng = random.Random(seed)
    by_service: dict[str, list[Span]] = {s: [] for s in SERVICES}
    for t in range(n_traces):
        trace_id = rng.randbytes(16)
        t0 = start_ns + rng.randrange(3 * MINUTE_NS)
        stack = [(None, "gateway")]
        next_id = 1
        while stack and next_id < 12:
            parent_id, service = stack.pop(0)
            span_id = (t * 100 + next_id).to_bytes(8, "big")
            next_id += 1
            attrs = []
            kind = 2
            if service == "db-proxy" and rng.random() < 0.5:
                kind, attrs = 3, [kv("peer.service", "postgres")]  # a leaf client span
            by_service[service].append(
                Span(
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_span_id=parent_id or b"",
                    name=f"op-{service}",
                    kind=kind,
                    start_time_unix_nano=t0 + next_id,
                    end_time_unix_nano=t0 + next_id + 1000,
                    attributes=attrs,
                    status=Status(code=2 if rng.random() < 0.2 else 0),
                )
            )
            for callee in rng.sample(SERVICES, k=rng.randrange(0, 3)):
                stack.append((span_id, callee))
    return by_service


def _brute_force(spans):
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    has_child = {(s.trace_id, s.parent_span_id) for s in spans if s.parent_span_id}
    edges = Counter()
    for s in spans:
        parent = by_id.get((s.trace_id, s.parent_span_id)) if s.parent_span_id else None
        if parent and parent.service != s.service:
            edges[(parent.service, s.service)] += 1
        peer = s.attributes.get("peer.service")
        if s.kind == 3 and peer and peer != s.service and (s.trace_id, s.span_id) not in has_child:
            edges[(s.service, peer)] += 1
    return edges


def test_rollup_equals_brute_force_and_is_isolated(client, tenants, api):
    start = (time.time_ns() - 20 * MINUTE_NS) // MINUTE_NS * MINUTE_NS
    for org_token, seed in (
        (tenants.token(["traces:write"]), 1),
        (tenants.outsider_token(["traces:write"]), 2),
    ):
        for service, spans in _random_traces(seed, start).items():
            request = ExportTraceServiceRequest(
                resource_spans=[
                    ResourceSpans(
                        resource=Resource(attributes=[kv("service.name", service)]),
                        scope_spans=[ScopeSpans(spans=spans)],
                    )
                ]
            )
            assert post_otlp(client, request.SerializeToString(), org_token).status_code == 200
    org_drain(signal="traces", org_id=tenants.org.pk)
    org_drain(signal="traces", org_id=tenants.other_org.pk)

    now_ms = start // 10**6 + 10 * 60_000
    assert dependencies.rollup_due(now_ms=now_ms) > 0
    assert dependencies.rollup_due(now_ms=now_ms) == 0  # nothing left: idempotent

    def expected_for(org):
        with connection.cursor() as cur:
            cur.execute("SELECT DISTINCT trace_id FROM trace_span_keys WHERE org_id = %s", [org.pk])
            trace_ids = [bytes(r[0]) for r in cur.fetchall()]
        found = traces_get(org_id=org.pk, trace_ids=trace_ids)
        return dict(_brute_force([s for spans in found.values() for s in spans]))

    expected = expected_for(tenants.org)
    assert ("db-proxy", "postgres") in expected  # the generator made leaf peer calls too
    got = dependencies.dependencies_get(
        org_id=tenants.org.pk, start_ms=start // 10**6, end_ms=now_ms
    )
    assert {(e["parent"], e["child"]): e["callCount"] for e in got} == expected

    # The Jaeger endpoint reads the same rollups, each org its own.
    for org, token in (
        (tenants.org, tenants.token(["traces:read"])),
        (tenants.other_org, tenants.outsider_token(["traces:read"])),
    ):
        body = api.get(
            "/jaeger/api/dependencies", {"endTs": now_ms, "lookback": 3600_000}, **bearer(token)
        ).json()
        assert {(e["parent"], e["child"]): e["callCount"] for e in body["data"]} == (
            expected_for(org)
        )
    assert expected_for(tenants.other_org) != expected  # different traces, different counts
