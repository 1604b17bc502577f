"""The service dependency graph: per-org, per-minute edges parent service → child service,
rolled up from the span store by a beat job, so ``/api/dependencies`` and the dashboard's
service map read small rollups instead of scanning spans.

An edge is counted for every span whose parent span belongs to another service, and for every
leaf client span whose ``peer.service`` attribute names an uninstrumented peer. Each edge keeps
a latency histogram of the called (server) span and of the calling (client) span; for an
uninstrumented peer both are the client span's. Minutes are
rolled up once they are ``LATE_MS`` old; a span arriving later than that is not counted.
Re-rolling a minute deletes and recomputes its edges, so the job is idempotent.
"""

from __future__ import annotations

import time

from django.db import connection, transaction

from backend.tracing import span_metrics
from backend.tracing.models import RollupState

MINUTE_MS = 60_000
LATE_MS = 2 * MINUTE_MS  # how long to wait for late spans before rolling a minute up
MAX_MINUTES_PER_RUN = 24 * 60  # a run catches up on up to a day
BATCH_MINUTES = 60  # minutes rolled up by one statement, and committed together
FIRST_RUN_LOOKBACK_MS = 60 * MINUTE_MS
STATE = "dependencies"

_ROLLUP = """
WITH edges AS (
    -- a child span whose parent belongs to another service
    SELECT c.org_id, c.start_ns / 60000000000 * 60000 AS minute, ps.name AS parent,
           cs.name AS child, c.status_code, c.duration_ns, p.duration_ns AS client_ns
    FROM trace_spans c
    JOIN trace_spans p ON p.org_id = c.org_id AND p.trace_id = c.trace_id
                      AND p.span_id = c.parent_span_id
    JOIN trace_services ps ON ps.id = p.service_id
    JOIN trace_services cs ON cs.id = c.service_id
    WHERE c.start_ns >= %(lo)s AND c.start_ns < %(hi)s AND p.service_id <> c.service_id
    UNION ALL
    -- a leaf client span calling an uninstrumented peer
    SELECT c.org_id, c.start_ns / 60000000000 * 60000, cs.name,
           left(c.attributes->>'peer.service', 512), c.status_code, c.duration_ns, c.duration_ns
    FROM trace_spans c
    JOIN trace_services cs ON cs.id = c.service_id
    WHERE c.start_ns >= %(lo)s AND c.start_ns < %(hi)s AND c.kind = 3
      AND c.attributes ? 'peer.service' AND c.attributes->>'peer.service' <> cs.name
      AND NOT EXISTS (SELECT 1 FROM trace_spans k WHERE k.org_id = c.org_id
                      AND k.trace_id = c.trace_id AND k.parent_span_id = c.span_id)
)
INSERT INTO trace_dependency_edges (org_id, minute, parent, child, calls, errors,
                                    duration_ns_sum, duration_buckets,
                                    client_duration_ns_sum, client_duration_buckets)
SELECT org_id, minute, parent, child, count(*), count(*) FILTER (WHERE status_code = 2),
       sum(duration_ns), ARRAY[{server_buckets}], sum(client_ns), ARRAY[{client_buckets}]
FROM edges GROUP BY org_id, minute, parent, child
"""
# The bucket bounds are constants of span_metrics, not input.
_ROLLUP = _ROLLUP.replace(
    "{server_buckets}", span_metrics.bucket_counts_sql("duration_ns")
).replace("{client_buckets}", span_metrics.bucket_counts_sql("client_ns"))


def rollup_minutes(first_ms: int, end_ms: int) -> None:
    """(Re)compute the edges of the minutes in [first, end) for every org, in one statement."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "DELETE FROM trace_dependency_edges WHERE minute >= %s AND minute < %s",
            [first_ms, end_ms],
        )
        cur.execute(_ROLLUP, {"lo": first_ms * 10**6, "hi": end_ms * 10**6})


def rollup_due(*, now_ms: int | None = None, max_minutes: int = MAX_MINUTES_PER_RUN) -> int:
    """Roll up every minute that is old enough and not done yet, ``BATCH_MINUTES`` at a time,
    each batch committed with the watermark; returns minutes rolled up."""
    now_ms = now_ms or time.time_ns() // 10**6
    ready_until = (now_ms - LATE_MS) // MINUTE_MS * MINUTE_MS
    done = 0
    while done < max_minutes:
        with transaction.atomic():
            # select_for_update: two beat-triggered runs must not roll the same minutes twice.
            state, _ = RollupState.objects.select_for_update().get_or_create(
                name=STATE, defaults={"done_until_ms": ready_until - FIRST_RUN_LOOKBACK_MS}
            )
            first = state.done_until_ms
            batch = min(BATCH_MINUTES, max_minutes - done, (ready_until - first) // MINUTE_MS)
            if batch <= 0:
                break
            end = first + batch * MINUTE_MS
            rollup_minutes(first, end)
            span_metrics.write_minutes(first, end)  # same transaction: counted exactly once
            state.done_until_ms = end
            state.save(update_fields=["done_until_ms"])
        done += batch
    return done


def dependencies_get(*, org_id: int, start_ms: int, end_ms: int) -> list[dict]:
    """[{parent, child, callCount, errorCount}] summed over the minutes in [start, end]."""
    if org_id is None:
        raise ValueError("dependencies need an org")
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT parent, child, sum(calls), sum(errors) FROM trace_dependency_edges
            WHERE org_id = %s AND minute >= %s AND minute <= %s
            GROUP BY parent, child ORDER BY parent, child
            """,
            [org_id, start_ms - start_ms % MINUTE_MS, end_ms],
        )
        return [
            {"parent": p, "child": c, "callCount": int(n), "errorCount": int(e)}
            for p, c, n, e in cur.fetchall()
        ]
