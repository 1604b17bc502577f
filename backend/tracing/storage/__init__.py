"""The span store, split by job: ``outbox`` (the ingest outbox and its drain into blocks
and the key head ``trace_span_keys``), ``blocks`` (writing columnar blocks, cutting the old
row head ``trace_spans`` into blocks, the trace index, pruning keys),
``encoding`` (the block format), ``catalog`` (services, operations, resources), ``reader``
(head and blocks read together), ``retention``."""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.db import connection

from backend.tracing.storage.blocks import blocks_cut, keys_prune
from backend.tracing.storage.catalog import caches_clear
from backend.tracing.storage.outbox import (
    NS_PER_MS,
    batch_append,
    batches_drain,
    batches_drain_to_head,
)
from backend.tracing.storage.retention import org_spans_delete_before

__all__ = [
    "NS_PER_MS",
    "batch_append",
    "batches_drain",
    "batches_drain_to_head",
    "blocks_cut",
    "caches_clear",
    "keys_prune",
    "now_ns",
    "org_spans_delete_before",
    "storage_bytes",
]


def now_ns() -> int:
    return time.time_ns()


def storage_bytes(
    tables: Iterable[str] = (
        "trace_spans",
        "trace_span_keys",
        "trace_blocks",
        "trace_resources",
        "trace_services",
        "trace_operations",
    ),
) -> int:
    """Bytes on disk of the span store (tables, their partitions, indexes, TOAST)."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
            WHERE c.relkind = 'r' AND (c.relname = ANY(%s) OR c.relname LIKE 'trace_spans_%%'
                                       OR c.relname LIKE 'trace_blocks_%%')
            """,
            [list(tables)],
        )
        return int(cur.fetchone()[0])
