"""Jaeger's v3 API answers in OTLP JSON: our own OTLP decoder reads it back unchanged."""

import json
from datetime import UTC, datetime

import pytest

from ingest.decoders.otlp_traces import decode_otlp_traces
from ingest.decoders.spans import SpanLimits
from tests.helpers.otlp import TRACE
from tests.helpers.trace_queries import NOW, get

pytestmark = pytest.mark.django_db


def rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat().replace("+00:00", "Z")


def test_services_and_operations(api, traces):
    assert get(api, "/jaeger/api/v3/services", traces)[1] == {"services": ["checkout"]}
    _, ops = get(api, "/jaeger/api/v3/operations", traces, service="checkout")
    assert {o["name"] for o in ops["operations"]} == {"GET /cart", "SELECT"}


def test_traces_round_trip_through_otlp_json(api, traces):
    status, body = get(
        api,
        "/jaeger/api/v3/traces",
        traces,
        **{
            "query.service_name": "checkout",
            "query.start_time_min": rfc3339(NOW - 10**9),
            "query.start_time_max": rfc3339(NOW + 10**9),
            "query.attributes.db.system": "postgresql",
        },
    )
    assert status == 200
    batch = decode_otlp_traces(
        json.dumps(body["result"]).encode(),
        content_type="application/json",
        content_encoding=None,
        max_size=10**7,
        limits=SpanLimits(),
    )
    assert not batch.rejected
    by_name = {s.name: s for s in batch.spans}
    assert set(by_name) == {"GET /cart", "SELECT"}
    assert by_name["SELECT"].parent_span_id == by_name["GET /cart"].span_id
    assert by_name["GET /cart"].attributes == {"http.status_code": 200}
    assert by_name["SELECT"].status_code == 2
    assert by_name["GET /cart"].service == "checkout"
    assert by_name["GET /cart"].start_ns == NOW
    by_id = get(api, f"/jaeger/api/v3/traces/{TRACE.hex()}", traces)[1]
    assert (
        by_id["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == TRACE.hex()
    )


def test_bad_and_foreign_requests(api, traces, tenants):
    assert get(api, "/jaeger/api/v3/traces", traces, **{"query.service_name": "x"})[0] == 400
    outsider = tenants.outsider_token(["traces:read"])
    _, body = get(
        api,
        "/jaeger/api/v3/traces",
        outsider,
        **{
            "query.service_name": "checkout",
            "query.start_time_min": rfc3339(NOW - 10**9),
            "query.start_time_max": rfc3339(NOW + 10**9),
        },
    )
    assert body == {"result": {"resourceSpans": []}}
    assert get(api, "/jaeger/api/v3/services", outsider)[1] == {"services": ["globex-billing"]}
