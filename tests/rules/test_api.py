"""The rules APIs: Cortex/Mimir's ruler configuration API, Prometheus's /api/v1/rules and
/api/v1/alerts, the alerting targets; scopes, validation and isolation between orgs."""

from __future__ import annotations

import json

import pytest
import yaml

from backend.rules import services
from backend.rules.models import AlertState, RuleGroup
from backend.tenancy.models import Scope
from tests.helpers.credentials import basic, bearer

pytestmark = pytest.mark.django_db
RULER = "/prometheus/config/v1/rules"
PROM = "/prometheus/api/v1"

GROUP = """name: mesh
interval: 30s
rules:
- record: svc:requests:rate5m
  expr: sum by (svc) (rate(requests_total[5m]))
- alert: High5xx
  expr: sum(rate(requests_total{code=~"5.."}[5m])) > 1
  for: 5m
  labels:
    severity: page
  annotations:
    summary: '{{ $value | humanize }} errors/s'
"""


@pytest.fixture
def writer(tenants):
    return tenants.token([Scope.RULES_WRITE, Scope.METRICS_READ])


def _post(api, path, body, token, **extra):
    return api.post(path, data=body, content_type="application/yaml", **bearer(token), **extra)


def test_mimirtool_style_round_trip(api, tenants, writer):
    r = _post(api, f"{RULER}/istio", GROUP, writer)
    assert r.status_code == 202, r.content
    assert r.json()["status"] == "success"
    # all namespaces, one namespace, one group: Prometheus rule-group YAML
    everything = yaml.safe_load(api.get(RULER, **bearer(writer)).content)
    assert list(everything) == ["istio"]
    assert everything["istio"][0]["name"] == "mesh"
    assert everything["istio"][0]["interval"] == "30s"
    ns = yaml.safe_load(api.get(f"{RULER}/istio", **bearer(writer)).content)
    assert ns == everything
    one = yaml.safe_load(api.get(f"{RULER}/istio/mesh", **bearer(writer)).content)
    assert one == yaml.safe_load(GROUP)
    # replacing the group keeps one group; deleting it leaves none
    assert _post(api, f"{RULER}/istio", GROUP.replace("30s", "1m"), writer).status_code == 202
    assert RuleGroup.objects.for_org(tenants.org).count() == 1
    assert api.delete(f"{RULER}/istio/mesh", **bearer(writer)).status_code == 202
    assert api.get(f"{RULER}/istio/mesh", **bearer(writer)).status_code == 404
    assert api.delete(f"{RULER}/istio/mesh", **bearer(writer)).status_code == 404  # as Mimir


def test_basic_auth_as_mimirtool_sends_it(api, tenants, writer):
    r = api.post(
        f"{RULER}/istio", data=GROUP, content_type="application/yaml", **basic("acme", writer)
    )
    assert r.status_code == 202


def test_a_whole_rule_file_replaces_a_namespace(api, tenants, writer):
    _post(api, f"{RULER}/ns", "name: old\nrules:\n- record: a\n  expr: up\n", writer)
    text = "groups:\n- " + GROUP.replace("\n", "\n  ").rstrip() + "\n"
    assert _post(api, f"{RULER}/ns", text, writer).status_code == 202
    names = [g.name for g in RuleGroup.objects.for_org(tenants.org)]
    assert names == ["mesh"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("name: g\nrules:\n- record: r\n  expr: sum(\n", "could not parse expression"),
        ("name: g\nrules:\n- alert: A\n  expr: up\n  for: 5 min\n", "not a valid duration"),
        ("rules:\n- record: r\n  expr: up\n", "Groupname must not be empty"),
        ("name: g\ninterval: 1s\nrules:\n- record: r\n  expr: up\n", "below this organization"),
        ("name: g\nrules:\n- alert: A\n  expr: up\n  labels: {x: '{{ nope }}'}\n", "not defined"),
        ("name: g\nrules: [\n", "yaml"),
    ],
)
def test_invalid_groups_are_400_with_the_reason(api, tenants, writer, body, reason):
    r = _post(api, f"{RULER}/ns", body, writer)
    assert r.status_code == 400
    assert reason in r.json()["error"]
    assert not RuleGroup.objects.for_org(tenants.org).exists()


