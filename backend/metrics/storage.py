"""Sample storage: the ingest outbox, the block table, compaction and retention.

Write path: a receiver appends one ``metric_batches`` row per request (the durable hand-off)
and a Celery task drains the org's outbox into ``metric_blocks``: samples grouped by metric
name and time window, sorted, de-duplicated and compressed (``blocks.py``). Draining deletes
the batches in the same transaction that inserts the blocks, so a worker killed half-way
leaves everything for the redelivered task and nothing is stored twice.

Compaction merges the blocks that share (org, metric, window) into one, which is where a
window's compression becomes good and duplicates (a sender's retry) disappear for good.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db import connection, transaction
from psycopg import sql

from backend import partitions
from backend.metrics import blocks
from backend.metrics.catalog import series_metric_names

WINDOW_MS = 10 * 60 * 1000  # blocks cover aligned 10-minute windows
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
                blocks.pack(np.ascontiguousarray(series_ids, dtype="<i8")),
                blocks.pack(np.ascontiguousarray(timestamps, dtype="<i8")),
                blocks.pack(np.ascontiguousarray(values, dtype="<f8")),
            ],
        )
        return cur.fetchone()[0]


def orgs_with_pending_batches(*, older_than_seconds: float = 0) -> list[int]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT org_id FROM metric_batches WHERE received_at <= now() - %s",
            [timedelta(seconds=older_than_seconds)],
        )
        return [row[0] for row in cur.fetchall()]


@dataclass(slots=True)
class BlockRow:
    org_id: int
    metric_name: str
    window_start: int
    block: blocks.EncodedBlock


def _copy_blocks(rows: Sequence[BlockRow]) -> None:
    with (
        connection.cursor() as cur,
        cur.copy(
            "COPY metric_blocks (org_id, metric_name, window_start, min_ts, max_ts, n_series, "
            'n_samples, value_mode, series, timestamps, "values") FROM STDIN'
        ) as copy,
    ):
        for r in rows:
            b = r.block
            copy.write_row(
                (
                    r.org_id,
                    r.metric_name,
                    r.window_start,
                    b.min_ts,
                    b.max_ts,
                    b.n_series,
                    b.n_samples,
                    b.value_mode,
                    b.series,
                    b.timestamps,
                    b.values,
                )
            )


def _insert_blocks(rows: Sequence[BlockRow]) -> None:
    if rows:
        partitions.write_with_partitions(
            "metric_blocks", [r.window_start for r in rows], lambda: _copy_blocks(rows)
        )


def _to_blocks(org_id: int, samples: blocks.Samples) -> list[BlockRow]:
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
        sub = blocks.Samples(samples.series[part], samples.timestamps[part], samples.values[part])
        rows.append(
            BlockRow(
                org_id, name_list[sample_name[part[0]]], int(window[part[0]]), blocks.encode(sub)
            )
        )
    return rows


def batches_drain(*, org_id: int, max_batches: int = DRAIN_MAX_BATCHES) -> int | None:
    """Move up to ``max_batches`` of the org's outbox into blocks; returns samples moved, None
    if there was no batch."""
    with transaction.atomic(), connection.cursor() as cur:
        # SKIP LOCKED: two workers draining the same org take disjoint batches.
        cur.execute(
            """
            DELETE FROM metric_batches WHERE id IN (
                SELECT id FROM metric_batches WHERE org_id = %s
                ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
            RETURNING id, series_ids, timestamps, "values"
            """,
            [org_id, max_batches],
        )
        rows = sorted(cur.fetchall())  # arrival order, so that a later write wins
        if not rows:
            return None
        series = np.concatenate([blocks.unpack(r[1], "<i8") for r in rows])
        ts = np.concatenate([blocks.unpack(r[2], "<i8") for r in rows])
        values = np.concatenate([blocks.unpack(r[3], "<f8") for r in rows])
        samples = blocks.normalize(series, ts, values)
        _insert_blocks(_to_blocks(org_id, samples))
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


@dataclass(slots=True)
class StoredBlock:
    id: int
    metric_name: str
    window_start: int
    n_series: int
    value_mode: int
    series: bytes
    timestamps: bytes
    values: bytes

    def decode(self) -> blocks.Samples:
        return blocks.decode(
            n_series=self.n_series,
            value_mode=self.value_mode,
            series=self.series,
            timestamps=self.timestamps,
            values=self.values,
        )

    def decode_segments(self, wanted: np.ndarray | None = None):
        return blocks.decode_segments(
            n_series=self.n_series,
            value_mode=self.value_mode,
            series=self.series,
            timestamps=self.timestamps,
            values=self.values,
            wanted=wanted,
        )


def _fetch_blocks(cur, where: str, params: list, *, lock: bool = False) -> list[StoredBlock]:
    """``where`` is a fixed fragment of this module; values travel as ``params``."""
    query = sql.SQL(
        'SELECT id, metric_name, window_start, n_series, value_mode, series, timestamps, "values" '
        "FROM metric_blocks WHERE {} ORDER BY window_start, id{}"
    ).format(sql.SQL(where), sql.SQL(" FOR UPDATE SKIP LOCKED" if lock else ""))
    cur.execute(query, params)
    return [StoredBlock(*row) for row in cur.fetchall()]


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
            found = _fetch_blocks(
                cur,
                "org_id = %s AND metric_name = %s AND window_start = %s",
                [org_id, metric, window_start],
                lock=True,
            )
            if len(found) < 2:
                continue
            parts = [b.decode() for b in sorted(found, key=lambda b: b.id)]
            samples = blocks.normalize(
                np.concatenate([p.series for p in parts]),
                np.concatenate([p.timestamps for p in parts]),
                np.concatenate([p.values for p in parts]),
            )
            cur.execute(
                "DELETE FROM metric_blocks WHERE window_start = %s AND id = ANY(%s)",
                [window_start, [b.id for b in found]],
            )
            _insert_blocks([BlockRow(org_id, metric, window_start, blocks.encode(samples))])
            merged += 1
    return merged


def _blocks_for(org_id: int, names: list[str], start_ms: int, end_ms: int) -> list[StoredBlock]:
    with connection.cursor() as cur:
        return _fetch_blocks(
            cur,
            "org_id = %s AND metric_name = ANY(%s) AND window_start > %s AND window_start <= %s"
            " AND max_ts >= %s AND min_ts <= %s",
            [org_id, names, start_ms - WINDOW_MS, end_ms, start_ms, end_ms],
        )


def _segments_of(group: list[StoredBlock], wanted: np.ndarray):
    """(ids, counts, timestamps, values) of one (metric, window): one block as stored (only
    the ``wanted`` series decoded), or several not yet compacted, merged (a later write wins)
    into the same layout."""
    if len(group) == 1:
        return group[0].decode_segments(wanted)
    parts = [block.decode() for block in group]
    merged = blocks.normalize(
        np.concatenate([p.series for p in parts]),
        np.concatenate([p.timestamps for p in parts]),
        np.concatenate([p.values for p in parts]),
    )
    ids, counts = np.unique(merged.series, return_counts=True)
    return ids, counts, merged.timestamps, merged.values


def samples_fetch_rows(
    *, org_id: int, series: dict[int, str], rows: dict[int, int], start_ms: int, end_ms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(timestamps, values, offsets): the samples within [start, end] of ``series`` (id ->
    metric name, which says which blocks to read), laid out by ``rows`` (id -> row), row after
    row, each in time order; row r's samples are ``[offsets[r]:offsets[r + 1]]``. What the
    PromQL engine reads.

    Each block lists its series with their sample counts, so the wanted samples are located
    per (block, series) segment and gathered in one pass, already in row order: no per-sample
    membership test and no sort of the samples themselves.
    """
    n_rows = max(rows.values(), default=-1) + 1
    no_samples = (np.empty(0, np.int64), np.empty(0), np.zeros(n_rows + 1, np.int64))
    if not rows:
        return no_samples
    found = _blocks_for(org_id, sorted(set(series.values())), start_ms, end_ms)
    groups: dict[tuple[str, int], list[StoredBlock]] = {}
    for block in found:  # in window order
        groups.setdefault((block.metric_name, block.window_start), []).append(block)
    sids = np.fromiter(rows.keys(), dtype=np.int64)
    row_of = np.fromiter(rows.values(), dtype=np.int64)
    order = np.argsort(sids)
    sids, row_of = sids[order], row_of[order]
    seg_rows, seg_starts, seg_counts, seg_groups = [], [], [], []
    parts_t, parts_v = [], []
    base = 0
    for g, group in enumerate(groups.values()):
        ids, counts, ts, vals = _segments_of(group, sids)
        at = np.minimum(np.searchsorted(sids, ids), len(sids) - 1)
        hit = sids[at] == ids
        starts = np.cumsum(counts) - counts
        seg_rows.append(row_of[at[hit]])
        seg_starts.append(base + starts[hit])
        seg_counts.append(counts[hit])
        seg_groups.append(np.full(int(hit.sum()), g))
        parts_t.append(ts)
        parts_v.append(vals)
        base += len(ts)
    if not parts_t:
        return no_samples
    seg_rows = np.concatenate(seg_rows)
    seg_counts = np.concatenate(seg_counts)
    # Groups come in window order: ordering segments by (row, group) puts time in order.
    seg_order = np.lexsort((np.concatenate(seg_groups), seg_rows))
    seg_rows, seg_counts = seg_rows[seg_order], seg_counts[seg_order]
    seg_starts = np.concatenate(seg_starts)[seg_order]
    total = int(seg_counts.sum())
    out_starts = np.cumsum(seg_counts) - seg_counts
    gather = np.arange(total) + np.repeat(seg_starts - out_starts, seg_counts)
    timestamps = np.concatenate(parts_t)[gather]
    values = np.concatenate(parts_v)[gather]
    per_row = np.bincount(seg_rows, weights=seg_counts, minlength=n_rows).astype(np.int64)
    inside = (timestamps >= start_ms) & (timestamps <= end_ms)
    if not inside.all():
        sample_rows = np.repeat(np.arange(n_rows), per_row)
        timestamps, values = timestamps[inside], values[inside]
        per_row = np.bincount(sample_rows[inside], minlength=n_rows)
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(per_row, out=offsets[1:])
    return timestamps, values, offsets


def samples_fetch(
    *, org_id: int, series: dict[int, str], start_ms: int, end_ms: int
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """(timestamps, values) per series id, sorted, de-duplicated, within [start, end]; series
    without samples there are left out."""
    ids = list(series)
    ts, values, offsets = samples_fetch_rows(
        org_id=org_id,
        series=series,
        rows={sid: i for i, sid in enumerate(ids)},
        start_ms=start_ms,
        end_ms=end_ms,
    )
    return {
        sid: (ts[lo:hi], values[lo:hi])
        for sid, lo, hi in zip(ids, offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
        if hi > lo
    }


def metric_names_between(*, org_id: int, start_ms: int, end_ms: int) -> set[str]:
    """Metric names with samples in [start, end] (from block headers, nothing decoded)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT metric_name FROM metric_blocks WHERE org_id = %s"
            " AND window_start > %s AND window_start <= %s AND max_ts >= %s AND min_ts <= %s",
            [org_id, start_ms - WINDOW_MS, end_ms, start_ms, end_ms],
        )
        return {name for (name,) in cur.fetchall()}


def partitions_drop_before(*, cutoff_ms: int) -> list[str]:
    """Drop whole daily partitions that end before ``cutoff_ms``."""
    return partitions.drop_before("metric_blocks", cutoff_ms)


def org_samples_delete_before(*, org_id: int, cutoff_ms: int) -> int:
    """Per-tenant retention shorter than the global one: delete that org's older blocks."""
    with connection.cursor() as cur:
        cur.execute(
            "DELETE FROM metric_blocks WHERE org_id = %s AND window_start + %s <= %s",
            [org_id, WINDOW_MS, cutoff_ms],
        )
        return cur.rowcount


def storage_bytes() -> int:
    """Bytes on disk of all sample and series tables, with their indexes and TOAST."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
            WHERE c.relkind = 'r' AND (c.relname IN ('metric_series', 'metric_batches')
                OR c.relname LIKE 'metric_blocks_%%')
            """
        )
        return int(cur.fetchone()[0])


def now_ms() -> int:
    return int(time.time() * 1000)
