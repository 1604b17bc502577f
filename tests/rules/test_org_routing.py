"""The rules' background paths name the org in every statement on the rules' tables, so each
routes to one shard once the tables are distributed by ``org_id`` (docs/scaling.md): beat
hands out (org, id) pairs, the evaluation and the delivery filter by (org_id, pk), and their
updates and deletes are not ``save()``/``delete()``'s ``WHERE id = …``. A task queued before
the org went with the id (the id alone) still runs."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from backend.rules import notify, services, tasks
from backend.rules.models import AlertingConfig, AlertState, Notification, RuleGroup
from backend.rules.rulefile import group_parse
from tests.compat.alertmanager_harness import WebhookSink
from tests.helpers.org_routing import tables_named, unrouted

pytestmark = pytest.mark.django_db(transaction=True)

RULE_TABLES = (
    "rule_groups",
    "rule_alerts",
    "rule_notifications",
    "rule_delivery_status",
    "rule_alerting_config",
)
ALWAYS = "name: g\ninterval: 1m\nrules:\n- alert: Always\n  expr: vector(1)\n"
DEAD_TARGET = "http://127.0.0.1:1/hook"  # nothing listens: a failed post, kept for a retry


def _tables(sql: str) -> set[str]:
    return tables_named(sql, RULE_TABLES)


def _unrouted(queries: list[dict]) -> list[str]:
    return unrouted(queries, RULE_TABLES)


def _due(group: RuleGroup) -> None:
    RuleGroup.objects.for_org(group.org_id).filter(pk=group.pk).update(next_eval_ms=0)


def test_the_background_paths_name_the_org_in_every_statement(tenants):
    org = tenants.org
    group = services.group_save(org_id=org.pk, namespace="ns", group=group_parse(ALWAYS))
    _due(group)
    with WebhookSink() as sink:
        services.alerting_targets_update(
            org_id=org.pk, targets={"webhooks": [{"url": sink.url}, {"url": DEAD_TARGET}]}
        )
        with CaptureQueriesContext(connection) as ctx:
            assert tasks.evaluate_group(group.pk, org.pk) is not None
            outcomes = {
                n.target_url: tasks.deliver_notification(n.pk, n.org_id)
                for n in Notification.objects.for_org(org)
            }
            assert outcomes == {sink.url: "sent", DEAD_TARGET: "retry"}
            assert len(sink.received) == 1
            # the failing target is removed: its retry is dropped
            services.alerting_targets_update(org_id=org.pk, targets={"webhooks": []})
            (n,) = Notification.objects.for_org(org)
            Notification.objects.for_org(org).filter(pk=n.pk).update(next_attempt_at=timezone.now())
            assert tasks.deliver_notification(n.pk, n.org_id) == "dropped"
            # the ruler API's writes: a replaced group, then deleted with its alerts
            assert AlertState.objects.for_org(org).filter(group_id=group.pk).exists()
            replaced = group_parse(ALWAYS.replace("vector(1)", "vector(2)"))
            services.namespace_replace(org_id=org.pk, namespace="ns", groups=[replaced])
            services.namespace_replace(org_id=org.pk, namespace="ns", groups=[])
    assert not RuleGroup.objects.for_org(org).exists()
    assert not AlertState.objects.for_org(org).exists()
    assert not Notification.objects.for_org(org).exists()
    seen = set().union(*(_tables(q["sql"]) for q in ctx.captured_queries))
    assert seen == set(RULE_TABLES)  # the capture did cover every table
    assert _unrouted(ctx.captured_queries) == []


def test_the_checker_catches_a_statement_by_bare_id(tenants):
    group = services.group_save(org_id=tenants.org.pk, namespace="ns", group=group_parse(ALWAYS))
    with CaptureQueriesContext(connection) as ctx:
        group.save()  # Django's UPDATE … WHERE id = …
        RuleGroup.objects.unscoped().filter(pk=group.pk).first()
    assert len(_unrouted(ctx.captured_queries)) == 2


def test_tasks_queued_with_the_id_alone_still_run(tenants):
    """Messages from before the upgrade: ``evaluate_group(group_id)``,
    ``deliver_notification(notification_id)``."""
    org = tenants.org
    group = services.group_save(org_id=org.pk, namespace="ns", group=group_parse(ALWAYS))
    _due(group)
    AlertingConfig.objects.for_org(org).update_or_create(
        org=org, defaults={"targets": {"webhooks": [{"url": DEAD_TARGET}]}}
    )
    assert tasks.evaluate_group.apply(args=(group.pk,)).get() is not None
    assert RuleGroup.objects.for_org(org).get(pk=group.pk).last_eval_ms is not None
    (n,) = Notification.objects.for_org(org)
    assert tasks.deliver_notification.apply(args=(n.pk,)).get() == "retry"
    assert Notification.objects.for_org(org).get(pk=n.pk).attempts == 1
    # rows deleted since the message was queued
    assert tasks.evaluate_group.apply(args=(10**12,)).get() is None
    assert tasks.deliver_notification.apply(args=(10**12,)).get() == "gone"


def test_an_org_that_does_not_own_the_row_finds_nothing(tenants):
    org, other = tenants.org, tenants.other_org
    group = services.group_save(org_id=org.pk, namespace="ns", group=group_parse(ALWAYS))
    _due(group)
    assert services.group_evaluate_due(org_id=other.pk, group_id=group.pk) is None
    assert RuleGroup.objects.for_org(org).get(pk=group.pk).last_eval_ms is None
    n = Notification.objects.for_org(org).create(
        org=org, target_url=DEAD_TARGET, payload={"alerts": [{}]}, next_attempt_at=timezone.now()
    )
    assert notify.notification_deliver(notification_id=n.pk, org_id=other.pk) == "gone"
    assert Notification.objects.for_org(org).get(pk=n.pk).attempts == 0


def test_beat_and_the_evaluation_hand_out_the_org_with_the_id(tenants, monkeypatch):
    org = tenants.org
    group = services.group_save(org_id=org.pk, namespace="ns", group=group_parse(ALWAYS))
    _due(group)
    AlertingConfig.objects.for_org(org).update_or_create(
        org=org, defaults={"targets": {"webhooks": [{"url": DEAD_TARGET}]}}
    )
    sent = []

    class App:
        def send_task(self, name, args):
            sent.append((name, args))

    monkeypatch.setattr(notify, "current_app", App())
    assert services.group_evaluate_due(org_id=org.pk, group_id=group.pk) is not None
    (n,) = Notification.objects.for_org(org)
    assert sent == [(notify.DELIVER_TASK, (n.pk, org.pk))]
    # beat: the group due again, the notification's first task lost
    _due(group)
    Notification.objects.for_org(org).filter(pk=n.pk).update(
        created_at=timezone.now() - notify.LOST_AFTER * 2
    )
    handed = []
    monkeypatch.setattr(tasks.evaluate_group, "delay", lambda *a: handed.append(("eval", a)))
    monkeypatch.setattr(tasks.deliver_notification, "delay", lambda *a: handed.append(("n", a)))
    tasks.schedule_due()
    assert handed == [("eval", (group.pk, org.pk)), ("n", (n.pk, org.pk))]


def test_the_group_lock_takes_ids_past_32_bits(tenants):
    """The lock's key is a 64-bit hash of (org, group): the former two-int4 key failed with
    "integer out of range" for a group id past 2**31."""
    org = tenants.org
    big = 2**33 + 7
    RuleGroup.objects.for_org(org).create(
        id=big,
        org=org,
        namespace="ns",
        name="big",
        rules=[r.as_dict() for r in group_parse(ALWAYS).rules],
    )
    done = services.group_evaluate_due(org_id=org.pk, group_id=big)
    assert done is not None and done.group_id == big
