"""The Jaeger query API: shapes and units field by field, search filters, the request sequence
Grafana's Jaeger data source makes, and isolation between orgs."""

from __future__ import annotations

import json

import pytest

from backend.pipeline.drain import org_drain
from tests.helpers.credentials import basic
from tests.helpers.otlp import TRACE, otlp_request, post_otlp, span
from tests.helpers.trace_queries import NOW, get

pytestmark = pytest.mark.django_db


def test_services_and_operations(api, traces):
    status, body = get(api, "/jaeger/api/services", traces)
    assert status == 200
    assert body == {"data": ["checkout"], "total": 1, "limit": 0, "offset": 0, "errors": None}
    _, ops = get(api, "/jaeger/api/services/checkout/operations", traces)
    assert ops["data"] == ["GET /cart", "SELECT"]
    _, ops = get(api, "/jaeger/api/operations", traces, service="checkout", spanKind="server")
    assert ops["data"] == [
        {"name": "GET /cart", "spanKind": "server"},
        {"name": "SELECT", "spanKind": "server"},
    ]


def test_trace_by_id_shape(api, traces):
    status, body = get(api, f"/jaeger/api/traces/{TRACE.hex()}", traces)
    assert status == 200
    (trace,) = body["data"]
    assert trace["traceID"] == TRACE.hex()
    assert trace["processes"] == {
        "p1": {
            "serviceName": "checkout",
            "tags": [{"key": "k8s.namespace", "type": "string", "value": "shop"}],
        }
    }
    root, child = trace["spans"]
    assert root["spanID"] == "eee19b7ec3c1b174" and root["references"] == []
    assert root["operationName"] == "GET /cart"
    assert root["startTime"] == NOW // 1000 and root["duration"] == 5000  # µs
    assert {"key": "http.status_code", "type": "int64", "value": 200} in root["tags"]
    assert {"key": "span.kind", "type": "string", "value": "server"} in root["tags"]
    assert root["processID"] == "p1" and root["logs"] == [] and root["warnings"] is None
    assert child["references"] == [
        {"refType": "CHILD_OF", "traceID": TRACE.hex(), "spanID": "eee19b7ec3c1b174"}
    ]
    assert {"key": "error", "type": "bool", "value": True} in child["tags"]
    missing = get(api, "/jaeger/api/traces/" + "1" * 32, traces)
    assert missing[0] == 404 and missing[1]["errors"][0]["code"] == 404
    assert get(api, "/jaeger/api/traces/not-hex", traces)[0] == 400


