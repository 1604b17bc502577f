"""The Alerts and Rules pages: empty states, uploading a rule file (valid and not), roles,
and another org's rules staying out of sight."""

from __future__ import annotations

import pytest

from backend.rules import services
from backend.rules.models import AlertState, RuleGroup
from backend.rules.rulefile import group_parse

pytestmark = pytest.mark.django_db

FILE = """groups:
- name: mesh
  rules:
  - alert: High5xx
    expr: sum(rate(istio_requests_total{response_code=~"5.."}[5m])) > 1
    for: 5m
    annotations:
      summary: too many errors
"""


GROUP = FILE.removeprefix("groups:\n- ").replace("\n  ", "\n")


def _login(client, tenants, who="owner"):
    client.force_login(getattr(tenants, who))


def test_empty_states_say_what_to_do(client, tenants):
    _login(client, tenants)
    rules = client.get("/rules").content.decode()
    assert "No rules yet" in rules and "mimirtool rules load" in rules
    alerts = client.get("/alerts").content.decode()
    assert "No alerting rules yet" in alerts
    assert "/api/v1/alerting/targets" in alerts


def test_upload_valid_and_invalid_files(client, tenants):
    _login(client, tenants, "member")
    r = client.post("/rules", {"namespace": "istio.yml", "yaml": FILE}, follow=True)
    assert "1 group(s) saved" in r.content.decode()
    assert "High5xx" in r.content.decode()
    assert RuleGroup.objects.for_org(tenants.org).get().namespace == "istio.yml"
    bad = client.post("/rules", {"namespace": "x", "yaml": FILE.replace("[5m]", "[5")})
    assert bad.status_code == 200
    assert "could not parse expression" in bad.content.decode()
    assert RuleGroup.objects.for_org(tenants.org).count() == 1


def test_viewers_read_but_cannot_upload_or_delete(client, tenants):
    services.group_save(org_id=tenants.org.pk, namespace="ns", group=group_parse(GROUP))
    _login(client, tenants, "viewer")
    page = client.get("/rules").content.decode()
    assert "High5xx" in page and "Upload a rule file" not in page
    assert client.post("/rules", {"namespace": "x", "yaml": FILE}).status_code == 404
    assert client.post("/rules/delete", {"namespace": "ns", "group": "mesh"}).status_code == 404
    assert RuleGroup.objects.for_org(tenants.org).count() == 1


def test_alerts_page_lists_firing_alerts_with_a_query_link(client, tenants):
    group = services.group_save(org_id=tenants.org.pk, namespace="ns", group=group_parse(GROUP))
    AlertState.objects.for_org(tenants.org).create(
        org=tenants.org, group=group, rule_index=0, rule_name="High5xx", fingerprint="f",
        labels={"alertname": "High5xx", "service": "reviews"}, annotations={"summary": "too many"},
        state="firing", value=4.5, active_at_ms=1_700_000_000_000,
    )  # fmt: skip
    _login(client, tenants)
    page = client.get("/alerts").content.decode()
    assert 'data-testid="firing-count">1<' in page
    assert "service=reviews" in page and "too many" in page
    assert "/metrics?q=sum%28rate%28istio_requests_total" in page


def test_another_orgs_pages_are_404(client, tenants):
    services.group_save(org_id=tenants.org.pk, namespace="ns", group=group_parse(GROUP))
    _login(client, tenants, "outsider")
    assert client.get("/rules?org=acme").status_code == 404
    assert client.get("/alerts?org=acme").status_code == 404
    page = client.get("/rules").content.decode()
    assert "No rules yet" in page and 'data-testid="rule-group"' not in page
    client.post("/rules/delete", {"namespace": "ns", "group": "mesh"})
    assert RuleGroup.objects.for_org(tenants.org).count() == 1
