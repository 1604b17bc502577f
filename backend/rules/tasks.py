"""Celery tasks of the rules room: thin, ids in (queue: ``rules``, see backend/celery.py)."""

from __future__ import annotations

import time

from celery import shared_task

from backend.rules import notify, services


@shared_task
def schedule_due() -> int:
    """Beat's tick: hand every due group to a worker, and every due delivery retry."""
    now_ms = int(time.time() * 1000)
    due = services.groups_due(now_ms=now_ms)
    for org_id, group_id in due:
        evaluate_group.delay(group_id, org_id)
    for org_id, notification_id in notify.notifications_due():
        deliver_notification.delay(notification_id, org_id)
    return len(due)


# The org follows the id (second, optional): every statement of the task names it, and a
# message queued before it was added (the id alone) still runs, looking the org up once.


@shared_task
def evaluate_group(group_id: int, org_id: int | None = None) -> int | None:
    """Evaluate the group at its latest due slot, unless another worker has it (then
    nothing): the evaluation time, or None."""
    done = services.group_evaluate_due(org_id=org_id, group_id=group_id)
    return done.ts_ms if done else None


@shared_task
def deliver_notification(notification_id: int, org_id: int | None = None) -> str:
    return notify.notification_deliver(notification_id=notification_id, org_id=org_id)
