"""The 5xx the route fuzzer found, each pinned by the exact input (all were 500s; now 400s
that say why)."""

from __future__ import annotations

import json

import pytest

from backend.meshconfig import services as mesh_services
from backend.tenancy.models import ALL_SCOPES
from tests.helpers.credentials import bearer

pytestmark = [pytest.mark.django_db, pytest.mark.reliability]

DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
HUGE_INT_JSON = b'{"n": 1' + b"0" * 5000 + b"}"


@pytest.fixture
def admin(tenants):
    return bearer(tenants.token(sorted(ALL_SCOPES)))


@pytest.mark.parametrize(
    "path",
    ["/api/v1/invitations", "/api/v1/tokens", "/api/v1/members", "/api/v1/config/validate"],
)
def test_json_nested_deeper_than_the_stack_is_a_400(api, admin, path):
    r = api.post(path, data=DEEP_JSON, content_type="application/json", **admin)
    assert r.status_code == 400, r.content
    assert "nested too deeply" in r.json()["detail"]


def test_yaml_with_an_integer_too_long_to_convert_is_a_400(api, admin):
    r = api.post(
        "/api/v1/config/validate", data=HUGE_INT_JSON, content_type="application/yaml", **admin
    )
    assert r.status_code == 400, r.content
    assert "not valid YAML" in json.dumps(r.json())


def test_yaml_nested_deeper_than_the_stack_is_a_400(api, admin):
    deep = b"a: " + b"[" * 50_000 + b"]" * 50_000
    r = api.post("/api/v1/config/validate", data=deep, content_type="application/yaml", **admin)
    assert r.status_code == 400, r.content
    rules = api.post(
        "/prometheus/config/v1/rules/ns", data=deep, content_type="application/yaml", **admin
    )
    assert rules.status_code == 400, rules.content


@pytest.mark.parametrize(
    "params",
    [
        {"service": "s", "tags": "[" * 5000},
        {"service": "s", "tags": '{"k": 1' + "0" * 5000 + "}"},
        {"service": "s", "tagFilters": "[" * 5000},
        {"service": "s", "tagFilters": "[1" + "0" * 5000 + "]"},
    ],
)
def test_jaeger_tag_parameters_that_json_cannot_hold_are_a_400(api, admin, params):
    r = api.get("/jaeger/api/traces", params, **admin)
    assert r.status_code == 400, r.content


def test_an_agent_report_nested_too_deeply_is_a_400(api, tenants):
    _, token = mesh_services.cluster_create(org=tenants.org, name="prod")
    deep = b"[" * 30_000 + b"]" * 30_000  # under the report's 64 KiB cap
    r = api.post(
        "/api/v1/agent/status", data=deep, content_type="application/json", **bearer(token)
    )
    assert r.status_code == 400, r.content
