"""Asking for a drain after a batch was committed to a signal's outbox."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django_redis import get_redis_connection

from backend.pipeline.drain import PENDING_TTL_SECONDS, pending_key
from backend.pipeline.tasks import drain_org


def drain_requested(*, signal: str, org_id: int, at_once: bool = False) -> None:
    """Queue a drain of the org's outbox, to run after INGEST_DRAIN_DELAY_SECONDS (``at_once``:
    now), unless one is already queued: the batches of every request arriving meanwhile are
    drained together.
    """

    def request() -> None:
        key = pending_key(signal, org_id)
        if get_redis_connection("default").set(key, 1, nx=True, ex=PENDING_TTL_SECONDS):
            delay = None if at_once else settings.INGEST_DRAIN_DELAY_SECONDS or None
            drain_org.apply_async((signal, org_id), countdown=delay)

    # Inside a transaction (the span-metrics rollup), the task must not run before the batch
    # is committed; in autocommit (the receivers) this runs at once.
    transaction.on_commit(request)
