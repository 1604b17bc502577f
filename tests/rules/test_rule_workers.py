"""Rule evaluation in real Celery workers: two workers handed the same group evaluate each
slot once; a worker killed (SIGKILL) and replaced does not reset ``for`` or send the
firing alert again before its resend delay.

Beat is played by the test: it calls ``schedule_due`` (what beat runs every tick) itself.
Only the ``rules`` queue is consumed, so the rules' samples stay in the outbox, one batch per
evaluation, where they can be counted."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from backend.metrics.storage import encoding
from backend.rules import services, tasks
from backend.rules.models import AlertingConfig, AlertState, RuleGroup
from backend.rules.rulefile import group_parse
from backend.tenancy.services import org_create, user_get_or_create
from tests.compat.alertmanager_harness import WebhookSink
from tests.workers import celery_worker, kill, wait_until


@pytest.fixture
def org(transactional_db):
    org = org_create(slug="acme", name="Acme", owner=user_get_or_create(username="ops"))
    AlertingConfig.objects.for_org(org).create(org=org, min_interval_seconds=1)
    yield org
    with connection.cursor() as cur:  # raw tables are not flushed between transactional tests
        cur.execute("DELETE FROM metric_batches WHERE org_id = %s", [org.pk])
        cur.execute("DELETE FROM metric_blocks WHERE org_id = %s", [org.pk])


def _batch_timestamps(org) -> list[int]:
    with connection.cursor() as cur:
        cur.execute("SELECT timestamps FROM metric_batches WHERE org_id = %s", [org.pk])
        rows = cur.fetchall()
    return [int(encoding.unpack(bytes(t), "<i8")[0]) for (t,) in rows]


def test_two_workers_never_evaluate_a_slot_twice(org, tmp_path):
    group = services.group_save(
        org_id=org.pk,
        namespace="ns",
        group=group_parse("name: g\ninterval: 1s\nrules:\n- record: one\n  expr: vector(1)\n"),
    )
    log = tmp_path / "workers.log"
    with celery_worker(queues="rules", log_path=log), celery_worker(queues="rules", log_path=log):

        def tick():
            for _ in range(3):  # a beat tick delivered thrice (a redelivery, two beats)
                tasks.schedule_due.delay()
                tasks.evaluate_group.delay(group.pk)  # the id alone: a pre-upgrade message
            return RuleGroup.objects.for_org(org).get(pk=group.pk).last_eval_ms

        first = wait_until(tick, 60, "no evaluation", interval=0.25)
        wait_until(lambda: tick() >= first + 3000, 30, "evaluations stopped", interval=0.25)
        time.sleep(1)  # let the queued tasks finish
    stamps = _batch_timestamps(org)
    assert len(stamps) >= 3, log.read_text()[-2000:]
    assert len(stamps) == len(set(stamps)), sorted(stamps)  # one evaluation per slot
    assert all(t % 1000 == stamps[0] % 1000 for t in stamps)  # on the group's own slots


def test_a_worker_restart_keeps_for_and_sends_no_storm(org, tmp_path):
    group = services.group_save(
        org_id=org.pk,
        namespace="ns",
        group=group_parse(
            "name: g\ninterval: 1s\nrules:\n- alert: Always\n  expr: vector(1)\n  for: 2s\n"
        ),
    )
    log = tmp_path / "workers.log"
    with WebhookSink() as sink:
        services.alerting_targets_update(
            org_id=org.pk, targets={"alertmanagers": [], "webhooks": [{"url": sink.url}]}
        )

        def tick_until(predicate, timeout, message):
            def check():
                tasks.schedule_due.delay()
                return predicate()

            return wait_until(check, timeout, message, interval=0.3)

        with celery_worker(queues="rules", log_path=log) as first:
            tick_until(lambda: sink.received, 30, "the firing alert was not delivered")
            kill(first)  # SIGKILL, mid-whatever
        (before,) = AlertState.objects.for_org(org).filter(state="firing")
        with celery_worker(queues="rules", log_path=log):
            last = RuleGroup.objects.for_org(org).get(pk=group.pk).last_eval_ms
            tick_until(
                lambda: RuleGroup.objects.for_org(org).get(pk=group.pk).last_eval_ms > last + 2000,
                30,
                "the new worker did not evaluate",
            )
        (after,) = AlertState.objects.for_org(org).filter(state="firing")
    assert after.active_at_ms == before.active_at_ms  # `for` ran on across the restart
    assert after.fired_at_ms == before.fired_at_ms
    # one notification: the next is due only after the 1-minute resend delay
    assert len(sink.received) == 1, sink.received
    assert sink.received[0][0]["labels"] == {"alertname": "Always"}
