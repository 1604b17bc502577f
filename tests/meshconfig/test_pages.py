"""The Mesh config pages: what each shows, who may change what, the agent command shown once,
and that nothing of another organization appears or can be changed."""

from __future__ import annotations

import pytest

from backend.meshconfig import selectors, services
from backend.tenancy.models import AuditEvent

pytestmark = pytest.mark.django_db

VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "bookinfo"},
    "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
}


def _publish(org, resources, message="m"):
    return services.revision_publish(org=org, resources=resources, message=message).revision


def test_empty_states_say_what_to_do(client, tenants):
    client.force_login(tenants.member)
    page = client.get("/mesh").content.decode()
    assert "No clusters yet." in page and "canopy-agent" in page
    assert 'href="/mesh"' in client.get("/").content.decode()  # the nav links here now
    revisions = client.get("/mesh/revisions").content.decode()
    assert "No revisions yet." in revisions
    editor = client.get("/mesh/editor").content.decode()
    assert "kind: VirtualService" in editor  # the example to start from


def test_create_cluster_shows_the_agent_command_once(client, tenants):
    client.force_login(tenants.member)
    got = client.post("/mesh/clusters", {"name": "east", "labels": "env=prod, region=eu"})
    assert got.status_code == 302
    page = client.get("/mesh").content.decode()
    assert "canopy-agent --url http" in page and "--token cnp_" in page
    cluster = selectors.cluster_get(org=tenants.org, name="east")
    assert cluster.labels == {"env": "prod", "region": "eu"}
    assert "--token cnp_" not in client.get("/mesh").content.decode()  # once
    assert "DISCONNECTED" in client.get("/mesh").content.decode()
    client.post("/mesh/clusters", {"name": "Bad Name"})
    assert selectors.clusters_list(org=tenants.org)[0].cluster.name == "east"
    client.post("/mesh/clusters/east/token")
    assert "the old one is revoked" in client.get("/mesh").content.decode()
    assert client.post("/mesh/clusters/east/delete").status_code == 302
    assert selectors.cluster_get(org=tenants.org, name="east") is None


def test_viewer_sees_but_cannot_change(client, tenants):
    services.cluster_create(org=tenants.org, name="east")
    client.force_login(tenants.viewer)
    page = client.get("/mesh").content.decode()
    assert "east" in page and "Add a cluster" not in page
    assert client.post("/mesh/clusters", {"name": "west"}).status_code == 404
    assert client.post("/mesh/clusters/east/delete").status_code == 404
    assert client.post("/mesh/telemetry", {"trace_sampling_percent": "5"}).status_code == 404
    assert "Publish revision" not in client.get("/mesh/editor").content.decode()


def test_revisions_timeline_diff_rollout_and_rollback(client, tenants):
    services.cluster_create(org=tenants.org, name="east")
    _publish(tenants.org, [VS], "first")
    changed = {**VS, "spec": {**VS["spec"], "hosts": ["reviews", "reviews.bookinfo"]}}
    _publish(tenants.org, [changed], "add a host")
    client.force_login(tenants.member)
    page = client.get("/mesh/revisions").content.decode()
    assert "add a host" in page and "first" in page
    assert 'class="diff-add">+  - reviews.bookinfo' in page
    assert client.post("/mesh/rollouts", {"revision": "2", "clusters": ["east"]}).status_code == 302
    assert selectors.cluster_get(org=tenants.org, name="east").status.desired.number == 2
    assert client.post("/mesh/revisions/1/rollback").status_code == 302
    east = selectors.cluster_get(org=tenants.org, name="east")
    assert east.status.desired.number == 3 and east.status.desired.rollback_of == 1
    page = client.get("/mesh/revisions").content.decode()
    assert "restores r1" in page


def test_editor_starts_from_the_head_revision(client, tenants):
    _publish(tenants.org, [VS])
    client.force_login(tenants.member)
    page = client.get("/mesh/editor").content.decode()
    assert "Editing from revision r1" in page and 'data-head="1"' in page
    assert "name: reviews" in page


def test_telemetry_form(client, tenants):
    client.force_login(tenants.member)
    page = client.get("/mesh/telemetry").content.decode()
    assert "Not saved yet" in page and "extensionProviders" in page
    got = client.post(
        "/mesh/telemetry",
        {"trace_sampling_percent": "10", "traces": "on", "custom_tags": "env=prod"},
    )
    assert got.status_code == 302
    page = client.get("/mesh/telemetry").content.decode()
    assert "randomSamplingPercentage: 10.0" in page and "ALL_METRICS" in page
    assert (
        AuditEvent.objects.for_org(tenants.org)
        .filter(action="meshconfig.telemetry.update")
        .exists()
    )
    client.post("/mesh/telemetry", {"trace_sampling_percent": "150"})
    assert selectors.telemetry_get(org=tenants.org).trace_sampling_percent == 10


def test_pages_show_nothing_of_another_org(client, tenants):
    services.cluster_create(org=tenants.org, name="acme-secret-cluster")
    _publish(tenants.org, [VS], "acme secret message")
    client.force_login(tenants.outsider)
    for path in ("/mesh", "/mesh/revisions", "/mesh/editor"):
        page = client.get(path).content.decode()
        assert "acme-secret-cluster" not in page and "acme secret message" not in page, path
    assert client.get("/mesh?org=acme").status_code == 404
    assert client.post("/mesh/clusters/acme-secret-cluster/delete").status_code == 404
    assert client.post("/mesh/revisions/1/rollback").status_code == 404
    client.post("/mesh/rollouts", {"revision": "1", "clusters": ["acme-secret-cluster"]})
    assert selectors.cluster_get(org=tenants.org, name="acme-secret-cluster").status.desired is None
