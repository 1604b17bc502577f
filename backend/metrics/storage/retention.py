"""Per-org retention of samples (whole partitions are dropped by ``backend.pipeline``)."""

from __future__ import annotations

from django.db import connection

from backend.metrics.storage import late_writes
from backend.metrics.storage.blocks import WINDOW_MS


def org_samples_delete_before(*, org_id: int, cutoff_ms: int) -> int:
    """Per-tenant retention shorter than the global one: delete that org's older blocks."""
    with connection.cursor() as cur:
        cur.execute(
            "DELETE FROM metric_blocks WHERE org_id = %s AND window_start + %s <= %s",
            [org_id, WINDOW_MS, cutoff_ms],
        )
        deleted = cur.rowcount
    if deleted:
        late_writes.samples_deleted(org_id=org_id)
    return deleted
