"""The pipeline's Celery tasks, the same for every signal: thin wrappers over its services."""

from celery import shared_task
from django_redis import get_redis_connection

from backend.pipeline import drain, retention
from backend.pipeline.registry import signals_all

SWEEP_AFTER_SECONDS = 20


@shared_task(acks_late=True, reject_on_worker_lost=True)
def drain_org(signal: str, org_id: int) -> int:
    return drain.org_drain(signal=signal, org_id=org_id, helper=lambda: drain_queue(signal, org_id))


def drain_queue(signal: str, org_id: int, countdown: float | None = None) -> None:
    """Queue a drain of the org's outbox unless one is queued already (the pending flag)."""
    key = drain.pending_key(signal, org_id)
    if get_redis_connection("default").set(key, 1, nx=True, ex=drain.PENDING_TTL_SECONDS):
        drain_org.apply_async((signal, org_id), countdown=countdown)


@shared_task
def sweep_outbox() -> int:
    """Re-queue drains for batches nobody picked up (a lost task, Redis restarted empty)."""
    queued = 0
    for store in signals_all():
        for org_id in drain.orgs_with_pending_batches(
            signal=store.name, older_than_seconds=SWEEP_AFTER_SECONDS
        ):
            drain_org.delay(store.name, org_id)
            queued += 1
    return queued


@shared_task
def apply_retention() -> dict:
    return {store.name: retention.retention_apply(signal=store.name) for store in signals_all()}
