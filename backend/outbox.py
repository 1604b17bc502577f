"""Queueing and running the drain of an org's outbox (``metric_batches``, ``trace_batches``)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django_redis import get_redis_connection

_PENDING_TTL = 10  # seconds; a lost task is picked up by the outbox sweep anyway


def _key(kind: str, org_id: int) -> str:
    return f"canopy:drain-pending:{kind}:{org_id}"


def drain_requested(kind: str, org_id: int, task) -> None:
    """Queue ``task(org_id)``, to run after INGEST_DRAIN_DELAY_SECONDS, unless one is already
    queued for this org.

    The task calls :func:`drain_started` before it claims batches, so a batch committed before
    a refused SET NX is always seen by the queued task.
    """

    def request() -> None:
        if get_redis_connection("default").set(_key(kind, org_id), 1, nx=True, ex=_PENDING_TTL):
            task.apply_async((org_id,), countdown=settings.INGEST_DRAIN_DELAY_SECONDS or None)

    # Inside a transaction (the span-metrics rollup), the task must not run before the batch
    # is committed; in autocommit (the receivers) this runs at once.
    transaction.on_commit(request)


def drain_started(kind: str, org_id: int) -> None:
    get_redis_connection("default").delete(_key(kind, org_id))


def drain(kind: str, org_id: int, drain_once, *, max_rounds: int = 20) -> int:
    """What a drain task does: clear the pending flag, then call ``drain_once()`` (which
    returns what it stored, or None when it claimed no batch) until the outbox is empty."""
    drain_started(kind, org_id)
    stored = 0
    for _ in range(max_rounds):
        moved = drain_once()
        if moved is None:
            break
        stored += moved
    return stored
