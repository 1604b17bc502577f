"""Compaction merges the blocks that share (org, metric, window) into one: where a window's
compression becomes good and duplicates (a sender's retry) disappear for good."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from django.db import connection, transaction

from backend.metrics.storage import encoding
from backend.metrics.storage.blocks import BlockRow, blocks_fetch, blocks_insert


def blocks_compact(*, min_age_seconds: float = 30, max_groups: int = 200) -> int:
    """Merge blocks sharing (org, metric, window) once the newest of them is ``min_age`` old.
    Returns the number of groups merged."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT org_id, metric_name, window_start FROM metric_blocks
            GROUP BY 1, 2, 3
            HAVING count(*) > 1 AND (max(created_at) <= now() - %s OR count(*) >= 50)
            LIMIT %s
            """,
            [timedelta(seconds=min_age_seconds), max_groups],
        )
        groups = cur.fetchall()
    merged = 0
    for org_id, metric, window_start in groups:
        with transaction.atomic(), connection.cursor() as cur:
            # Lock the group's rows; a concurrent compactor skips them instead of waiting.
            found = blocks_fetch(
                cur,
                "org_id = %s AND metric_name = %s AND window_start = %s",
                [org_id, metric, window_start],
                lock=True,
            )
            if len(found) < 2:
                continue
            parts = [b.decode() for b in sorted(found, key=lambda b: b.id)]
            samples = encoding.normalize(
                np.concatenate([p.series for p in parts]),
                np.concatenate([p.timestamps for p in parts]),
                np.concatenate([p.values for p in parts]),
            )
            cur.execute(
                "DELETE FROM metric_blocks WHERE org_id = %s AND window_start = %s"
                " AND id = ANY(%s::bigint[])",
                [org_id, window_start, [b.id for b in found]],
            )
            blocks_insert([BlockRow(org_id, metric, window_start, encoding.encode(samples))])
            merged += 1
    return merged
