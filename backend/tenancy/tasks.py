"""Tenancy's background work: purging deleted organizations (thin: ids in, service call)."""

from celery import shared_task

from backend.tenancy import services
from backend.tenancy.models import OrgDeletion


@shared_task(name="backend.tenancy.tasks.purge_deleted_orgs", acks_late=True)
def purge_deleted_orgs() -> int:
    """Purge every org whose deletion is requested and not finished (beat, every minute; a
    purge interrupted by a dead worker is simply done again: deletes are idempotent)."""
    done = 0
    for deletion in OrgDeletion.objects.filter(finished_at=None).order_by("requested_at"):
        services.org_purge(deletion=deletion)
        done += 1
    return done
