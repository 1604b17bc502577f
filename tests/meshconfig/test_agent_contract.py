"""The calls the agent side relies on: bundle_for_cluster, cluster_report, cluster_state and
the NOTIFY after a rollout."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from backend.meshconfig import selectors, services
from backend.meshconfig.bundle import EMPTY_DIGEST
from backend.meshconfig.models import ClusterStatus, SyncState
from backend.meshconfig.notify import NOTIFY_CHANNEL, notify_payload_parse

VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "bookinfo"},
    "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
}


def _publish(org, resources=(VS,), **kwargs):
    return services.revision_publish(org=org, resources=list(resources), force=True, **kwargs)


def test_bundle_before_and_after_rollout(tenants):
    cluster, secret = services.cluster_create(org=tenants.org, name="east", labels={"env": "prod"})
    assert secret.startswith("cnp_")
    assert selectors.bundle_for_cluster(cluster=cluster) == (None, EMPTY_DIGEST, [])
    rev = _publish(tenants.org).revision
    services.rollout_create(org=tenants.org, revision=rev.number, clusters=["east"])
    got, digest, resources = selectors.bundle_for_cluster(cluster=cluster)
    assert (got.number, digest) == (1, rev.digest)
    assert resources[0]["metadata"] == {"name": "reviews", "namespace": "bookinfo"}
    assert selectors.cluster_for_token(token=cluster.agent_token) == cluster


def test_report_is_idempotent_and_states_follow(tenants):
    cluster, _ = services.cluster_create(org=tenants.org, name="east")
    assert selectors.cluster_state(cluster.status) == SyncState.DISCONNECTED
    rev = _publish(tenants.org).revision
    services.rollout_create(org=tenants.org, revision=1, clusters=["east"])
    services.cluster_seen(cluster=cluster, wait_seconds=30)
    status = ClusterStatus.objects.for_org(tenants.org).get(cluster=cluster)
    assert selectors.cluster_state(status) == SyncState.APPLYING
    nack = {"message": "denied", "resource": {"kind": "VirtualService"}}
    status = services.cluster_report(
        cluster=cluster, revision=1, attempt_id="a1", state="NACK", error=nack
    )
    assert selectors.cluster_state(status) == SyncState.NACK and status.error == nack
    status = services.cluster_report(cluster=cluster, revision=1, attempt_id="a2", state="ACK")
    assert selectors.cluster_state(status) == SyncState.SYNCED and status.applied == rev
    # The retried NACK a1 changes nothing.
    status = services.cluster_report(
        cluster=cluster, revision=1, attempt_id="a1", state="NACK", error=nack
    )
    assert selectors.cluster_state(status) == SyncState.SYNCED
    assert cluster.reports.count() == 2
    later = timezone.now() + timedelta(seconds=91)
    assert selectors.cluster_state(status, later) == SyncState.DISCONNECTED
    with pytest.raises(services.MeshConfigError):
        services.cluster_report(cluster=cluster, revision=9, attempt_id="a3", state="ACK")


@pytest.mark.django_db(transaction=True)
def test_rollout_notifies_listeners_at_commit(tenants):
    cluster, _ = services.cluster_create(org=tenants.org, name="east")
    _publish(tenants.org)
    params = connection.get_connection_params()
    dsn = {k: v for k, v in params.items() if k in ("host", "port", "user", "password", "dbname")}
    with psycopg.connect(**dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        services.rollout_create(org=tenants.org, revision=1, clusters=["east"])
        got = next(listener.notifies(timeout=5, stop_after=1))
    assert notify_payload_parse(got.payload) == (tenants.org.pk, [cluster.pk])
