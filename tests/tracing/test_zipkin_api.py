"""Zipkin's v2 query API: the calls Grafana's Zipkin data source makes, shapes, isolation."""

from __future__ import annotations

import json

import pytest

from tests.helpers.credentials import basic, bearer
from tests.helpers.otlp import TRACE
from tests.helpers.trace_queries import NOW

pytestmark = pytest.mark.django_db
WINDOW = {"endTs": str(NOW // 10**6 + 60_000), "lookback": "3600000"}


def get(api, url, token, **params):
    response = api.get(url, params, **bearer(token), HTTP_ACCEPT="application/json")
    return response.status_code, response.json()


def test_grafana_zipkin_data_source_sequence(api, traces):
    auth = basic("acme", traces)
    services = api.get("/zipkin/api/v2/services", **auth).json()
    assert services == ["checkout"]
    names = api.get("/zipkin/api/v2/spans", {"serviceName": "checkout"}, **auth).json()
    assert names == ["GET /cart", "SELECT"]
    found = api.get(
        "/zipkin/api/v2/traces", {"serviceName": "checkout", **WINDOW, "limit": "10"}, **auth
    ).json()
    (trace,) = found
    root, child = trace
    assert root == {
        "traceId": TRACE.hex(),
        "id": "eee19b7ec3c1b174",
        "name": "GET /cart",
        "kind": "SERVER",
        "timestamp": NOW // 1000,
        "duration": 5000,
        "localEndpoint": {"serviceName": "checkout"},
        "tags": {"http.status_code": "200"},
    }
    assert child["parentId"] == "eee19b7ec3c1b174" and child["tags"]["error"] == "true"
    by_id = api.get(f"/zipkin/api/v2/trace/{TRACE.hex()}", **auth).json()
    assert [s["id"] for s in by_id] == ["eee19b7ec3c1b174", "eee19b7ec3c1b175"]


@pytest.mark.parametrize(
    ("params", "found"),
    [
        ({"annotationQuery": "error"}, True),
        ({"annotationQuery": "db.system=postgresql"}, True),
        ({"annotationQuery": "db.system=mysql"}, False),
        ({"spanName": "SELECT", "minDuration": "4000", "maxDuration": "6000"}, True),
        ({"minDuration": "6000"}, False),
    ],
)
def test_trace_search(api, traces, params, found):
    status, body = get(
        api, "/zipkin/api/v2/traces", traces, serviceName="checkout", **WINDOW, **params
    )
    assert status == 200 and len(body) == (1 if found else 0)


def test_errors_and_isolation(api, traces, tenants):
    assert get(api, "/zipkin/api/v2/trace/" + "2" * 32, traces)[0] == 404
    assert get(api, "/zipkin/api/v2/traces", traces, annotationQuery="weird")[0] == 400
    outsider = tenants.outsider_token(["traces:read"])
    assert get(api, "/zipkin/api/v2/services", outsider)[1] == ["globex-billing"]
    _, body = get(api, "/zipkin/api/v2/traces", outsider, serviceName="checkout", **WINDOW)
    assert body == []
    _, same_id = get(api, f"/zipkin/api/v2/trace/{TRACE.hex()}", outsider)
    assert "GET /cart" not in json.dumps(same_id)
    assert api.get("/zipkin/api/v2/services").status_code == 401
