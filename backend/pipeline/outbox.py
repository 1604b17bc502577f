"""Asking for a drain after a batch was committed to a signal's outbox."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from backend.pipeline.registry import signal_get
from backend.pipeline.tasks import drain_queue


def drain_requested(*, signal: str, org_id: int) -> None:
    """Queue a drain of the org's outbox, to run after INGEST_DRAIN_DELAY_SECONDS (at once
    for a signal whose drains run side by side), unless one is already queued: the batches
    of every request arriving meanwhile are drained together.
    """
    delay = None if signal_get(signal).side_by_side else settings.INGEST_DRAIN_DELAY_SECONDS

    def request() -> None:
        drain_queue(signal, org_id, countdown=delay or None)

    # Inside a transaction (the span-metrics rollup), the task must not run before the batch
    # is committed; in autocommit (the receivers) this runs at once.
    transaction.on_commit(request)
