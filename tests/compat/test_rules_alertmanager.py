"""Canopy's alerts reach a real Alertmanager (Debian's 0.25) through its v2 API: firing, then
resolved, with labels and annotations as rendered, grouped as the Alertmanager is configured
(its webhook receiver shows what it would page with). Delivery failures are visible."""

from __future__ import annotations

import os
import time

import pytest

from backend.rules import notify, services
from backend.rules.models import Notification
from backend.rules.rulefile import group_parse
from backend.rules.selectors import delivery_status
from tests.compat.alertmanager_harness import (
    AlertmanagerNotInstalled,
    AlertmanagerServer,
    WebhookSink,
    find_alertmanager,
)
from tests.metrics.samples import counter, load
from tests.rules.raw_tables import _raw_sample_tables_emptied  # noqa: F401 - autouse

pytestmark = [pytest.mark.compat, pytest.mark.django_db(transaction=True)]

GROUP = """
name: mesh
rules:
- alert: ServiceDown
  expr: up == 0
  labels:
    severity: page
  annotations:
    summary: '{{ $labels.job }} is down ({{ $value }})'
"""


@pytest.fixture(scope="module")
def alertmanager_binary():
    try:
        return find_alertmanager()
    except AlertmanagerNotInstalled:
        if os.environ.get("CI"):
            pytest.fail("prometheus-alertmanager is not installed: .ci/run installs it")
        pytest.skip("prometheus-alertmanager is not installed")


def _deliver_all(org_id: int) -> list[str]:
    return [
        notify.notification_deliver(notification_id=pk, org_id=org_id)
        for pk in Notification.objects.for_org(org_id).values_list("pk", flat=True)
    ]


def test_firing_then_resolved_reach_alertmanager_grouped(tenants, alertmanager_binary):
    now_ms = int(time.time() * 1000)
    base = now_ms - 60_000
    load(
        tenants.org,
        {
            counter("up", job="api"): [(s, 0.0) for s in range(0, 61, 15)],
            counter("up", job="db"): [(s, 0.0) for s in range(0, 61, 15)],
        },
        base_ms=base,
    )
    group = services.group_save(org_id=tenants.org.pk, namespace="ns", group=group_parse(GROUP))
    with WebhookSink() as sink, AlertmanagerServer(webhook_url=sink.url) as am:
        services.alerting_targets_update(
            org_id=tenants.org.pk, targets={"alertmanagers": [{"url": am.url}], "webhooks": []}
        )
        outcome = services.group_evaluate(org_id=group.org_id, group_id=group.pk, ts_ms=now_ms)
        assert len(outcome.to_send) == 2
        assert _deliver_all(tenants.org.pk) == ["sent"]

        firing = sink.wait_for(lambda n: n["status"] == "firing" and len(n["alerts"]) == 2)
        assert firing["groupLabels"] == {"alertname": "ServiceDown"}
        got = sorted(firing["alerts"], key=lambda a: a["labels"]["job"])
        assert [a["labels"] for a in got] == [
            {"alertname": "ServiceDown", "job": "api", "severity": "page"},
            {"alertname": "ServiceDown", "job": "db", "severity": "page"},
        ]
        assert got[0]["annotations"] == {"summary": "api is down (0)"}
        assert got[0]["generatorURL"].endswith("/metrics?q=up%20%3D%3D%200")
        assert {a["status"]["state"] for a in am.alerts()} == {"active"}

        # the services come back: the next evaluation resolves both alerts
        load(
            tenants.org,
            {counter("up", job="api"): [(0, 1.0)], counter("up", job="db"): [(0, 1.0)]},
            base_ms=now_ms + 500,
        )
        outcome = services.group_evaluate(
            org_id=group.org_id, group_id=group.pk, ts_ms=now_ms + 1000
        )
        assert len(outcome.to_send) == 2
        assert {a["endsAt"] for a in outcome.to_send} == {outcome.to_send[0]["endsAt"]}
        time.sleep(max(0.0, (now_ms + 1100) / 1000 - time.time()))
        assert _deliver_all(tenants.org.pk) == ["sent"]
        resolved = sink.wait_for(lambda n: n["status"] == "resolved")
        assert sorted(a["labels"]["job"] for a in resolved["alerts"]) == ["api", "db"]
        assert all(a["status"] == "resolved" for a in resolved["alerts"])
    (status,) = delivery_status(org_id=tenants.org.pk)
    assert status["sentAlerts"] == 4 and status["lastError"] == ""


def test_delivery_errors_are_visible_and_retried_with_backoff(tenants):
    group = services.group_save(
        org_id=tenants.org.pk,
        namespace="ns",
        group=group_parse("name: v\nrules:\n- alert: Always\n  expr: vector(1)\n"),
    )
    services.alerting_targets_update(
        org_id=tenants.org.pk,
        targets={"alertmanagers": [{"url": "http://127.0.0.1:9"}], "webhooks": []},
    )
    services.group_evaluate(org_id=group.org_id, group_id=group.pk, ts_ms=int(time.time() * 1000))
    assert _deliver_all(tenants.org.pk) == ["retry"]
    (n,) = Notification.objects.for_org(tenants.org)
    assert n.attempts == 1 and "ConnectionError" in n.last_error
    assert n.next_attempt_at > n.created_at
    (status,) = delivery_status(org_id=tenants.org.pk)
    assert "ConnectionError" in status["lastError"] and status["queued"] == 1
    assert notify.notifications_due() == []  # not before its backoff


def test_retries_are_handed_out_once_when_due_and_lost_first_sends_recovered(tenants):
    import datetime as dt

    from django.utils import timezone

    group = services.group_save(
        org_id=tenants.org.pk,
        namespace="ns",
        group=group_parse("name: v\nrules:\n- alert: Always\n  expr: vector(1)\n"),
    )
    services.alerting_targets_update(
        org_id=tenants.org.pk,
        targets={"alertmanagers": [{"url": "http://127.0.0.1:9"}], "webhooks": []},
    )
    services.group_evaluate(org_id=group.org_id, group_id=group.pk, ts_ms=int(time.time() * 1000))
    (n,) = Notification.objects.for_org(tenants.org)
    assert notify.notifications_due() == []  # its first send is the queued task's
    past = timezone.now() - dt.timedelta(minutes=1)
    Notification.objects.for_org(tenants.org).update(created_at=past, next_attempt_at=past)
    assert notify.notifications_due() == [(n.org_id, n.pk)]  # that task was lost: beat picks it up
    assert notify.notifications_due() == []  # once
    assert notify.notification_deliver(notification_id=n.pk, org_id=n.org_id) == "retry"
    assert (
        notify.notification_deliver(notification_id=n.pk, org_id=n.org_id) == "not-due"
    )  # a duplicate
    assert Notification.objects.for_org(tenants.org).get().attempts == 1
