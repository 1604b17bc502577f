"""The service dependency graph: per-org, per-minute edges parent service → child service,
rolled up by a beat job from the span store's key head ``trace_span_keys`` (what the drain
keeps of every span for the rollups: ids, parent, service, operation, kind, times, status,
``peer.service``; the spans themselves are in blocks from the drain on), so
``/api/dependencies`` and the dashboard's service map read small rollups instead of scanning
spans. The same run feeds the span metrics (``span_metrics.write_increments``).

An edge is counted for every span whose parent span belongs to another service, and for every
leaf client span whose ``peer.service`` attribute names an uninstrumented peer. Each edge keeps
a latency histogram of the called (server) span and of the calling (client) span; for an
uninstrumented peer both are the client span's.

Late spans, exactly once. Every drain round stamps its spans with a sequence number, and each
org keeps two watermarks (``trace_rollup_orgs``): the drain round ``counted_seq`` and the time
``ready_until_ms`` (which trails now by ``LATE_MS``, so the spans of one request tree have
arrived). The spans counted so far are those with ``seq <= counted_seq`` and ``start <
ready_until``; a run moves both watermarks forward and counts exactly the difference: spans of
the new drain rounds that start before the new time watermark (late ones included, as long
as they start no earlier than the org's out-of-order window before the old time watermark),
and spans of older rounds in the minutes the time watermark passes. An edge is counted when
its later span is: a new child whose parent is stored, or a new parent whose child was
counted before it arrived. The run holds the org's store lock, so every drain round up to the
new ``counted_seq`` is committed, and no key is pruned meanwhile; keys are pruned only once
counted (``blocks_cut_due``), kept ``CUT_MARGIN_MS`` longer so that a late child still finds
its parent's key. Edges add to their minute (the child's start); span
metrics add to cumulative series at the end of the span's minute, or of the first minute this
run rolls up when the span is late, so every series only ever grows.

Limits: a span arriving more than the window after the time watermark is stored but never
counted; a leaf client span counted as a call to its ``peer.service`` stays counted if a child
span turns up later (its real edge is counted too).
"""

from __future__ import annotations

import time

from django.db import connection, transaction

from backend.tenancy.selectors import limits_get
from backend.tracing import span_metrics
from backend.tracing.models import RollupState
from backend.tracing.storage import blocks_cut
from backend.tracing.storage.blocks import blocks_compact, keys_prune, org_lock

MINUTE_MS = 60_000
LATE_MS = 2 * MINUTE_MS  # how long to wait for a request tree's spans before counting them
MAX_MINUTES_PER_RUN = 24 * 60  # a run catches up on up to a day
BATCH_MINUTES = 60  # minutes rolled up by one transaction
FIRST_RUN_LOOKBACK_MS = 60 * MINUTE_MS
CUT_MARGIN_MS = 10 * MINUTE_MS  # counted spans stay in the head this long: late children's parents
STATE = "dependencies"  # the global watermark of the rollup before per-org watermarks

# The spans a run counts: %(s0)s/%(r0)s the old watermarks, %(s1)s/%(r1)s the new ones (ns for
# times), %(low)s the oldest start a late span may have.
_NEW = """
    s.org_id = %(org)s AND (
        (s.seq > %(s0)s AND s.seq <= %(s1)s AND s.start_ns >= %(low)s AND s.start_ns < %(r1)s)
        OR (s.seq <= %(s0)s AND s.start_ns >= %(r0)s AND s.start_ns < %(r1)s))
"""