def test_scopes(api, tenants):
    reader = tenants.token([Scope.METRICS_READ])
    assert _post(api, f"{RULER}/ns", GROUP, reader).status_code == 403
    assert (
        api.put("/api/v1/alerting/targets", data={}, format="json", **bearer(reader)).status_code
        == 403
    )
    assert api.get(RULER, **bearer(tenants.token([Scope.METRICS_WRITE]))).status_code == 403
    assert api.get(RULER).status_code in (401, 403)


def test_other_orgs_rules_and_alerts_are_invisible(api, tenants, writer):
    assert _post(api, f"{RULER}/secret", GROUP, writer).status_code == 202
    group = RuleGroup.objects.for_org(tenants.org).get()
    AlertState.objects.for_org(tenants.org).create(
        org=tenants.org, group=group, rule_index=1, rule_name="High5xx", fingerprint="f",
        labels={"alertname": "High5xx"}, state="firing", value=3.0, active_at_ms=0,
    )  # fmt: skip
    outsider = tenants.outsider_token([Scope.RULES_WRITE, Scope.METRICS_READ])
    assert api.get(f"{RULER}/secret", **bearer(outsider)).status_code == 404
    assert api.get(f"{RULER}/secret/mesh", **bearer(outsider)).status_code == 404
    assert api.get(RULER, **bearer(outsider)).status_code == 404
    assert api.delete(f"{RULER}/secret", **bearer(outsider)).status_code == 404
    assert api.delete(f"{RULER}/secret/mesh", **bearer(outsider)).status_code == 404
    assert RuleGroup.objects.for_org(tenants.org).count() == 1  # untouched
    assert api.get(f"{PROM}/rules", **bearer(outsider)).json()["data"] == {"groups": []}
    assert api.get(f"{PROM}/alerts", **bearer(outsider)).json()["data"] == {"alerts": []}
    # a token names its own org only: basic auth with another org's slug is refused
    assert api.get(f"{PROM}/alerts", **basic("acme", outsider)).status_code in (401, 403)
    assert len(api.get(f"{PROM}/alerts", **bearer(writer)).json()["data"]["alerts"]) == 1


def test_prometheus_rules_and_alerts_format(api, tenants, writer):
    _post(api, f"{RULER}/istio", GROUP, writer)
    group = RuleGroup.objects.for_org(tenants.org).get()
    AlertState.objects.for_org(tenants.org).create(
        org=tenants.org, group=group, rule_index=1, rule_name="High5xx", fingerprint="f",
        labels={"alertname": "High5xx", "severity": "page"},
        annotations={"summary": "3 errors/s"}, state="pending", value=3.0,
        active_at_ms=1_700_000_000_123,
    )  # fmt: skip
    body = api.get(f"{PROM}/rules", **bearer(writer)).json()
    assert body["status"] == "success"
    (g,) = body["data"]["groups"]
    assert g["name"] == "mesh" and g["file"] == "istio" and g["interval"] == 30.0
    record, alert = g["rules"]
    assert record == {
        "name": "svc:requests:rate5m",
        "query": "sum by (svc) (rate(requests_total[5m]))",
        "labels": {},
        "health": "unknown",
        "lastError": "",
        "evaluationTime": 0,
        "lastEvaluation": "0001-01-01T00:00:00Z",
        "type": "recording",
    }
    assert alert["type"] == "alerting" and alert["state"] == "pending"
    assert alert["duration"] == 300.0 and alert["labels"] == {"severity": "page"}
    assert alert["annotations"] == {"summary": "{{ $value | humanize }} errors/s"}
    expected_alert = {
        "labels": {"alertname": "High5xx", "severity": "page"},
        "annotations": {"summary": "3 errors/s"},
        "state": "pending",
        "activeAt": "2023-11-14T22:13:20.123Z",
        "value": "3.0000000000e+00",
    }
    assert alert["alerts"] == [expected_alert]
    assert api.get(f"{PROM}/alerts", **bearer(writer)).json() == {
        "status": "success",
        "data": {"alerts": [expected_alert]},
    }
    only_records = api.get(f"{PROM}/rules", {"type": "record"}, **bearer(writer)).json()
    assert [r["type"] for r in only_records["data"]["groups"][0]["rules"]] == ["recording"]
    only_alerts = api.get(f"{PROM}/rules", {"type": "alert"}, **bearer(writer)).json()
    assert [r["type"] for r in only_alerts["data"]["groups"][0]["rules"]] == ["alerting"]
    assert api.get(f"{PROM}/rules", {"type": "x"}, **bearer(writer)).status_code == 400


