"""Retention of one org's spans: head rows by start time, blocks whole (a block is dropped
once its newest span is past the cutoff). Whole days go with their partitions (pipeline)."""

from __future__ import annotations

from django.db import connection


def org_spans_delete_before(*, org_id: int, cutoff_ns: int) -> int:
    with connection.cursor() as cur:
        cur.execute(
            "DELETE FROM trace_spans WHERE org_id = %s AND start_ns < %s", [org_id, cutoff_ns]
        )
        removed = cur.rowcount
        cur.execute(
            "DELETE FROM trace_span_keys WHERE org_id = %s AND start_ns < %s", [org_id, cutoff_ns]
        )
        cur.execute(
            "DELETE FROM trace_blocks WHERE org_id = %s AND max_start_ns < %s RETURNING n_spans",
            [org_id, cutoff_ns],
        )
        return removed + sum(r[0] for r in cur.fetchall())
