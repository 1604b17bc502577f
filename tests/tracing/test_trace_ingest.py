"""OTLP/HTTP and Zipkin v2 receivers: shapes, status codes, idempotency, limits, isolation."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from google.rpc import status_pb2  # noqa: F401  (googleapis-common-protos, via opentelemetry-proto)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from backend.pipeline.drain import org_drain
from backend.tenancy.rejections import rejections_get
from backend.tenancy.services import limits_update
from backend.tracing.selectors import services_list, span_count, trace_get
from tests.helpers.credentials import bearer
from tests.helpers.otlp import ENVOY_ZIPKIN, TRACE, otlp_request, post_otlp, span

pytestmark = pytest.mark.django_db


def stored(org):
    org_drain(signal="traces", org_id=org.pk)
    return trace_get(org_id=org.pk, trace_id=TRACE)


def test_otlp_protobuf_export_is_stored_with_parents_and_attributes(client, tenants):
    token = tenants.token(["traces:write"])
    request = otlp_request(
        [
            span("eee19b7ec3c1b174", **{"http.status_code": 200}),
            span(
                "eee19b7ec3c1b175",
                "eee19b7ec3c1b174",
                name="SELECT",
                status=2,
                **{"db.system": "postgresql"},
            ),
        ]
    )
    response = post_otlp(client, request.SerializeToString(), token)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    root, child = stored(tenants.org)
    assert root.parent_span_id is None and child.parent_span_id == root.span_id
    assert root.service == "checkout" and root.resource["k8s.namespace"] == "shop"
    assert root.attributes == {"http.status_code": 200}
    assert child.name == "SELECT" and child.status_code == 2 and child.duration_ns == 5_000_000
    assert services_list(org_id=tenants.org.pk) == ["checkout"]


def test_otlp_json_answers_json(client, tenants):
    token = tenants.token(["traces:write"])
    now = time.time_ns()
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "frontend"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE.hex(),
                                "spanId": "eee19b7ec3c1b174",
                                "name": "GET /",
                                "kind": 2,
                                "startTimeUnixNano": str(now),
                                "endTimeUnixNano": str(now + 1000),
                                "attributes": [
                                    {"key": "http.method", "value": {"stringValue": "GET"}}
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    response = post_otlp(client, json.dumps(body), token, content_type="application/json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {}
    (only,) = stored(tenants.org)
    assert only.service == "frontend" and only.attributes == {"http.method": "GET"}


def test_gzip_bodies_and_a_gzip_bomb(client, tenants):
    token = tenants.token(["traces:write"])
    body = otlp_request([span("eee19b7ec3c1b174")]).SerializeToString()
    ok = post_otlp(client, gzip.compress(body), token, HTTP_CONTENT_ENCODING="gzip")
    assert ok.status_code == 200
    limits_update(org=tenants.org, changes={"max_request_bytes": 64 * 1024})
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))
    refused = post_otlp(client, bomb, token, HTTP_CONTENT_ENCODING="gzip")
    assert refused.status_code == 413


def test_otlp_errors_carry_a_status_body(client, tenants):
    from google.rpc.status_pb2 import Status as RpcStatus

    token = tenants.token(["traces:write"])
    bad = post_otlp(client, b"\xff\xff\xff", token)
    assert bad.status_code == 400
    assert RpcStatus.FromString(bad.content).message
    wrong_type = post_otlp(client, b"{}", token, content_type="text/plain")
    assert wrong_type.status_code == 415
    assert post_otlp(client, b"", "cnp_nope").status_code == 401
    assert post_otlp(client, b"", tenants.token(["metrics:write"])).status_code == 403


def test_invalid_spans_are_partial_success(client, tenants):
    token = tenants.token(["traces:write"])
    old = time.time_ns() - 60 * 24 * 3600 * 10**9  # past the 14-day traces retention
    request = otlp_request(
        [span("eee19b7ec3c1b174"), span("0000000000000000"), span("eee19b7ec3c1b176", start=old)]
    )
    response = post_otlp(client, request.SerializeToString(), token)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2
    assert "invalid_span_id" in partial.error_message
    assert "outside_retention_window" in partial.error_message
    assert len(stored(tenants.org)) == 1
    counted = rejections_get(org_id=tenants.org.pk)["traces"]
    assert counted["invalid_span_id"] == 1 and counted["outside_retention_window"] == 1


def test_a_retried_export_stores_nothing_twice(client, tenants):
    token = tenants.token(["traces:write"])
    body = otlp_request([span("eee19b7ec3c1b174"), span("eee19b7ec3c1b175")]).SerializeToString()
    assert post_otlp(client, body, token).status_code == 200
    org_drain(signal="traces", org_id=tenants.org.pk)
    assert post_otlp(client, body, token).status_code == 200
    assert post_otlp(client, body, token).status_code == 200
    assert len(stored(tenants.org)) == 2


def test_rate_limit_429_with_retry_after(client, tenants):
    limits_update(
        org=tenants.org, changes={"traces_ingestion_rate": 1, "traces_ingestion_burst_size": 2}
    )
    token = tenants.token(["traces:write"])
    body = otlp_request([span("eee19b7ec3c1b174"), span("eee19b7ec3c1b175")]).SerializeToString()
    assert post_otlp(client, body, token).status_code == 200
    limited = post_otlp(client, body, token)
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1


def test_attribute_limits_truncate_and_drop_and_are_counted(client, tenants):
    limits_update(
        org=tenants.org, changes={"max_attributes_per_span": 2, "max_attribute_value_length": 8}
    )
    token = tenants.token(["traces:write"])
    request = otlp_request([span("eee19b7ec3c1b174", a="123456789", b="x", c="y")])
    assert post_otlp(client, request.SerializeToString(), token).status_code == 200
    (only,) = stored(tenants.org)
    assert only.attributes == {"a": "12345678", "b": "x"}
    counted = rejections_get(org_id=tenants.org.pk)["traces"]
    assert counted["attributes_truncated"] == 1 and counted["attributes_dropped"] == 1


def test_max_spans_per_trace(client, tenants):
    limits_update(org=tenants.org, changes={"max_spans_per_trace": 3})
    token = tenants.token(["traces:write"])
    spans = [span(f"eee19b7ec3c1b1{i:02x}") for i in range(5)]
    response = post_otlp(client, otlp_request(spans).SerializeToString(), token)
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2 and "max_spans_per_trace" in partial.error_message
    assert len(stored(tenants.org)) == 3


def _zipkin_body():
    now_us = time.time_ns() // 1000 - 1_000_000
    spans = json.loads(json.dumps(ENVOY_ZIPKIN))
    spans[0]["timestamp"] = now_us
    spans[1]["timestamp"] = now_us + 900
    spans[1]["annotations"][0]["timestamp"] = now_us + 1000
    return json.dumps(spans)


def test_zipkin_json_as_envoy_sends_it(client, tenants):
    token = tenants.token(["traces:write"])
    body = _zipkin_body()
    response = client.post("/api/v2/spans", body, content_type="application/json", **bearer(token))
    assert response.status_code == 202
    client_span, server_span = stored(tenants.org)
    assert client_span.span_id == server_span.span_id  # both sides of the shared span kept
    assert (client_span.kind, server_span.kind) == (3, 2)
    assert client_span.service == "istio-ingressgateway.istio-system"
    assert client_span.attributes["upstream_cluster"].startswith("outbound|9080")
    assert server_span.status_code == 2
    assert server_span.events[0]["name"] == "retry"
    assert client_span.duration_ns == 12_873_000
    # a retry of the same report changes nothing
    client.post("/api/v2/spans", body, content_type="application/json", **bearer(token))
    org_drain(signal="traces", org_id=tenants.org.pk)
    assert span_count(org_id=tenants.org.pk) == 2


def test_zipkin_errors(client, tenants):
    token = tenants.token(["traces:write"])
    bad = client.post("/api/v2/spans", "[{", content_type="application/json", **bearer(token))
    assert bad.status_code == 400 and bad.content.strip()
    assert (
        client.post("/api/v2/spans", "[]", content_type="text/csv", **bearer(token)).status_code
        == 415
    )
    missing_ts = json.dumps(
        [
            {
                "traceId": TRACE.hex(),
                "id": "a4a3a1a0b8c2d1e0",
                "name": "x",
                "localEndpoint": {"serviceName": "a"},
            }
        ]
    )
    partial = client.post(
        "/api/v2/spans", missing_ts, content_type="application/json", **bearer(token)
    )
    assert partial.status_code == 400 and b"missing_timestamp" in partial.content


def test_outsiders_spans_land_in_their_org_only(client, tenants):
    body = otlp_request([span("eee19b7ec3c1b174")]).SerializeToString()
    post_otlp(client, body, tenants.outsider_token(["traces:write"]))
    assert stored(tenants.org) == []
    org_drain(signal="traces", org_id=tenants.other_org.pk)
    assert len(trace_get(org_id=tenants.other_org.pk, trace_id=TRACE)) == 1
    assert services_list(org_id=tenants.org.pk) == []


def test_nul_characters_and_huge_names_are_stored_safely(client, tenants):
    token = tenants.token(["traces:write"])
    request = otlp_request(
        [span("eee19b7ec3c1b174", name="x" * 5000 + "\x00", **{"nul": "a\x00b", "k\x00": "v"})],
        service="svc\x00",
    )
    assert post_otlp(client, request.SerializeToString(), token).status_code == 200
    (only,) = stored(tenants.org)
    assert only.attributes == {"nul": "a\ufffdb", "k\ufffd": "v"}
    assert len(only.name) == 1024 and only.service == "svc\ufffd"