@pytest.mark.parametrize(
    ("params", "found"),
    [
        ({}, True),
        ({"operation": "SELECT"}, True),
        ({"operation": "nope"}, False),
        ({"tags": json.dumps({"db.system": "postgresql"})}, True),
        ({"tags": json.dumps({"http.status_code": "200"})}, True),
        ({"tags": json.dumps({"http.status_code": "500"})}, False),
        ({"tags": json.dumps({"error": "true"})}, True),
        ({"minDuration": "4ms", "maxDuration": "6ms"}, True),
        ({"minDuration": "1s"}, False),
        ({"start": str(NOW // 1000 + 10**6)}, False),
    ],
)
def test_search(api, traces, params, found):
    base = {
        "service": "checkout",
        "start": str(NOW // 1000 - 10**6),
        "end": str(NOW // 1000 + 10**7),
        "limit": "20",
    }
    status, body = get(api, "/jaeger/api/traces", traces, **{**base, **params})
    assert status == 200
    assert [t["traceID"] for t in body["data"]] == ([TRACE.hex()] if found else [])


def test_search_needs_a_service_and_valid_parameters(api, traces):
    assert get(api, "/jaeger/api/traces", traces)[0] == 400
    assert get(api, "/jaeger/api/traces", traces, service="checkout", minDuration="fast")[0] == 400
    assert get(api, "/jaeger/api/traces", traces, service="checkout", tags="[1]")[0] == 400


def test_grafana_jaeger_data_source_sequence(api, traces, tenants):
    """Save & test, the service picker, the operation picker, a search, a trace view — with
    basic auth as Grafana sends it."""
    auth = basic("acme", traces)
    for url, params in (
        ("/jaeger/api/services", {}),
        ("/jaeger/api/services/checkout/operations", {}),
        (
            "/jaeger/api/traces",
            {
                "service": "checkout",
                "operation": "all",
                "lookback": "custom",
                "start": str(NOW // 1000 - 10**6),
                "end": str(NOW // 1000 + 10**6),
                "limit": "20",
            },
        ),
        (f"/jaeger/api/traces/{TRACE.hex()}", {}),
    ):
        response = api.get(url, params, **auth, HTTP_ACCEPT="application/json")
        assert response.status_code == 200, (url, response.content)
        assert response.json()["data"]


def test_isolation(api, traces, tenants):
    outsider = tenants.outsider_token(["traces:read"])
    assert get(api, "/jaeger/api/services", outsider)[1]["data"] == ["globex-billing"]
    # The outsider's org happens to hold a trace with the same id: it sees its own span only.
    _, same_id = get(api, f"/jaeger/api/traces/{TRACE.hex()}", outsider)
    (trace,) = same_id["data"]
    assert [s["operationName"] for s in trace["spans"]] == ["secret-op"]
    assert trace["processes"]["p1"]["serviceName"] == "globex-billing"
    _, found = get(
        api,
        "/jaeger/api/traces",
        outsider,
        service="checkout",
        start=str(NOW // 1000 - 10**6),
        end=str(NOW // 1000 + 10**6),
    )
    assert found["data"] == []
    _, acme_view = get(api, f"/jaeger/api/traces/{TRACE.hex()}", traces)
    assert "secret-op" not in json.dumps(acme_view)
    assert get(api, "/jaeger/api/services/checkout/operations", outsider)[1]["data"] == []
    assert get(api, "/jaeger/api/services", tenants.token(["metrics:read"]))[0] == 403
    assert api.get("/jaeger/api/services").status_code == 401


@pytest.mark.parametrize(
    ("extra", "found"),
    [
        ({"tagFilters": json.dumps([["db.system", "=~", "post.*"]])}, True),
        ({"tagFilters": json.dumps([["db.system", "=~", "post"]])}, False),  # anchored
        (
            {
                "tagFilters": json.dumps(
                    [["db.system", "!=", "postgresql"], ["http.status_code", "!~", "5.."]]
                )
            },
            True,
        ),
        ({"tagFilters": json.dumps([["k8s.namespace", "=", "shop"]])}, True),  # resource
        ({"tagFilters": json.dumps([["k8s.namespace", "!=", "shop"]])}, False),
        ({"errorsOnly": "true", "operation": "SELECT"}, True),
        ({"errorsOnly": "true", "operation": "GET /cart"}, False),
        ({"statusCode": "UNSET", "operation": "GET /cart"}, True),
        ({"statusCode": "OK"}, False),
        ({"sortBy": "duration"}, True),
    ],
)
def test_search_beyond_jaeger(api, traces, extra, found):
    base = {
        "service": "checkout",
        "start": str(NOW // 1000 - 10**6),
        "end": str(NOW // 1000 + 10**7),
    }
    status, body = get(api, "/jaeger/api/traces", traces, **{**base, **extra})
    assert status == 200, body
    assert len(body["data"]) == (1 if found else 0)


@pytest.mark.parametrize(
    "bad",
    [
        {"tagFilters": "not json"},
        {"tagFilters": json.dumps([["a", "like", "b"]])},
        {"tagFilters": json.dumps([["a", "=~", "("]])},
        {"tagFilters": json.dumps([["a", "=~", "(?P<n>x)y"]])},  # Python-only syntax
        {"statusCode": "MAYBE"},
        {"sortBy": "name"},
    ],
)
def test_search_extensions_refuse_bad_input(api, traces, bad):
    status, body = get(api, "/jaeger/api/traces", traces, service="checkout", **bad)
    assert status == 400 and body["errors"][0]["msg"]


def test_sort_by_duration_puts_the_slowest_first(api, client, tenants, traces):
    token = tenants.token(["traces:write"])
    slow = otlp_request([span("eee19b7ec3c1b199", name="GET /cart", start=NOW + 10**9)])
    slow.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x07" * 16
    slow.resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano = NOW + 10**9 + 10**8
    post_otlp(client, slow.SerializeToString(), token)
    org_drain(signal="traces", org_id=tenants.org.pk)
    base = {
        "service": "checkout",
        "start": str(NOW // 1000 - 10**6),
        "end": str(NOW // 1000 + 10**7),
    }
    by_start = get(api, "/jaeger/api/traces", traces, **base)[1]["data"]
    by_duration = get(api, "/jaeger/api/traces", traces, sortBy="duration", **base)[1]["data"]
    assert [t["traceID"] for t in by_start] == ["07" * 16, TRACE.hex()]  # newest first
    assert [t["traceID"] for t in by_duration] == ["07" * 16, TRACE.hex()]
    fast_first = get(
        api, "/jaeger/api/traces", traces, **{**base, "minDuration": "1ms", "maxDuration": "10ms"}
    )[1]["data"]
    assert [t["traceID"] for t in fast_first] == [TRACE.hex()]
