"""The ingest outbox (``trace_batches``) and its drain into span blocks.

A receiver turns a request's spans into table rows (catalog ids resolved, attributes as JSON)
and commits them as one zstd'ed outbox row before answering. A Celery task claims the org's
batches and, in one transaction: COPYs the spans' keys (ids, parent, service, operation, kind,
times, status, ``peer.service``) into a temporary table; drops those already stored (in the
thin key head ``trace_span_keys``: ``ON CONFLICT DO NOTHING`` on the span key; for spans older
than the org's key horizon, also in the blocks, through the trace index); stores the keys of
the rest stamped with this drain round's sequence number (the rollups count them there);
encodes those spans straight into columnar blocks (``blocks.blocks_write``); and deletes the
batches. The drain holds the org's store lock (``blocks.org_lock``), so nothing is pruned or
compacted between its look-up and its insert: a retried export or a redelivered task stores
nothing twice, and a span is queryable as soon as the drain commits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
from django.db import connection, transaction
from psycopg import sql

from backend.pipeline import partitions
from backend.tracing.spans import Span
from backend.tracing.storage import blocks, catalog
from backend.tracing.storage.encoding import SpanRows, value_text
from backend.zstd_contexts import compressor, decompressor

_OUTBOX_ZSTD_LEVEL = 1  # the hot path: fast beats small for a row that lives seconds

NS_PER_MS = 1_000_000
DRAIN_MAX_BATCHES = 200


# --- write path -------------------------------------------------------------------------------


def _events(events) -> list | None:
    if not events:
        return None
    return [{"time_ns": e.time_ns, "name": e.name, "attributes": e.attributes} for e in events]


def _links(links) -> list | None:
    if not links:
        return None
    return [
        {
            "trace_id": ln.trace_id.hex(),
            "span_id": ln.span_id.hex(),
            "trace_state": ln.trace_state,
            "attributes": ln.attributes,
        }
        for ln in links
    ]


_JSON_COLUMNS = (12, 13, 14)  # attributes, events, links in an outbox row


def _payload(rows: list[list]) -> bytes:
    """The rows as one JSON text (attributes, events and links as nested JSON, parsed with
    the rest by the drain), zstd'ed. PostgreSQL's text cannot hold NUL: when a NUL is there
    (rare), those three columns are sent as ``catalog.dumps`` texts instead, which replace
    it as the row head did (the drain takes either form)."""
    text = json.dumps(rows, default=catalog.json_default, ensure_ascii=False, separators=(",", ":"))
    if "\\u0000" in text:
        for row in rows:
            for i in _JSON_COLUMNS:
                if row[i] is not None:
                    row[i] = catalog.dumps(row[i])
        text = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    return compressor(_OUTBOX_ZSTD_LEVEL).compress(text.encode())


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
                [
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
                    s.attributes or None,
                    _events(s.events),
                    _links(s.links),
                    s.flags,
                    s.trace_state or None,
                ]
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
                _payload(rows),
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

_KEY_COLUMNS = (
    "trace_id, span_id, parent_span_id, service_id, operation_id, kind, start_ns, duration_ns, "
    "status_code, peer_service"
)
_KEYS_IN = (
    "CREATE TEMP TABLE IF NOT EXISTS trace_keys_in (trace_id bytea, span_id bytea, "
    "parent_span_id bytea, service_id integer, operation_id integer, kind smallint, "
    "start_ns bigint, duration_ns bigint, status_code smallint, peer_service text) "
    "ON COMMIT DELETE ROWS"
)
PEER_SERVICE_MAX = 512  # as the service catalog's names


def _claim(cur, org_id: int, max_batches: int) -> list[tuple]:
    cur.execute(
        """
        DELETE FROM trace_batches WHERE (org_id, id) IN (
            SELECT org_id, id FROM trace_batches WHERE org_id = %s
            ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
        RETURNING min_start_ns, max_start_ns, payload
        """,
        [org_id, max_batches],
    )
    return cur.fetchall()


def _decoded(batches: list[tuple]) -> list[list]:
    """The batches' spans as rows (ids as bytes; attributes, events, links as JSON texts)."""
    rows = []
    for _, _, payload in batches:
        for row in json.loads(decompressor().decompress(payload)):
            row[0] = bytes.fromhex(row[0])
            row[1] = bytes.fromhex(row[1])
            if row[2] is not None:
                row[2] = bytes.fromhex(row[2])
            rows.append(row)
    return rows


def _peer_service(attributes: dict | None) -> str | None:
    """``attributes->>'peer.service'`` as the rollups read it (None when absent or null)."""
    if not attributes or "peer.service" not in attributes:
        return None
    text = value_text(attributes["peer.service"])
    return text[:PEER_SERVICE_MAX] if text is not None else None


def keys_insert(cur, org_id: int, spans: SpanRows, seq: int) -> np.ndarray:
    """Store the keys (what the rollups and the de-duplication read) of the spans not stored
    yet, stamped with the drain round ``seq``; returns the indexes of those spans in
    ``spans`` (the first copy when one span comes twice). Spans older than the org's key
    horizon are looked up in the blocks too. Call under the org's store lock."""
    cur.execute(_KEYS_IN)
    # (ON COMMIT empties it, but two drains may share a transaction: a caller's atomic block)
    cur.execute("DELETE FROM trace_keys_in")
    starts = spans.starts.tolist()
    with cur.copy(f"COPY trace_keys_in ({_KEY_COLUMNS}) FROM STDIN") as copy:
        for row in zip(
            spans.trace_ids,
            spans.span_ids,
            spans.parent_ids,
            spans.service_ids.tolist(),
            spans.operation_ids.tolist(),
            spans.kinds.tolist(),
            starts,
            spans.durations.tolist(),
            spans.statuses.tolist(),
            [_peer_service(a) for a in spans.attributes],
            strict=True,
        ):
            copy.write_row(row)
    cur.execute("SELECT pruned_before_ns FROM trace_span_horizon WHERE org_id = %s", [org_id])
    horizon = cur.fetchone()
    if horizon is not None and min(starts) < horizon[0]:
        blocks.drop_stored_in_blocks(cur, org_id, "trace_keys_in", below_ns=horizon[0])
    cur.execute(
        f"INSERT INTO trace_span_keys (org_id, {_KEY_COLUMNS}, seq) "  # noqa: S608
        f"SELECT %s, {_KEY_COLUMNS}, %s FROM trace_keys_in ON CONFLICT DO NOTHING",
        [org_id, seq],
    )
    if cur.rowcount == len(spans):  # the usual case: all new, nothing to read back
        return np.arange(len(spans))
    cur.execute(
        "SELECT trace_id, span_id, kind, start_ns FROM trace_span_keys "
        "WHERE org_id = %s AND seq = %s",
        [org_id, seq],
    )
    stored = cur.fetchall()
    wanted = {(bytes(t), bytes(s), k, st) for t, s, k, st in stored}
    kinds = spans.kinds.tolist()
    keep = []
    for i, key in enumerate(zip(spans.trace_ids, spans.span_ids, kinds, starts, strict=True)):
        if key in wanted:
            wanted.discard(key)  # a second copy of the span in this round is dropped
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def batches_drain(*, org_id: int, max_batches: int = DRAIN_MAX_BATCHES) -> int | None:
    """Store up to ``max_batches`` outbox rows of the org: the keys of the spans not stored
    yet into ``trace_span_keys``, the spans themselves encoded into blocks, the batches
    deleted, all in one transaction; returns the spans that were new (duplicates of stored
    spans are dropped), None if there was nothing."""
    with transaction.atomic(), connection.cursor() as cur:
        blocks.org_lock(cur, org_id)
        batches = _claim(cur, org_id, max_batches)
        if not batches:
            return None
        spans = blocks.rows_from_head(_decoded(batches))
        cur.execute("SELECT nextval('trace_drain_seq')")
        (seq,) = cur.fetchone()
        new = keys_insert(cur, org_id, spans, seq)
        if len(new):
            blocks.blocks_write(
                cur, org_id, spans if len(new) == len(spans) else blocks.subset(spans, new)
            )
        return len(new)


def batches_drain_to_head(*, org_id: int, max_batches: int = DRAIN_MAX_BATCHES) -> int | None:
    """The drain as it was before blocks were written at drain time: into the row head
    ``trace_spans`` (and the keys). Kept for the head's readers and the cut of rows stored
    before the upgrade, which the tests reproduce with it; nothing in production calls it."""
    with transaction.atomic(), connection.cursor() as cur:
        blocks.org_lock(cur, org_id)
        batches = _claim(cur, org_id, max_batches)
        if not batches:
            return None
        rows = _decoded(batches)
        spans = blocks.rows_from_head(rows)
        cur.execute("SELECT nextval('trace_drain_seq')")
        (seq,) = cur.fetchone()
        new = keys_insert(cur, org_id, spans, seq).tolist()
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS trace_spans_in "
            "(LIKE trace_spans INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cur.execute("DELETE FROM trace_spans_in")
        with cur.copy(f"COPY trace_spans_in ({_COLUMNS}) FROM STDIN") as copy:
            for i in new:
                row = rows[i]
                for c in _JSON_COLUMNS:
                    if row[c] is not None and not isinstance(row[c], str):
                        row[c] = catalog.dumps(row[c])
                copy.write_row((org_id, *row))

        def move():
            cur.execute(_MOVE, [seq])

        # (every span's day: a batch's first and last start may skip a midnight in between)
        starts = spans.starts[new].tolist()
        partitions.write_with_partitions("trace_spans", starts, move, per_ms=NS_PER_MS)
        return len(new)
