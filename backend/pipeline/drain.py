"""Running the drain of an org's outbox, and finding outboxes nobody drained."""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection
from django_redis import get_redis_connection
from psycopg import sql

from backend.pipeline.registry import signal_get

PENDING_TTL_SECONDS = 10  # a lost task is picked up by the outbox sweep anyway


def pending_key(signal: str, org_id: int) -> str:
    return f"canopy:drain-pending:{signal}:{org_id}"


def org_drain(
    *, signal: str, org_id: int, max_rounds: int = 20, helper: Callable[[], None] | None = None
) -> int:
    """What the drain task does: clear the org's pending flag, then drain round after round
    until the outbox is empty; returns what was stored.

    The flag is cleared *before* batches are claimed, so a batch committed before another
    request's refused SET NX (see ``outbox.drain_requested``) is always seen here. Where the
    signal's drains run side by side, each round that stored something calls ``helper``
    (the drain task: queue another drain at once under the same flag, so at most one is
    queued), which finds nothing to claim once the outbox is empty.
    """
    store = signal_get(signal)
    get_redis_connection("default").delete(pending_key(signal, org_id))
    stored = 0
    for _ in range(max_rounds):
        moved = store.drain_once(org_id)
        if moved is None:
            break
        stored += moved
        if helper is not None and store.side_by_side:  # more may be waiting: an idle
            helper()  # worker may help
    return stored


def orgs_with_pending_batches(*, signal: str, older_than_seconds: float = 0) -> list[int]:
    """Orgs with outbox rows at least this old (the sweep re-queues their drains)."""
    table = signal_get(signal).outbox_table
    with connection.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT DISTINCT org_id FROM {} "
                "WHERE received_at <= now() - make_interval(secs => %s) ORDER BY org_id"
            ).format(sql.Identifier(table)),
            [older_than_seconds],
        )
        return [row[0] for row in cur.fetchall()]
