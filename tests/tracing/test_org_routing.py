"""The joins of the trace query APIs and of the dependency rollup name the org on both sides
(``sv.org_id = s.org_id AND sv.id = s.service_id``), so that a distribution by ``org_id``
routes them to one shard (docs/scaling.md)."""

from __future__ import annotations

import json

from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.tracing import dependencies
from tests.helpers.org_routing import unrouted_joins
from tests.helpers.otlp import TRACE
from tests.helpers.trace_queries import NOW, get

TRACE_TABLES = ("trace_spans", "trace_services", "trace_operations", "trace_resources")


def test_search_and_trace_by_id_join_by_the_org(api, traces):
    window = {"start": str(NOW // 1000 - 10**6), "end": str(NOW // 1000 + 10**7)}
    with CaptureQueriesContext(connection) as ctx:
        _, found = get(
            api,
            "/jaeger/api/traces",
            traces,
            service="checkout",
            operation="SELECT",
            tags=json.dumps({"db.system": "postgresql"}),
            **window,
        )
        _, one = get(api, f"/jaeger/api/traces/{TRACE.hex()}", traces)
        _, ops = get(api, "/jaeger/api/services/checkout/operations", traces)
    joined = [q["sql"] for q in ctx.captured_queries if " JOIN trace_services" in q["sql"]]
    assert len(joined) >= 3  # the search, the spans read, the operations: not vacuous
    assert unrouted_joins(ctx.captured_queries, TRACE_TABLES) == []
    assert [t["traceID"] for t in found["data"]] == [TRACE.hex()]
    assert len(one["data"][0]["spans"]) == 2
    assert ops["data"] == ["GET /cart", "SELECT"]


def test_the_dependency_rollup_joins_by_the_org(traces, tenants):
    with CaptureQueriesContext(connection) as ctx:
        assert dependencies.org_rollup(org_id=tenants.org.pk, now_ms=NOW // 10**6 + 600_000) > 0
    joined = [q["sql"] for q in ctx.captured_queries if "JOIN trace_services" in q["sql"]]
    assert len(joined) == 2  # the spans' metrics and the edges
    assert unrouted_joins(ctx.captured_queries, TRACE_TABLES) == []