_EDGES = f"""
WITH n AS (SELECT * FROM trace_span_keys s WHERE {_NEW}),
edges AS (
    -- a new child whose parent (in another service) is stored
    -- (LATERAL … OFFSET 0: probe the identity index per new span, never hash the org's
    -- whole key head, which is a day of keys when a run catches up. The probes match the
    -- org as a join column, k.org_id = c.org_id (the new span's, which is the org's): an
    -- org the statistics have not seen yet is estimated at one row, and with the org as a
    -- constant the (org_id, start_ns) index looked as good as the identity's, a scan of the
    -- org's whole key head per probe)
    SELECT c.start_ns, p.service_id AS parent_id, c.service_id AS child_id, NULL AS peer,
           c.status_code, c.duration_ns, p.duration_ns AS client_ns
    FROM n c
    JOIN LATERAL (SELECT k.service_id, k.duration_ns FROM trace_span_keys k
                  WHERE k.org_id = c.org_id AND k.trace_id = c.trace_id
                    AND k.span_id = c.parent_span_id AND k.seq <= %(s1)s OFFSET 0) p ON true
    WHERE c.parent_span_id IS NOT NULL AND p.service_id <> c.service_id
    UNION ALL
    -- a new parent whose child was counted before the parent arrived
    SELECT c.start_ns, p.service_id, c.service_id, NULL, c.status_code, c.duration_ns,
           p.duration_ns
    FROM n p
    JOIN LATERAL (SELECT k.start_ns, k.service_id, k.status_code, k.duration_ns
                  FROM trace_span_keys k
                  WHERE k.org_id = p.org_id AND k.trace_id = p.trace_id
                    AND k.parent_span_id = p.span_id
                    -- (+ 0: by the trace's identity index, never all counted keys)
                    AND k.seq + 0 <= %(s0)s AND k.start_ns + 0 < %(r0)s OFFSET 0) c ON true
    WHERE p.seq > %(s0)s AND p.service_id <> c.service_id
    UNION ALL
    -- a new leaf client span calling an uninstrumented peer
    SELECT c.start_ns, c.service_id, NULL, c.peer_service,
           c.status_code, c.duration_ns, c.duration_ns
    FROM n c
    WHERE c.kind = 3 AND c.peer_service IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM trace_span_keys k WHERE k.org_id = c.org_id
                      AND k.trace_id = c.trace_id AND k.parent_span_id = c.span_id
                      AND k.seq <= %(s1)s)
),
-- counted by service ids first, then named: a few rows per minute to look up, not one per
-- edge (joined per edge, the planner took the org's services as the outer side and ran
-- the edges' probes once per service: 9.5 s instead of 1 s an hour at 200,000 spans).
-- Named edges are summed again, as a peer may bear an instrumented service's name.
by_id AS MATERIALIZED (
    SELECT e.start_ns / 60000000000 * 60000 AS minute, e.parent_id, e.child_id, e.peer,
           count(*) AS calls, count(*) FILTER (WHERE e.status_code = 2) AS errors,
           sum(e.duration_ns) AS server_sum,
           ARRAY[{span_metrics.bucket_counts_sql("e.duration_ns")}] AS server_buckets,
           sum(e.client_ns) AS client_sum,
           ARRAY[{span_metrics.bucket_counts_sql("e.client_ns")}] AS client_buckets
    FROM edges e
    GROUP BY 1, 2, 3, 4
)
SELECT g.minute, ps.name AS parent, coalesce(cs.name, g.peer) AS child,
       sum(g.calls)::bigint AS calls, sum(g.errors)::bigint AS errors,
       sum(g.server_sum) AS server_sum,
       ARRAY[{span_metrics.bucket_sums_sql("g.server_buckets")}] AS server_buckets,
       sum(g.client_sum) AS client_sum,
       ARRAY[{span_metrics.bucket_sums_sql("g.client_buckets")}] AS client_buckets
FROM by_id g
JOIN trace_services ps ON ps.org_id = %(org)s AND ps.id = g.parent_id
LEFT JOIN trace_services cs ON cs.org_id = %(org)s AND cs.id = g.child_id
WHERE coalesce(cs.name, g.peer) <> ps.name
GROUP BY 1, 2, 3
"""  # noqa: S608  (the bucket bounds are constants of span_metrics)

_SPANS = f"""
SELECT s.start_ns / 60000000000 * 60000, sv.name, op.name, s.kind, s.status_code,
       count(*), sum(s.duration_ns), {span_metrics.bucket_counts_sql("s.duration_ns")}
FROM trace_span_keys s
JOIN trace_services sv ON sv.org_id = s.org_id AND sv.id = s.service_id
JOIN trace_operations op ON op.org_id = s.org_id AND op.id = s.operation_id
WHERE {_NEW}
GROUP BY 1, 2, 3, 4, 5
"""  # noqa: S608

_ADD_EDGES = """
INSERT INTO trace_dependency_edges AS e (org_id, minute, parent, child, calls, errors,
    duration_ns_sum, duration_buckets, client_duration_ns_sum, client_duration_buckets)
SELECT %s, minute, parent, child, calls, errors, server_sum, server_buckets, client_sum,
       client_buckets
FROM trace_edges_new ORDER BY minute, parent, child
ON CONFLICT (org_id, minute, parent, child) DO UPDATE SET
    calls = e.calls + EXCLUDED.calls,
    errors = e.errors + EXCLUDED.errors,
    duration_ns_sum = e.duration_ns_sum + EXCLUDED.duration_ns_sum,
    duration_buckets = (SELECT array_agg(coalesce(a, 0) + coalesce(b, 0) ORDER BY i)
        FROM unnest(e.duration_buckets, EXCLUDED.duration_buckets) WITH ORDINALITY t(a, b, i)),
    client_duration_ns_sum = e.client_duration_ns_sum + EXCLUDED.client_duration_ns_sum,
    client_duration_buckets = (SELECT array_agg(coalesce(a, 0) + coalesce(b, 0) ORDER BY i)
        FROM unnest(e.client_duration_buckets, EXCLUDED.client_duration_buckets)
        WITH ORDINALITY t(a, b, i))
"""


def _first_watermark(cur, ready_until: int) -> int:
    """Where a new org's time watermark starts: where the global rollup (before per-org
    watermarks) stopped, or an hour back."""
    state = RollupState.objects.filter(name=STATE).first()
    return state.done_until_ms if state else ready_until - FIRST_RUN_LOOKBACK_MS


