"""The mesh config writes that used ``save()``/``delete()`` (``UPDATE/DELETE … WHERE id =
…``) name the org in every statement on the mesh tables, and the API's and dashboard's reads
join no mesh table without the org: a cluster's status and revisions, a revision's parent and
a report's revision are read by the org (``for_org`` prefetches), not by ``select_related``'s
``JOIN … ON x_id = id`` or a relation accessor's ``WHERE id = …`` (docs/scaling.md)."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.meshconfig import selectors, services
from backend.meshconfig.models import (
    AgentReport,
    Cluster,
    ClusterStatus,
    Revision,
    TelemetrySettings,
)
from backend.meshconfig.selectors import cluster_get
from backend.tenancy.models import Scope
from backend.tracing.selectors import operations_list
from tests.helpers.credentials import bearer
from tests.helpers.org_routing import tables_named, unrouted, unrouted_joins

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


def _vs(host: str) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": host, "namespace": "bookinfo"},
        "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": host}}]}]},
    }


def _mesh(org, name="east"):
    """A cluster that runs revision 2 of three (3 is desired: APPLYING), with two reports."""
    cluster, _ = services.cluster_create(org=org, name=name)
    for host in ("reviews", "ratings", "details"):
        services.revision_publish(org=org, resources=[_vs(host)], force=True)
    services.rollout_create(org=org, revision=2, clusters=[name])
    services.cluster_report(cluster=cluster, revision=2, attempt_id="a2", state="ACK")
    services.rollout_create(org=org, revision=3, clusters=[name])
    services.cluster_report(cluster=cluster, revision=2, attempt_id="a3", state="ACK")
    return cluster


MESH_READ_TABLES = ("mesh_clusters", "mesh_cluster_status", "mesh_revisions", "mesh_agent_reports")


def test_the_request_paths_join_no_mesh_table_without_the_org(tenants, api, client):
    org = tenants.org
    _mesh(tenants.other_org)  # the same names and numbers in another org
    cluster = _mesh(org)
    token = Cluster.objects.for_org(org).get(pk=cluster.pk).agent_token
    reader = tenants.token([Scope.CONFIG_READ])
    client.force_login(tenants.member)
    with CaptureQueriesContext(connection) as ctx:
        clusters = api.get("/api/v1/clusters", **bearer(reader)).json()
        one = api.get("/api/v1/clusters/east", **bearer(reader)).json()
        status = api.get("/api/v1/config/status", **bearer(reader)).json()
        revs = api.get("/api/v1/config/revisions", **bearer(reader)).json()
        touching = api.get(
            "/api/v1/config/revisions?namespace=bookinfo&service=reviews&limit=1",
            **bearer(reader),
        ).json()
        detail = api.get("/api/v1/config/revisions/2", **bearer(reader)).json()
        page = client.get("/config/revisions")
        overview = client.get("/config")
        found = selectors.cluster_for_token(token=token)
        bundle = selectors.bundle_for_cluster(cluster=found)
        reports = selectors.agent_reports(cluster=found)
    queries = ctx.captured_queries
    seen = set().union(*(tables_named(q["sql"], MESH_READ_TABLES) for q in queries))
    assert seen == set(MESH_READ_TABLES)
    assert unrouted(queries, MESH_READ_TABLES) == []
    assert unrouted_joins(queries, MESH_READ_TABLES) == []
    # what the prefetches put in place of the joins
    expected = {"name": "east", "desired": 3, "applied": 2, "state": "APPLYING"}
    assert [{k: c[k] for k in expected} for c in clusters] == [expected]
    assert {k: one[k] for k in expected} == expected
    assert (status["total"], status["synced"]) == (1, 0)
    assert [(r["number"], r["parent"]) for r in revs] == [(3, 2), (2, 1), (1, None)]
    assert [(r["number"], r["parent"]) for r in touching] == [(2, 1)]  # 2 removed it
    assert (detail["number"], detail["parent"]) == (2, 1)
    assert page.status_code == overview.status_code == 200
    assert found.pk == cluster.pk and found.status.desired.number == 3
    assert found.status.applied.number == 2
    assert (bundle[0].number, bundle[2]) == (3, [_vs("details")])
    assert [(r.attempt_id, r.revision.number) for r in reports] == [("a3", 2), ("a2", 2)]


def test_the_oldest_revision_s_parent_is_read_by_the_org(tenants):
    org = tenants.org
    _mesh(org)
    with CaptureQueriesContext(connection) as ctx:
        found = selectors.revisions_touching(
            org=org, namespace="bookinfo", service="reviews", limit=5
        )
        # revision 2 alone in the scan window: its parent is outside it
        two = Revision.objects.for_org(org).get(number=2).created_at
        window = selectors.revisions_touching(
            org=org, namespace="bookinfo", service="ratings", since=two, until=two
        )
        detail = selectors.revision_get(org=org, number=3, with_parent=True)
        assert detail.parent.number == 2
    assert [r.number for r, _ in found] == [2, 1]
    assert [(r.number, r.parent.number, t) for r, t in window] == [
        (2, 1, ["VirtualService bookinfo/ratings"])
    ]
    assert unrouted(ctx.captured_queries, MESH_READ_TABLES) == []
    assert unrouted_joins(ctx.captured_queries, MESH_READ_TABLES) == []


def test_the_join_checker_catches_select_related_and_accessors(tenants):
    org = tenants.org
    _mesh(org)
    with CaptureQueriesContext(connection) as ctx:
        old = Cluster.objects.for_org(org).select_related("status", "status__desired").get()
        rev = Revision.objects.for_org(org).get(number=3)
        assert rev.parent.number == 2  # the accessor: WHERE id = …
    assert old.status.desired.number == 3
    assert len(unrouted_joins(ctx.captured_queries, MESH_READ_TABLES)) == 1
    assert len(unrouted(ctx.captured_queries, MESH_READ_TABLES)) == 1


def test_the_operations_join_names_the_org_on_both_sides(tenants):
    with CaptureQueriesContext(connection) as ctx:
        assert operations_list(org_id=tenants.org.pk, service="nothing") == []
    tables = ("trace_operations", "trace_services")
    assert unrouted_joins(ctx.captured_queries, tables) == []