def test_targets_put_get_hide_secrets_and_validate(api, tenants, writer):
    targets = {
        "alertmanagers": [
            {"url": "http://am.example:9093", "bearer_token": "s3cret"},
            {"url": "https://am2.example", "basic_auth": {"username": "u", "password": "p"}},
        ],
        "webhooks": [{"url": "https://hooks.example/alert"}],
    }
    r = api.put("/api/v1/alerting/targets", data=targets, format="json", **bearer(writer))
    assert r.status_code == 200, r.content
    got = api.get("/api/v1/alerting/targets", **bearer(writer)).json()
    assert "s3cret" not in json.dumps(got) and '"p"' not in json.dumps(got)
    assert got["alertmanagers"][0] == {"url": "http://am.example:9093", "bearer_token": "<secret>"}
    assert got["webhooks"] == [{"url": "https://hooks.example/alert"}]
    assert got["status"] == []
    for bad in (
        {"alertmanagers": [{"url": "ftp://x"}]},
        {
            "alertmanagers": [
                {"url": "http://x", "bearer_token": "a", "basic_auth": {"username": "u"}}
            ]
        },
        {"pagers": []},
        {"webhooks": "http://x"},
    ):
        r = api.put("/api/v1/alerting/targets", data=bad, format="json", **bearer(writer))
        assert r.status_code == 400 and r.json()["error"]
    outsider = tenants.outsider_token([Scope.RULES_WRITE, Scope.METRICS_READ])
    other = api.get("/api/v1/alerting/targets", **bearer(outsider)).json()
    assert other["alertmanagers"] == [] and other["webhooks"] == []


def test_group_limit_per_org(api, tenants, writer):
    from backend.rules.models import AlertingConfig

    AlertingConfig.objects.for_org(tenants.org).create(org=tenants.org, max_groups=1)
    assert _post(api, f"{RULER}/a", GROUP, writer).status_code == 202
    r = _post(api, f"{RULER}/b", GROUP, writer)
    assert r.status_code == 400 and "at most 1 rule groups" in r.json()["error"]
    assert services.groups_due(now_ms=0) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9093",
        "http://localhost:9093",
        "http://[::1]:9093",
        "http://10.0.0.5",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",  # a cloud's metadata service
        "http://100.64.0.1",
        "http://0.0.0.0:5432",
    ],
)
def test_targets_on_non_public_addresses_are_refused_in_production(
    api, tenants, writer, settings, url
):
    settings.ALERTING_PRIVATE_TARGETS = False  # what an https CANOPY_PUBLIC_URL defaults to
    r = api.put(
        "/api/v1/alerting/targets",
        data={"webhooks": [{"url": url}]},
        format="json",
        **bearer(writer),
    )
    assert r.status_code == 400
    assert "non-public address" in r.json()["error"]
    public = {"alertmanagers": [{"url": "http://93.184.216.34:9093"}]}  # a literal: no DNS
    r = api.put("/api/v1/alerting/targets", data=public, format="json", **bearer(writer))
    assert r.status_code == 200, r.content


def test_a_stored_target_that_became_private_is_not_posted_to(tenants, settings):
    from django.utils import timezone

    from backend.rules import notify
    from backend.rules.models import AlertingConfig, DeliveryStatus, Notification

    AlertingConfig.objects.for_org(tenants.org).create(
        org=tenants.org, targets={"webhooks": [{"url": "http://127.0.0.1:9/hook"}]}
    )
    settings.ALERTING_PRIVATE_TARGETS = False
    n = Notification.objects.for_org(tenants.org).create(
        org=tenants.org,
        target_url="http://127.0.0.1:9/hook",
        payload={"alerts": [{}]},
        next_attempt_at=timezone.now(),
    )
    assert notify.notification_deliver(notification_id=n.pk, org_id=n.org_id) == "retry"
    status = DeliveryStatus.objects.for_org(tenants.org).get()
    assert status.last_error.startswith("refused, its host resolves to a non-public address")
