"""POST /otlp/v1/metrics (and /v1/metrics): answers in OTLP's terms, limits as remote-write,
idempotent retries and isolation between orgs."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)

from backend.metrics.labels import Matcher
from backend.metrics.selectors import samples_for_series
from backend.metrics.storage.reader import series_match
from backend.pipeline.drain import org_drain
from backend.tenancy.rejections import rejections_get
from backend.tenancy.services import limits_update
from ingest.decoders.proto import rpc_status_pb2
from tests.helpers.credentials import bearer
from tests.helpers.otlp_metrics import counter, gauge, metrics_request, now_ns

pytestmark = pytest.mark.django_db
PROTOBUF = "application/x-protobuf"


def post(client, body, token, *, path="/otlp/v1/metrics", content_type=PROTOBUF, **extra):
    headers = bearer(token) if token else {}
    return client.post(path, body, content_type=content_type, **headers, **extra)


def stored(org, name):
    org_drain(signal="metrics", org_id=org.pk)
    series = series_match(org_id=org.pk, matchers=[Matcher("__name__", "=", name)])
    return series, samples_for_series(org_id=org.pk, series=series, start_ms=0, end_ms=2**62)


def test_stored_under_the_tokens_org_and_retries_store_nothing_twice(client, tenants):
    token = tenants.token(["metrics:write"])
    body = metrics_request([counter("calls", 5.0, ts=now_ns())]).SerializeToString()
    for path in ("/otlp/v1/metrics", "/v1/metrics", "/otlp/v1/metrics"):
        response = post(client, body, token, path=path)
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == PROTOBUF
        assert not ExportMetricsServiceResponse.FromString(response.content).HasField(
            "partial_success"
        )
    _, samples = stored(tenants.org, "calls_total")
    ((ts, values),) = samples.values()
    assert list(values) == [5.0] and len(ts) == 1
    # the other org sees nothing; its own token writes to its own org only
    assert stored(tenants.other_org, "calls_total")[0] == {}
    outsider = tenants.outsider_token()
    assert post(client, body, outsider).status_code == 200
    assert len(stored(tenants.other_org, "calls_total")[0]) == 1
    assert len(stored(tenants.org, "calls_total")[0]) == 1


def test_auth_and_scope(client, tenants):
    body = metrics_request([gauge("up", 1)]).SerializeToString()
    assert post(client, body, None).status_code == 401
    response = post(client, body, tenants.token(["metrics:read"]))
    assert response.status_code == 403
    assert "metrics:write" in rpc_status_pb2.Status.FromString(response.content).message


def test_json_request_gets_a_json_partial_success(client, tenants):
    token = tenants.token(["metrics:write"])
    request = metrics_request([gauge("up", 1), counter("jobs", 1.0, temporality=1)])
    response = post(
        client,
        json.dumps(json_format.MessageToDict(request)),
        token,
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    partial = response.json()["partialSuccess"]
    assert partial["rejectedDataPoints"] == "1"
    assert partial["errorMessage"].startswith("invalid_temporality:")
    assert len(stored(tenants.org, "up")[0]) == 1
    assert rejections_get(org_id=tenants.org.pk)["metrics"]["invalid_temporality"] == 1


def test_refusals_carry_a_status_body(client, tenants):
    token = tenants.token(["metrics:write"])
    response = post(client, b"{}", token, content_type="text/plain")
    assert response.status_code == 415
    assert "application/x-protobuf" in rpc_status_pb2.Status.FromString(response.content).message
    response = post(client, b"\xff\xff\xff", token)
    assert response.status_code == 400
    response = post(client, b"{", token, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == 3
    limits_update(org=tenants.org, changes={"max_request_bytes": 64})
    big = metrics_request([gauge("up", 1, attrs={"pad": "x" * 200})]).SerializeToString()
    assert post(client, big, token).status_code == 413


def test_rate_limit_is_429_with_retry_after(client, tenants):
    limits_update(org=tenants.org, changes={"ingestion_rate": 1, "ingestion_burst_size": 3})
    token = tenants.token(["metrics:write"])
    first = metrics_request([gauge(f"g{i}", i) for i in range(3)]).SerializeToString()
    assert post(client, first, token).status_code == 200
    second = metrics_request([gauge(f"h{i}", i) for i in range(3)]).SerializeToString()
    response = post(client, second, token)
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert "rate limit" in rpc_status_pb2.Status.FromString(response.content).message
    assert stored(tenants.org, "h1")[0] == {}


def test_series_limit_is_a_partial_success(client, tenants):
    limits_update(org=tenants.org, changes={"max_global_series_per_user": 2})
    token = tenants.token(["metrics:write"])
    body = metrics_request([gauge(f"g{i}", i) for i in range(4)]).SerializeToString()
    response = post(client, body, token)
    assert response.status_code == 200
    partial = ExportMetricsServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_data_points == 2
    assert "per_user_series_limit" in partial.error_message or "series" in partial.error_message
