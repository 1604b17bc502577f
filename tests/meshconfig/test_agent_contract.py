"""The calls the agent side relies on: bundle_for_cluster, cluster_report, cluster_state and
the NOTIFY after a rollout."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, transaction
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


def test_report_is_one_round_trip_and_loads_no_bundle(tenants, django_assert_num_queries):
    cluster, _ = services.cluster_create(org=tenants.org, name="east")
    rev = _publish(tenants.org).revision
    services.rollout_create(org=tenants.org, revision=1, clusters=["east"])
    with django_assert_num_queries(1):
        status = services.cluster_report(
            cluster=cluster, revision=1, attempt_id="a1", state="ACK", agent_version="agent/1"
        )
    assert (status.state, status.applied, status.attempted_id) == (SyncState.SYNCED, rev, rev.pk)
    assert status.desired.digest == rev.digest and status.applied.number == 1
    assert "resources" in status.desired.get_deferred_fields()
    assert (status.last_attempt_id, status.agent_version, status.error) == ("a1", "agent/1", {})
    # A repeat is one round trip too, and only a heartbeat.
    before = status.last_seen
    with django_assert_num_queries(1):
        again = services.cluster_report(cluster=cluster, revision=1, attempt_id="a1", state="NACK")
    assert again.state == SyncState.SYNCED and again.error == {} and again.last_seen > before
    assert again.agent_version == "agent/1"  # an empty version keeps the last one
    stored = ClusterStatus.objects.for_org(tenants.org).get(cluster=cluster)
    assert (stored.state, stored.applied_id, stored.last_seen) == (
        SyncState.SYNCED,
        rev.pk,
        again.last_seen,
    )


def test_report_states_for_other_revisions_and_the_empty_bundle(tenants):
    cluster, _ = services.cluster_create(org=tenants.org, name="east")
    # Nothing desired: an ACK of the empty bundle is SYNCED.
    status = services.cluster_report(cluster=cluster, revision=None, attempt_id="e", state="ACK")
    assert selectors.cluster_state(status) == SyncState.SYNCED and status.applied is None
    _publish(tenants.org)
    second = VS | {"metadata": {"name": "ratings", "namespace": "bookinfo"}}
    _publish(tenants.org, resources=(VS, second))
    services.rollout_create(org=tenants.org, revision=2, clusters=["east"])
    # An ACK of an older revision: applied, still APPLYING the desired one.
    status = services.cluster_report(cluster=cluster, revision=1, attempt_id="o", state="ACK")
    assert status.state == SyncState.APPLYING and status.applied.number == 1
    # A NACK of a revision that is not desired keeps the state, records the default error.
    status = services.cluster_report(cluster=cluster, revision=1, attempt_id="n", state="NACK")
    assert status.state == SyncState.APPLYING
    assert status.error == {"message": "refused by the agent"}
    assert status.applied.number == 1 and status.attempted_id is not None
    # A NACK of the desired revision is NACK.
    status = services.cluster_report(cluster=cluster, revision=2, attempt_id="d", state="NACK")
    assert selectors.cluster_state(status) == SyncState.NACK
    rows = {r.attempt_id: r for r in selectors.agent_reports(cluster=cluster)}
    assert rows["n"].state == "NACK" and rows["n"].error == {} and rows["e"].revision is None
    for bad in (0, -1, 2**31, 2**63):
        with pytest.raises(services.MeshConfigError, match="no revision"):
            services.cluster_report(cluster=cluster, revision=bad, attempt_id="x", state="ACK")
    assert "x" not in {r.attempt_id for r in selectors.agent_reports(cluster=cluster)}


def test_report_keeps_the_newest_reports(tenants):
    cluster, _ = services.cluster_create(org=tenants.org, name="east")
    other, _ = services.cluster_create(org=tenants.org, name="west")
    services.cluster_report(cluster=other, revision=None, attempt_id="w", state="ACK")
    for i in range(services.REPORTS_KEPT + 3):
        services.cluster_report(cluster=cluster, revision=None, attempt_id=f"r{i}", state="ACK")
    kept = set(cluster.reports.values_list("attempt_id", flat=True))
    assert len(kept) == services.REPORTS_KEPT
    assert {"r0", "r1", "r2"}.isdisjoint(kept) and f"r{services.REPORTS_KEPT + 2}" in kept
    assert other.reports.count() == 1


@pytest.mark.django_db(transaction=True)
def test_report_waiting_on_a_rollback_compares_with_the_new_revision(tenants):
    """A report that waits for the status row while a rollback (a new revision and the
    rollout to it, one transaction) commits sees a desired revision newer than its
    snapshot: it is still SYNCED when it applied the same bundle."""
    cluster, _ = services.cluster_create(org=tenants.org, name="east")
    _publish(tenants.org)
    second = VS | {"metadata": {"name": "ratings", "namespace": "bookinfo"}}
    _publish(tenants.org, resources=(VS, second))
    services.rollout_create(org=tenants.org, revision=2, clusters=["east"])
    services.cluster_report(cluster=cluster, revision=2, attempt_id="a0", state="ACK")
    locked, failures = threading.Event(), []

    def rollback():
        try:
            with transaction.atomic():
                services.revision_rollback(org=tenants.org, number=1)  # revision 3 == 1
                locked.set()
                # Commit once the report waits for the row this transaction holds.
                with connection.cursor() as cursor:
                    for _ in range(500):
                        cursor.execute("SELECT pg_stat_clear_snapshot()")
                        cursor.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type ="
                            " 'Lock' AND datname = current_database()"
                        )
                        if cursor.fetchone()[0]:
                            break
                        time.sleep(0.01)
                    else:
                        failures.append("the report never waited for the row")
        except Exception as exc:  # noqa: BLE001 - reported to the test below
            failures.append(repr(exc))
        finally:
            connection.close()
            locked.set()

    thread = threading.Thread(target=rollback)
    thread.start()
    assert locked.wait(30)
    status = services.cluster_report(cluster=cluster, revision=1, attempt_id="a1", state="ACK")
    thread.join(30)
    assert not failures
    assert status.desired.number == 3 and status.applied.number == 1
    assert selectors.cluster_state(status) == SyncState.SYNCED
    stored = ClusterStatus.objects.for_org(tenants.org).get(cluster=cluster)
    assert stored.state == SyncState.SYNCED and stored.desired.number == 3
