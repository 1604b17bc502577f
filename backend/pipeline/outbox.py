"""Asking for a drain after a batch was committed to a signal's outbox."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from backend.pipeline.tasks import drain_queue


def drain_requested(*, signal: str, org_id: int) -> None:
    """Queue a drain of the org's outbox, to run after INGEST_DRAIN_DELAY_SECONDS, unless one
    is already queued: the batches of every request arriving meanwhile are drained together.
    """

    def request() -> None:
        drain_queue(signal, org_id, countdown=settings.INGEST_DRAIN_DELAY_SECONDS or None)

    # Inside a transaction (the span-metrics rollup), the task must not run before the batch
    # is committed; in autocommit (the receivers) this runs at once.
    transaction.on_commit(request)
