"""A step-aligned results cache for range queries (what Mimir's query-frontend does).

A range query's value at a step depends only on the query, the step's time and the stored
samples at or before it (without ``@`` and ``offset``). Steps older than the org's
out-of-order window (and a grace period for the ingest pipeline) are final: such samples are
refused at ingest. So the cache keeps, per (org, query, step, phase of the step grid), one
contiguous *extent* of such steps (series labels, values, which steps each series has) in
Redis; a query takes the steps the extent has and evaluates only the others (the recent end,
or an older start), then extends the extent.

Never stale: ``storage.late_writes`` records the newest step time the org's cache holds and
bumps the org's generation (part of every key) when samples at or before it are written or
deleted, whatever the cause (a raised window, a batch that waited, retention).

Bounded: an extent is at most ``PROMQL_RESULTS_CACHE_MAX_ENTRY_BYTES`` compressed (larger
results are not kept) and lives ``PROMQL_RESULTS_CACHE_TTL_SECONDS``. Queries with ``@`` or
``offset`` (whose steps read samples at other times than their own), and every error, are
evaluated without the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

import numpy as np
import promql_parser as pp
from django.conf import settings
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from backend.metrics import promql
from backend.metrics.labels import labels_key
from backend.metrics.promql.values import Vector
from backend.metrics.storage import late_writes
from backend.zstd_contexts import compressor, decompressor

log = logging.getLogger(__name__)

# Samples are refused past the out-of-order window at ingest; the grace covers the time an
# accepted batch can wait in the outbox and the limits other processes keep cached (10 s).
GRACE_MS = 10 * 60 * 1000
_MAGIC = b"PRC1"


def enabled() -> bool:
    return bool(getattr(settings, "PROMQL_RESULTS_CACHE", False))


def cacheable(expr) -> bool:
    """No ``@`` and no ``offset`` anywhere in the expression."""
    found = []

    def visit(node) -> bool:
        if isinstance(node, pp.MatrixSelector):
            node = node.vector_selector
        if isinstance(node, pp.VectorSelector | pp.SubqueryExpr) and (
            node.at is not None or node.offset is not None
        ):
            found.append(node)
        return True

    pp.walk(expr, pre_visit=visit)
    return not found


def _key(org_id: int, generation: int, query: str, step_ms: int, phase: int) -> str:
    digest = hashlib.sha256(query.encode()).hexdigest()
    return f"promql:rc:{org_id}:{generation}:{digest}:{step_ms}:{phase}"


class Extent:
    """Cached steps ``first, first + step, … last`` of one query: every series in label
    order, its value at each step and whether it has one."""

    __slots__ = ("first", "labels", "last", "present", "values")

    def __init__(self, first: int, last: int, labels: list, values, present) -> None:
        self.first, self.last, self.labels = first, last, labels
        self.values, self.present = values, present

    def dumps(self) -> bytes:
        n, m = self.values.shape
        head = json.dumps(
            {"first": self.first, "last": self.last, "labels": self.labels, "shape": [n, m]},
            separators=(",", ":"),
        ).encode()
        body = (
            len(head).to_bytes(4, "little")
            + head
            + np.packbits(self.present, axis=None).tobytes()
            + np.ascontiguousarray(self.values, dtype="<f8").tobytes()
        )
        return _MAGIC + compressor(1).compress(body)

    @classmethod
    def loads(cls, blob: bytes) -> Extent | None:
        if not blob.startswith(_MAGIC):
            return None
        body = decompressor().decompress(blob[len(_MAGIC) :])
        size = int.from_bytes(body[:4], "little")
        head = json.loads(body[4 : 4 + size])
        n, m = head["shape"]
        at = 4 + size
        bits = (n * m + 7) // 8
        present = np.unpackbits(np.frombuffer(body[at : at + bits], np.uint8), count=n * m)
        values = np.frombuffer(body[at + bits :], dtype="<f8").reshape(n, m)
        return cls(head["first"], head["last"], head["labels"], values, present.reshape(n, m) > 0)


def _assemble(parts: list[tuple[np.ndarray, list, np.ndarray, np.ndarray]], ts: np.ndarray):
    """One (values, present, labels) over the steps ``ts`` from parts that each cover some of
    them: (their steps, labels, values, present)."""
    rows: dict[tuple, int] = {}
    labels: list = []
    for _, part_labels, _, _ in parts:
        for lab in part_labels:
            key = labels_key(lab)
            if key not in rows:
                rows[key] = len(labels)
                labels.append(lab)
    values = np.zeros((len(labels), len(ts)))
    present = np.zeros((len(labels), len(ts)), dtype=bool)
    step0 = int(ts[0]) if len(ts) else 0
    step = int(ts[1] - ts[0]) if len(ts) > 1 else 1
    for part_ts, part_labels, part_values, part_present in parts:
        if not len(part_ts):
            continue
        cols = (part_ts - step0) // step
        at = np.array([rows[labels_key(lab)] for lab in part_labels], dtype=np.int64)
        if len(at):
            values[np.ix_(at, cols)] = part_values
            present[np.ix_(at, cols)] = part_present
    return values, present, labels


def _nonempty(labels: list, values: np.ndarray, present: np.ndarray) -> Vector:
    keep = present.any(axis=1)
    kept = [lab for lab, k in zip(labels, keep, strict=True) if k]
    return Vector(kept, values[keep], present[keep])


def range_query_json(
    *,
    org_id: int,
    querier,
    query: str,
    start_ms: int,
    end_ms: int,
    step_ms: int,
    limits: promql.QueryLimits,
    out_of_order_window_ms: int,
    now_ms: int | None = None,
) -> str:
    """``promql.range_query_json`` through the cache (the same answer, byte for byte)."""
    expr = promql.parsed(query)
    promql.range_check(expr, start_ms, end_ms, step_ms)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    horizon = now_ms - out_of_order_window_ms - GRACE_MS
    # the last step that may be cached, on the query's grid
    last_final = start_ms + (horizon - start_ms) // step_ms * step_ms

    def uncached() -> str:
        return promql.range_query_json(
            querier=querier,
            query=query,
            start_ms=start_ms,
            end_ms=end_ms,
            step_ms=step_ms,
            limits=limits,
        )

    if not enabled() or last_final < start_ms or not cacheable(expr):
        return uncached()
    ttl = int(settings.PROMQL_RESULTS_CACHE_TTL_SECONDS)
    try:
        generation = late_writes.horizon_raise(
            org_id=org_id, horizon_ms=min(last_final, end_ms), ttl_seconds=ttl
        )
        key = _key(org_id, generation, query, step_ms, start_ms % step_ms)
        blob = get_redis_connection("default").get(key)
        cached = Extent.loads(blob) if blob else None
    except (RedisError, ValueError, KeyError) as exc:
        log.warning("promql results cache unavailable: %s", exc)
        return uncached()

    ts = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
    parts = []
    todo = [(start_ms, end_ms)]
    if cached is not None and cached.first <= end_ms and cached.last >= start_ms:
        lo, hi = max(start_ms, cached.first), min(end_ms, cached.last)
        c_ts = np.arange(cached.first, cached.last + 1, step_ms, dtype=np.int64)
        cols = slice((lo - cached.first) // step_ms, (hi - cached.first) // step_ms + 1)
        parts.append((c_ts[cols], cached.labels, cached.values[:, cols], cached.present[:, cols]))
        todo = [(a, b) for a, b in ((start_ms, lo - step_ms), (hi + step_ms, end_ms)) if a <= b]
    for a, b in todo:
        value, part_ts, _ = promql.range_evaluate(querier, query, a, b, step_ms, limits)
        parts.append((part_ts, value.labels, value.values, value.present))
    values, present, labels = _assemble(parts, ts)
    result = _nonempty(labels, values, present)
    order = sorted(range(len(result.labels)), key=lambda i: labels_key(result.labels[i]))

    if todo:
        _store(key, cached, ts, result, last_final, step_ms, ttl)
    return promql.render_matrix(result, ts, order)


def _store(key: str, cached: Extent | None, ts, result: Vector, last_final: int, step, ttl):
    """Keep the final steps of this answer, joined to the cached extent when they touch."""
    final = ts <= last_final
    if not final.any():
        return
    first, last = int(ts[0]), int(ts[final][-1])
    parts = [(ts[final], result.labels, result.values[:, final], result.present[:, final])]
    if cached is not None and cached.first <= last + step and cached.last >= first - step:
        c_ts = np.arange(cached.first, cached.last + 1, step, dtype=np.int64)
        parts.insert(0, (c_ts, cached.labels, cached.values, cached.present))
        first, last = min(first, cached.first), max(last, cached.last)
    grid = np.arange(first, last + 1, step, dtype=np.int64)
    values, present, labels = _assemble(parts, grid)
    kept = _nonempty(labels, values, present)
    extent = Extent(first, last, kept.labels, kept.values, kept.present)
    blob = extent.dumps()
    if len(blob) > settings.PROMQL_RESULTS_CACHE_MAX_ENTRY_BYTES:
        return
    try:
        get_redis_connection("default").set(key, blob, ex=ttl)
    except RedisError as exc:
        log.warning("promql results cache unavailable: %s", exc)