def plan_pin(cur) -> None:
    """The run's joins are index probes by design (a run counts minutes of spans against a
    key head that may hold a day). A fresh, fast-growing key head has stale statistics,
    with which the planner picked nested-loop sequential scans (minutes for 40,000 spans in
    a bench run): the plan is pinned for the transaction."""
    cur.execute("SET LOCAL enable_seqscan = off")
    cur.execute("SET LOCAL enable_hashjoin = off")
    cur.execute("SET LOCAL enable_mergejoin = off")


def org_rollup(*, org_id: int, now_ms: int, max_minutes: int = BATCH_MINUTES) -> int:
    """One run for one org (see the module docstring); returns spans counted."""
    ready_until = (now_ms - LATE_MS) // MINUTE_MS * MINUTE_MS
    window_ms = limits_get(org_id=org_id).traces_out_of_order_window_seconds * 1000
    with transaction.atomic(), connection.cursor() as cur:
        org_lock(cur, org_id)
        plan_pin(cur)
        cur.execute(
            "SELECT counted_seq, ready_until_ms FROM trace_rollup_orgs WHERE org_id = %s",
            [org_id],
        )
        row = cur.fetchone()
        s0, r0 = row if row else (0, _first_watermark(cur, ready_until))
        cur.execute("SELECT max(seq) FROM trace_span_keys WHERE org_id = %s", [org_id])
        s1 = max(s0, cur.fetchone()[0] or 0)
        r1 = max(r0, min(ready_until, r0 + max_minutes * MINUTE_MS))
        if (s1, r1) == (s0, r0):
            return 0
        params = {
            "org": org_id,
            "s0": s0,
            "s1": s1,
            "r0": r0 * 10**6,
            "r1": r1 * 10**6,
            "low": (r0 - window_ms) * 10**6,
        }
        cur.execute(_SPANS, params)
        span_rows = cur.fetchall()
        # The run's edges once: added to the per-minute edges in one statement, and read
        # back for the service-graph metrics.
        cur.execute("DROP TABLE IF EXISTS trace_edges_new")
        cur.execute("CREATE TEMP TABLE trace_edges_new ON COMMIT DROP AS " + _EDGES, params)
        cur.execute(_ADD_EDGES, [org_id])
        cur.execute(
            "SELECT minute, parent, child, calls, errors, server_sum, server_buckets, "
            "client_sum, client_buckets FROM trace_edges_new"
        )
        edge_rows = cur.fetchall()
        span_metrics.write_increments(
            org_id=org_id, stamp_from_ms=r0, span_rows=span_rows, edge_rows=edge_rows
        )
        cur.execute(
            """
            INSERT INTO trace_rollup_orgs (org_id, counted_seq, ready_until_ms)
            VALUES (%s, %s, %s) ON CONFLICT (org_id) DO UPDATE
            SET counted_seq = EXCLUDED.counted_seq, ready_until_ms = EXCLUDED.ready_until_ms
            """,
            [org_id, s1, r1],
        )
        return sum(r[5] for r in span_rows)


def _org_ids() -> list[int]:
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM tenancy_organization ORDER BY id")
        return [r[0] for r in cur.fetchall()]


def rollup_due(*, now_ms: int | None = None, max_minutes: int = MAX_MINUTES_PER_RUN) -> int:
    """Count, for every org, the spans due (``BATCH_MINUTES`` of time at a time, each batch
    committed with the org's watermarks); returns spans counted."""
    now_ms = now_ms or time.time_ns() // 10**6
    counted = 0
    for org_id in _org_ids():
        for _ in range(max(1, max_minutes // BATCH_MINUTES)):
            n = org_rollup(org_id=org_id, now_ms=now_ms)
            counted += n
            cur_state = _watermarks(org_id)
            if cur_state is None or cur_state[1] >= (now_ms - LATE_MS) // MINUTE_MS * MINUTE_MS:
                break
    return counted


def _watermarks(org_id: int) -> tuple[int, int] | None:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT counted_seq, ready_until_ms FROM trace_rollup_orgs WHERE org_id = %s",
            [org_id],
        )
        return cur.fetchone()


def blocks_cut_due(*, now_ms: int | None = None, margin_ms: int = CUT_MARGIN_MS) -> int:
    """For every org: cut the row head's counted spans older than the margin into blocks
    (rows stored before the drain wrote blocks; ``seq`` 0 for those from before the rollup's
    watermarks existed), prune the span keys of the same bounds, and merge the small blocks
    of hour windows that ended before them (``blocks_compact``); returns spans moved (keys
    pruned and blocks merged not included)."""
    now_ms = now_ms or time.time_ns() // 10**6
    moved = 0
    for org_id in _org_ids():
        window_ms = limits_get(org_id=org_id).traces_out_of_order_window_seconds * 1000
        state = _watermarks(org_id)
        seq, ready = state if state else (0, now_ms)
        before_ms = min(ready, now_ms - window_ms) - margin_ms
        moved += blocks_cut(org_id=org_id, before_ns=before_ms * 10**6, max_seq=seq)
        keys_prune(org_id=org_id, before_ns=before_ms * 10**6, max_seq=seq)
        blocks_compact(org_id=org_id, settled_before_ns=before_ms * 10**6)
    return moved


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
