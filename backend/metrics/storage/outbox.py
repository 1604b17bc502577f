"""The ingest outbox (``metric_batches``) and its drain into blocks.

A receiver appends one ``metric_batches`` row per request (the durable hand-off) and the
pipeline's drain task moves the org's outbox into ``metric_blocks``: samples grouped by metric
name and time window, sorted, de-duplicated and compressed. Draining deletes the batches in
the same transaction that inserts the blocks, so a worker killed half-way leaves everything
for the redelivered task and nothing is stored twice.
"""

from __future__ import annotations

import numpy as np
from django.db import connection, transaction

from backend.metrics.storage import encoding, late_writes
from backend.metrics.storage.blocks import WINDOW_MS, BlockRow, blocks_insert
from backend.metrics.storage.catalog import series_metric_names

DRAIN_MAX_BATCHES = 500


def batch_append(
    *, org_id: int, series_ids: np.ndarray, timestamps: np.ndarray, values: np.ndarray
) -> int:
    """Durably store a request's samples in the outbox; returns the batch id."""
    with connection.cursor() as cur:
        cur.execute(
            'INSERT INTO metric_batches (org_id, n_samples, series_ids, timestamps, "values") '
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            [
                org_id,
                len(series_ids),
                # Compressed: fewer bytes to write, WAL-log and TOAST on the hot path.
                encoding.pack(np.ascontiguousarray(series_ids, dtype="<i8")),
                encoding.pack(np.ascontiguousarray(timestamps, dtype="<i8")),
                encoding.pack(np.ascontiguousarray(values, dtype="<f8")),
            ],
        )
        return cur.fetchone()[0]


def _to_blocks(org_id: int, samples: encoding.Samples) -> list[BlockRow]:
    """Split normalised samples (sorted by series) by (metric name, window) and encode each
    part."""
    first = np.ones(len(samples.series), dtype=bool)
    first[1:] = samples.series[1:] != samples.series[:-1]
    uniq = samples.series[first]
    names = _metric_names(org_id, uniq)
    name_list = sorted(set(names))
    name_index = {n: i for i, n in enumerate(name_list)}
    series_name = np.fromiter(map(name_index.__getitem__, names), np.int64, len(names))
    sample_name = series_name[np.cumsum(first) - 1]
    window = samples.timestamps - samples.timestamps % WINDOW_MS
    rows = []
    order = np.lexsort((window, sample_name))  # stable: keeps (series, ts) order inside groups
    key_name, key_window = sample_name[order], window[order]
    bounds = np.flatnonzero((np.diff(key_name) != 0) | (np.diff(key_window) != 0)) + 1
    for part in np.split(order, bounds):
        if len(part) == 0:
            continue
        sub = encoding.Samples(samples.series[part], samples.timestamps[part], samples.values[part])
        rows.append(
            BlockRow(
                org_id, name_list[sample_name[part[0]]], int(window[part[0]]), encoding.encode(sub)
            )
        )
    return rows


def batches_drain(*, org_id: int, max_batches: int = DRAIN_MAX_BATCHES) -> int | None:
    """Move up to ``max_batches`` of the org's outbox into blocks; returns samples moved, None
    if there was no batch."""
    with transaction.atomic(), connection.cursor() as cur:
        # SKIP LOCKED: two workers draining the same org take disjoint batches. (The locking
        # sub-select materialized, run once: see the trace outbox's ``_claim``.)
        cur.execute(
            """
            WITH claimed AS MATERIALIZED (
                SELECT id FROM metric_batches WHERE org_id = %s
                ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
            DELETE FROM metric_batches b USING claimed WHERE b.org_id = %s AND b.id = claimed.id
            RETURNING b.id, b.series_ids, b.timestamps, b."values"
            """,
            [org_id, max_batches, org_id],
        )
        rows = sorted(cur.fetchall())  # arrival order, so that a later write wins
        if not rows:
            return None
        series = np.concatenate([encoding.unpack(r[1], "<i8") for r in rows])
        ts = np.concatenate([encoding.unpack(r[2], "<i8") for r in rows])
        values = np.concatenate([encoding.unpack(r[3], "<f8") for r in rows])
        samples = encoding.normalize(series, ts, values)
        blocks_insert(_to_blocks(org_id, samples))
        oldest = int(ts.min()) if len(ts) else None
        if oldest is not None:  # fails closed: a Redis error rolls the drain back
            late_writes.samples_written(org_id=org_id, oldest_ms=oldest)
    if oldest is not None:  # and after the commit, for a query that read just before it
        late_writes.samples_written(org_id=org_id, oldest_ms=oldest)
    return len(series)


# series id -> metric name, per org (a series never changes its name)
_names_cache: dict[int, dict[int, str]] = {}
_MAX_NAMES = 2_000_000


def _metric_names(org_id: int, series_ids: np.ndarray) -> list[str]:
    """The metric name of each series ("" for an id the catalog does not know)."""
    wanted = series_ids.tolist()
    cache = _names_cache.setdefault(org_id, {})
    names = list(map(cache.get, wanted))
    if None in names:
        if sum(map(len, _names_cache.values())) > _MAX_NAMES:
            _names_cache.clear()
            cache = _names_cache.setdefault(org_id, {})
        missing = [s for s, name in zip(wanted, names, strict=True) if name is None]
        cache.update(series_metric_names(org_id=org_id, series_ids=missing))
        names = [cache.get(s, "") for s in wanted]
    return names
