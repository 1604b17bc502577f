"""The mesh config writes that used ``save()``/``delete()`` (``UPDATE/DELETE … WHERE id =
…``) name the org in every statement on the mesh tables (docs/scaling.md)."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.meshconfig import services
from backend.meshconfig.models import AgentReport, Cluster, ClusterStatus, TelemetrySettings
from backend.meshconfig.selectors import cluster_get
from tests.helpers.org_routing import tables_named, unrouted

MESH_TABLES = (
    "mesh_clusters",
    "mesh_cluster_status",
    "mesh_agent_reports",
    "mesh_telemetry_settings",
)


def test_token_rotation_deletion_and_telemetry_name_the_org(tenants):
    org, other = tenants.org, tenants.other_org
    services.cluster_create(org=other, name="east")  # same name in another org: untouched
    cluster, _ = services.cluster_create(org=org, name="east")
    services.cluster_report(cluster=cluster, revision=None, attempt_id="a1", state="ACK")
    assert AgentReport.objects.for_org(org).filter(cluster_id=cluster.pk).exists()
    old_token = cluster.agent_token_id
    with CaptureQueriesContext(connection) as ctx:
        services.cluster_token_rotate(cluster=cluster_get(org=org, name="east"))
        services.telemetry_update(
            org=org, trace_sampling_percent=5, traces=True, metrics=False, custom_tags={}
        )
        services.telemetry_update(  # the row exists now: the update path
            org=org, trace_sampling_percent=7, traces=True, metrics=True, custom_tags={"a": "b"}
        )
        services.cluster_delete(cluster=cluster_get(org=org, name="east"))
    seen = set().union(*(tables_named(q["sql"], MESH_TABLES) for q in ctx.captured_queries))
    assert seen == set(MESH_TABLES)
    assert unrouted(ctx.captured_queries, MESH_TABLES) == []
    assert not Cluster.objects.for_org(org).exists()
    assert not ClusterStatus.objects.for_org(org).exists()
    assert not AgentReport.objects.for_org(org).exists()
    assert Cluster.objects.for_org(other).filter(name="east").exists()
    assert ClusterStatus.objects.for_org(other).exists()
    settings = TelemetrySettings.objects.for_org(org).get()
    assert (settings.trace_sampling_percent, settings.metrics) == (7.0, True)
    assert settings.custom_tags == {"a": "b"}
    assert old_token is not None


def test_the_rotated_token_is_stored(tenants):
    cluster, _ = services.cluster_create(org=tenants.org, name="west")
    before = cluster.agent_token_id
    services.cluster_token_rotate(cluster=cluster)
    stored = Cluster.objects.for_org(tenants.org).get(pk=cluster.pk)
    assert stored.agent_token_id == cluster.agent_token_id != before
