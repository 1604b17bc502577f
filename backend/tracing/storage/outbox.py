"""The ingest outbox (``trace_batches``) and its drain into the row head (``trace_spans``).

A receiver turns a request's spans into table rows (catalog ids resolved, attributes as JSON)
and commits them as one outbox row before answering; a Celery task COPYs the org's outbox into
a temporary table, drops the spans already stored (in the head: ``ON CONFLICT DO NOTHING`` on
the span key; in blocks: looked up through the trace index), and moves the rest into
``trace_spans`` stamped with this drain's sequence number, deleting the batches in the same
transaction. The drain holds the org's store lock (``blocks.org_lock``), so no block is cut
between its look-up and its insert: a retried export or a redelivered task stores nothing
twice, in the head or in blocks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.db import connection, transaction
from psycopg import sql

from backend.pipeline import partitions
from backend.tracing.spans import Span
from backend.tracing.storage import blocks, catalog
from backend.zstd_contexts import compressor, decompressor

_OUTBOX_ZSTD_LEVEL = 1  # the hot path: fast beats small for a row that lives seconds

NS_PER_MS = 1_000_000
DRAIN_MAX_BATCHES = 200


# --- write path -------------------------------------------------------------------------------


def _events(events) -> str | None:
    if not events:
        return None
    return catalog.dumps(
        [{"time_ns": e.time_ns, "name": e.name, "attributes": e.attributes} for e in events]
    )


def _links(links) -> str | None:
    if not links:
        return None
    return catalog.dumps(
        [
            {
                "trace_id": ln.trace_id.hex(),
                "span_id": ln.span_id.hex(),
                "trace_state": ln.trace_state,
                "attributes": ln.attributes,
            }
            for ln in links
        ]
    )


def batch_append(*, org_id: int, spans: Sequence[Span]) -> int:
    """Durably accept spans (one outbox row); returns the batch id."""
    with transaction.atomic(), connection.cursor() as cur:
        service_ids, op_ids = catalog.catalog_ids(cur, org_id, spans)
        memo: dict[int, int] = {}
        rows = []
        for s in spans:
            sid = service_ids[catalog.service_name(s)]
            scope = f"{s.scope_name}@{s.scope_version}" if s.scope_version else s.scope_name
            rows.append(
                (
                    s.trace_id.hex(),
                    s.span_id.hex(),
                    s.parent_span_id.hex() if s.parent_span_id else None,
                    sid,
                    op_ids[(sid, catalog.operation_name(s), s.kind)],
                    s.kind,
                    s.start_ns,
                    s.duration_ns,
                    s.status_code,
                    s.status_message or None,
                    catalog.resource_id(cur, org_id, s.resource, memo),
                    scope or None,
                    catalog.dumps(s.attributes) if s.attributes else None,
                    _events(s.events),
                    _links(s.links),
                    s.flags,
                    s.trace_state or None,
                )
            )
        starts = [s.start_ns for s in spans]
        cur.execute(
            "INSERT INTO trace_batches (org_id, n_spans, min_start_ns, max_start_ns, payload) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            [
                org_id,
                len(rows),
                min(starts),
                max(starts),
                compressor(_OUTBOX_ZSTD_LEVEL).compress(
                    json.dumps(rows, separators=(",", ":")).encode()
                ),
            ],
        )
        return cur.fetchone()[0]


_COLUMNS = (
    "org_id, trace_id, span_id, parent_span_id, service_id, operation_id, kind, "
    "start_ns, duration_ns, status_code, status_message, resource_id, scope, "
    "attributes, events, links, flags, trace_state"
)
_MOVE = sql.SQL(
    "INSERT INTO trace_spans ({c}, seq) SELECT {c}, %s FROM trace_spans_in ON CONFLICT DO NOTHING"
).format(c=sql.SQL(_COLUMNS))


def batches_drain(*, org_id: int, max_batches: int = DRAIN_MAX_BATCHES) -> int | None:
    """Move up to ``max_batches`` outbox rows of the org into the head; returns the spans
    that were new (duplicates of stored spans are dropped), None if there was nothing."""
    with transaction.atomic(), connection.cursor() as cur:
        blocks.org_lock(cur, org_id)
        cur.execute(
            """
            DELETE FROM trace_batches WHERE (org_id, id) IN (
                SELECT org_id, id FROM trace_batches WHERE org_id = %s
                ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
            RETURNING min_start_ns, max_start_ns, payload
            """,
            [org_id, max_batches],
        )
        batches = cur.fetchall()
        if not batches:
            return None
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS trace_spans_in "
            "(LIKE trace_spans INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY trace_spans_in ({_COLUMNS}) FROM STDIN") as copy:
            for _, _, payload in batches:
                for row in json.loads(decompressor().decompress(payload)):
                    row[0] = bytes.fromhex(row[0])
                    row[1] = bytes.fromhex(row[1])
                    if row[2] is not None:
                        row[2] = bytes.fromhex(row[2])
                    copy.write_row((org_id, *row))
        blocks.drop_stored_in_blocks(cur, org_id, "trace_spans_in")
        cur.execute("SELECT nextval('trace_drain_seq')")
        (seq,) = cur.fetchone()

        def move():
            cur.execute(_MOVE, [seq])

        starts = [b[0] for b in batches] + [b[1] for b in batches]
        partitions.write_with_partitions("trace_spans", starts, move, per_ms=NS_PER_MS)
        return cur.rowcount
