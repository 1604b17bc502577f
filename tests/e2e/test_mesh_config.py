"""Mesh config in a real browser: create a cluster, validate a broken bundle and see the
finding at its resource, get refused on publish, fix it, publish, roll out, and watch the
cluster's state turn SYNCED when its agent reports. (The agent here is the agent API's service
call: the real ``canopy-agent`` process is exercised in the agent's own end-to-end tests.)"""

import pytest

from backend.meshconfig import selectors, services
from backend.tenancy.services import org_create, user_get_or_create

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-password-1234"

BROKEN = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: front
  namespace: bookinfo
spec:
  hosts: [front.example.com]
  gateways: [bogus]
  http:
  - route:
    - destination: {host: reviews}
      weight: 10
"""
GOOD = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: bookinfo
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [front.example.com]
---
""" + BROKEN.replace("[bogus]", "[bookinfo/gw]").replace("      weight: 10\n", "")


@pytest.fixture
def owner(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = user_get_or_create(username="ada", password=PASSWORD)
    org = org_create(slug="acme", name="Acme Mesh", owner=user)
    return user, org


def test_editor_validate_publish_rollout_status(page, live_server, owner, tmp_path):
    _, org = owner
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Acme Mesh')")

    page.click("nav >> text=Mesh config")
    page.wait_for_selector("[data-testid=no-clusters]")
    page.fill("#cluster-name", "east")
    page.fill("#cluster-labels", "env=prod")
    page.click("button:has-text('Create cluster')")
    command = page.input_value("#agent-command")
    assert command.startswith("canopy-agent --url ") and "--token cnp_" in command
    page.screenshot(path=str(tmp_path / "clusters.png"), full_page=True)

    page.click(".subnav >> text=Editor")
    page.fill("#mesh-yaml", BROKEN)
    page.click("#mesh-validate")
    page.wait_for_selector("[data-testid=verdict]")
    assert "Blocked by errors" in page.inner_text("[data-testid=verdict]")
    resource = page.locator('[data-resource="VirtualService/bookinfo/front"]')
    assert resource.locator('[data-code="KIA1102"]').count() == 1
    assert "spec/gateways[0]" in resource.inner_text()
    assert resource.locator('[data-code="KIA1104"]').count() == 1  # a warning, shown too
    page.screenshot(path=str(tmp_path / "editor-findings.png"), full_page=True)

    page.fill("#mesh-message", "front door")
    page.click("#mesh-publish")
    page.wait_for_selector("text=Not published.")
    assert selectors.revision_head(org=org) is None

    page.fill("#mesh-yaml", GOOD)
    page.click("#mesh-validate")
    page.wait_for_function(
        "(document.querySelector('[data-testid=verdict]') || {textContent: ''})"
        ".textContent.startsWith('Valid')"
    )
    page.click("#mesh-publish")
    page.wait_for_selector("[data-testid=published]")
    assert "Published r1" in page.inner_text("[data-testid=published]")
    head = selectors.revision_head(org=org)
    assert head.number == 1 and head.message == "front door"

    page.click("button:has-text('Roll out r1')")
    status = page.locator('[data-testid=rollout-status] li[data-cluster="east"]')
    status.wait_for()
    assert status.locator(".mesh-state").inner_text() in ("APPLYING", "DISCONNECTED")
    east = selectors.cluster_get(org=org, name="east")
    assert east.status.desired.number == 1
    # The cluster's agent applies it and says so.
    services.cluster_seen(cluster=east, wait_seconds=30)
    services.cluster_report(cluster=east, revision=1, attempt_id="e2e-1", state="ACK")
    page.wait_for_selector(
        '[data-testid=rollout-status] li[data-cluster="east"] .mesh-state[data-state=SYNCED]',
        timeout=5000,
    )
    page.screenshot(path=str(tmp_path / "editor-published.png"), full_page=True)

    page.click(".subnav >> text=Clusters")
    row = page.locator('tr[data-cluster="east"]')
    assert row.locator(".mesh-state").inner_text() == "SYNCED"
    assert row.locator('[data-field="applied"]').inner_text() == "r1"

    page.click(".subnav >> text=Revisions")
    rev = page.locator('[data-revision="1"]')
    assert "front door" in rev.inner_text() and "valid" in rev.inner_text()
    assert rev.locator("pre.diff .diff-add").count() > 0
    page.screenshot(path=str(tmp_path / "revisions.png"), full_page=True)

    page.click(".subnav >> text=Telemetry")
    page.fill("#sampling", "10")
    page.check("input[name=traces]")
    page.fill("#custom-tags", "env=prod")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=The next revision you publish carries them.")
    assert "randomSamplingPercentage: 10.0" in page.inner_text("[data-testid=telemetry-resource]")
    assert "extensionProviders" in page.inner_text("[data-testid=extension-provider]")
    page.screenshot(path=str(tmp_path / "telemetry.png"), full_page=True)
