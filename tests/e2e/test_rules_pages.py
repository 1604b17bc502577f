"""The Rules and Alerts pages in a real browser: upload Istio's alert rules, see them
evaluated, see the alert firing with a link to its query."""

from __future__ import annotations

import time

import pytest

from backend.rules import services
from backend.rules.models import AlertingConfig, RuleGroup
from backend.tenancy.services import org_create, user_get_or_create
from tests.metrics.samples import counter, load
from tests.rules.raw_tables import _raw_sample_tables_emptied  # noqa: F401 - autouse

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-password-1234"
RULES = """groups:
- name: istio
  rules:
  - record: destination_service:istio_requests:rate1m
    expr: sum by (destination_service) (rate(istio_requests_total[1m]))
  - alert: IstioHigh5xxRate
    expr: |
      sum by (destination_service) (rate(istio_requests_total{response_code=~"5.."}[1m]))
        / destination_service:istio_requests:rate1m > 0.05
    labels:
      severity: page
    annotations:
      summary: '{{ $labels.destination_service }}: {{ $value | humanizePercentage }} 5xx'
"""


@pytest.fixture
def org(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = user_get_or_create(username="ada", password=PASSWORD)
    org = org_create(slug="acme", name="Acme Mesh", owner=user)
    AlertingConfig.objects.for_org(org).create(org=org)
    now = int(time.time() * 1000)
    svc = "reviews.default.svc.cluster.local"
    load(
        org,
        {
            counter("istio_requests_total", destination_service=svc, response_code="200"): [
                (s, 10.0 * s) for s in range(0, 121, 15)
            ],
            counter("istio_requests_total", destination_service=svc, response_code="503"): [
                (s, 2.0 * s) for s in range(0, 121, 15)
            ],
        },
        base_ms=now - 120_000,
    )
    return org


def test_upload_rules_and_see_the_alert_fire(page, live_server, org, tmp_path):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Acme Mesh')")

    page.click("nav >> text=Rules")
    assert page.locator(".empty").inner_text().startswith("No rules yet")
    page.fill("#namespace", "istio.yml")
    page.fill("#yaml", RULES.replace("[1m]))\n", "[1m]\n", 1))  # a typo first
    page.click("button:has-text('Validate and save')")
    assert "could not parse expression" in page.locator(".msg-error").first.inner_text()
    page.fill("#yaml", RULES)
    page.click("button:has-text('Validate and save')")
    page.wait_for_selector("text=1 group(s) saved")
    assert page.locator("[data-testid=rule-group]").count() == 1
    assert page.locator("[data-testid=health]").first.inner_text() == "unknown"

    group = RuleGroup.objects.for_org(org).get()
    services.group_evaluate(org_id=group.org_id, group_id=group.pk, ts_ms=int(time.time() * 1000))
    page.reload()
    assert [h.inner_text() for h in page.locator("[data-testid=health]").all()] == ["ok", "ok"]
    page.screenshot(path=str(tmp_path / "rules.png"), full_page=True)

    page.click("nav >> text=Alerts")
    assert page.inner_text("[data-testid=firing-count]") == "1"
    row = page.locator("table.alerts-table tbody tr")
    assert "IstioHigh5xxRate" in row.inner_text() and "16.67% 5xx" in row.inner_text()
    page.screenshot(path=str(tmp_path / "alerts.png"), full_page=True)
    row.locator("text=Query").click()
    page.wait_for_url("**/metrics?q=*")
    editor = page.locator(".query-editor .cm-content").first
    editor.wait_for()
    assert "istio_requests_total" in editor.inner_text()
