"""Celery tasks of the tracing domain: thin wrappers that take ids and call services."""

from celery import shared_task

from backend.tracing import dependencies, services, storage


@shared_task(acks_late=True, reject_on_worker_lost=True)
def drain_org(org_id: int) -> int:
    return services.org_drain(org_id=org_id)


@shared_task
def sweep_outbox() -> int:
    """Re-queue drains for batches nobody picked up (a lost task, Redis restarted empty)."""
    orgs = storage.orgs_with_pending_batches(older_than_seconds=20)
    for org_id in orgs:
        drain_org.delay(org_id)
    return len(orgs)


@shared_task
def apply_retention() -> dict:
    return services.retention_apply()


@shared_task
def rollup_dependencies() -> int:
    return dependencies.rollup_due()
