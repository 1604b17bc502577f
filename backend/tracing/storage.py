"""The span store: the ingest outbox (``trace_batches``), the day-partitioned ``trace_spans``
table, and the service / operation / resource catalogs the rows point to.

A receiver turns a request's spans into table rows (catalog ids resolved, attributes as JSON)
and commits them as one outbox row before answering; a Celery task COPYs the org's outbox into
a temporary table and moves it into ``trace_spans`` with ``ON CONFLICT DO NOTHING``, deleting
the batches in the same transaction. A retried export or a redelivered task stores nothing
twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import zstandard
from django.db import connection, transaction
from psycopg import sql

from backend.pipeline import partitions
from backend.tenancy.ttlcache import TTLCache
from backend.tracing.spans import Span

NS_PER_MS = 1_000_000
DRAIN_MAX_BATCHES = 200

# zstd contexts are not thread-safe (gunicorn's threads share this module): one per thread.
_zstd = threading.local()


def _compress(data: bytes) -> bytes:
    if not hasattr(_zstd, "c"):
        _zstd.c = zstandard.ZstdCompressor(level=1)
    return _zstd.c.compress(data)


def _decompress(data: bytes) -> bytes:
    if not hasattr(_zstd, "d"):
        _zstd.d = zstandard.ZstdDecompressor()
    return _zstd.d.decompress(data)


def _json_default(value: Any):
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    raise TypeError(f"cannot store {type(value).__name__}")


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    """JSON for a jsonb column. PostgreSQL cannot store NUL in text or jsonb: senders' NULs
    become U+FFFD (rare, so the clean-up runs only when one is there)."""
    text = json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    if "\\u0000" in text:
        text = json.dumps(
            _without_nul(value), default=_json_default, ensure_ascii=False, separators=(",", ":")
        )
    return text


SERVICE_NAME_MAX = 512  # the catalogs' column sizes
OPERATION_NAME_MAX = 1024


def _service(span: Span) -> str:
    return span.service.replace("\x00", "\ufffd")[:SERVICE_NAME_MAX]


def _operation(span: Span) -> str:
    return span.name.replace("\x00", "\ufffd")[:OPERATION_NAME_MAX]


def _text(value: str | None) -> str | None:
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value or None


# --- catalogs ---------------------------------------------------------------------------------

# Catalog rows never change once created; each process remembers those it has seen.
_services: TTLCache[tuple[int, str], int] = TTLCache(ttl=3600, max_entries=100_000)
_operations: TTLCache[tuple[int, int, str, int], int] = TTLCache(ttl=3600, max_entries=500_000)
_resources: TTLCache[tuple[int, int], int] = TTLCache(ttl=3600, max_entries=100_000)


def caches_clear() -> None:
    for cache in (_services, _operations, _resources):
        cache.clear()


def _service_ids(cur, org_id: int, names: list[str]) -> dict[str, int]:
    names = sorted(set(names))  # key order: concurrent inserts lock the index in one order
    cur.execute(
        "INSERT INTO trace_services (org_id, name, first_seen) "
        "SELECT %s, n, now() FROM unnest(%s::text[]) AS n ON CONFLICT DO NOTHING",
        [org_id, names],
    )
    cur.execute(
        "SELECT name, id FROM trace_services WHERE org_id = %s AND name = ANY(%s)", [org_id, names]
    )
    return dict(cur.fetchall())


def _operation_ids(cur, org_id: int, keys: list[tuple[int, str, int]]) -> dict[tuple, int]:
    keys = sorted(set(keys))
    columns = [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]]
    cur.execute(
        """
        INSERT INTO trace_operations (org_id, service_id, name, kind, first_seen)
        SELECT %s, s, n, k, now() FROM unnest(%s::int[], %s::text[], %s::smallint[]) AS t(s, n, k)
        ON CONFLICT DO NOTHING
        """,
        [org_id, *columns],
    )
    cur.execute(
        """
        SELECT o.service_id, o.name, o.kind, o.id FROM trace_operations o
        JOIN unnest(%s::int[], %s::text[], %s::smallint[]) AS t(s, n, k)
          ON o.service_id = t.s AND o.name = t.n AND o.kind = t.k
        WHERE o.org_id = %s
        """,
        [*columns, org_id],
    )
    return {(sid, name, kind): oid for sid, name, kind, oid in cur.fetchall()}


def _resource_id(cur, org_id: int, resource: dict[str, Any], memo: dict[int, int]) -> int:
    obj = id(resource)  # the spans of one resource share one dict: hash it once per request
    if obj in memo:
        return memo[obj]
    text = _dumps(resource)
    digest = int.from_bytes(
        hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True
    )
    rid = _resources.get((org_id, digest))
    if rid is None:
        cur.execute(
            "INSERT INTO trace_resources (org_id, attributes_hash, attributes) "
            "VALUES (%s, %s, %s::jsonb) ON CONFLICT DO NOTHING",
            [org_id, digest, text],
        )
        cur.execute(
            "SELECT id FROM trace_resources WHERE org_id = %s AND attributes_hash = %s",
            [org_id, digest],
        )
        rid = cur.fetchone()[0]
        _resources.set((org_id, digest), rid)
    memo[obj] = rid
    return rid


def _catalog_ids(cur, org_id: int, spans: Sequence[Span]):
    services = {_service(s) for s in spans}
    missing = [n for n in services if _services.get((org_id, n)) is None]
    if missing:
        for name, sid in _service_ids(cur, org_id, missing).items():
            _services.set((org_id, name), sid)
    service_ids = {n: _services.get((org_id, n)) for n in services}
    ops = {(service_ids[_service(s)], _operation(s), s.kind) for s in spans}
    missing_ops = [k for k in ops if _operations.get((org_id, *k)) is None]
    if missing_ops:
        for key, oid in _operation_ids(cur, org_id, missing_ops).items():
            _operations.set((org_id, *key), oid)
    return service_ids, {k: _operations.get((org_id, *k)) for k in ops}


# --- write path -------------------------------------------------------------------------------


def _events(events) -> str | None:
    if not events:
        return None
    return _dumps(
        [{"time_ns": e.time_ns, "name": e.name, "attributes": e.attributes} for e in events]
    )


def _links(links) -> str | None:
    if not links:
        return None
    return _dumps(
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
        service_ids, op_ids = _catalog_ids(cur, org_id, spans)
        memo: dict[int, int] = {}
        rows = []
        for s in spans:
            sid = service_ids[_service(s)]
            scope = f"{s.scope_name}@{s.scope_version}" if s.scope_version else s.scope_name
            rows.append(
                (
                    s.trace_id.hex(),
                    s.span_id.hex(),
                    s.parent_span_id.hex() if s.parent_span_id else None,
                    sid,
                    op_ids[(sid, _operation(s), s.kind)],
                    s.kind,
                    s.start_ns,
                    s.duration_ns,
                    s.status_code,
                    s.status_message or None,
                    _resource_id(cur, org_id, s.resource, memo),
                    scope or None,
                    _dumps(s.attributes) if s.attributes else None,
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
                _compress(json.dumps(rows, separators=(",", ":")).encode()),
            ],
        )
        return cur.fetchone()[0]


_COLUMNS = (
    "org_id, trace_id, span_id, parent_span_id, service_id, operation_id, kind, "
    "start_ns, duration_ns, status_code, status_message, resource_id, scope, "
    "attributes, events, links, flags, trace_state"
)
_MOVE = sql.SQL(
    "INSERT INTO trace_spans ({c}) SELECT {c} FROM trace_spans_in ON CONFLICT DO NOTHING"
).format(c=sql.SQL(_COLUMNS))


def batches_drain(*, org_id: int, max_batches: int = DRAIN_MAX_BATCHES) -> int | None:
    """Move up to ``max_batches`` outbox rows of the org into ``trace_spans``; returns the
    spans that were new (duplicates of stored spans are dropped), None if there was nothing."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            """
            DELETE FROM trace_batches WHERE id IN (
                SELECT id FROM trace_batches WHERE org_id = %s
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
                for row in json.loads(_decompress(payload)):
                    row[0] = bytes.fromhex(row[0])
                    row[1] = bytes.fromhex(row[1])
                    if row[2] is not None:
                        row[2] = bytes.fromhex(row[2])
                    copy.write_row((org_id, *row))

        def move():
            cur.execute(_MOVE)

        starts = [b[0] for b in batches] + [b[1] for b in batches]
        partitions.write_with_partitions("trace_spans", starts, move, per_ms=NS_PER_MS)
        return cur.rowcount


def org_spans_delete_before(*, org_id: int, cutoff_ns: int) -> int:
    with connection.cursor() as cur:
        cur.execute(
            "DELETE FROM trace_spans WHERE org_id = %s AND start_ns < %s", [org_id, cutoff_ns]
        )
        return cur.rowcount


def now_ns() -> int:
    return time.time_ns()


def storage_bytes(
    tables: Iterable[str] = (
        "trace_spans",
        "trace_resources",
        "trace_services",
        "trace_operations",
    ),
) -> int:
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
            WHERE c.relkind = 'r' AND (c.relname = ANY(%s) OR c.relname LIKE 'trace_spans_%%')
            """,
            [list(tables)],
        )
        return int(cur.fetchone()[0])
