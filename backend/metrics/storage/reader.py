"""Reading samples back: the PromQL engine's querier over the catalog and the blocks."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
from django.db import OperationalError, connection, transaction
from psycopg import errors as pg_errors
from psycopg import sql

from backend.metrics.labels import METRIC_NAME, Labels, Matcher, labels_key
from backend.metrics.promql.querier import ReadTimeout, SeriesLimitExceeded, SeriesSet
from backend.metrics.storage import encoding
from backend.metrics.storage.blocks import WINDOW_MS, StoredBlock, blocks_fetch
from backend.metrics.storage.catalog import label_pair_ids, label_pairs_by_id, label_pairs_named


def series_match(
    *, org_id: int, matchers: Sequence[Matcher], limit: int | None = None
) -> dict[int, Labels]:
    """Series id -> labels for the org's series that satisfy every matcher.

    Equality matchers and regexes that cannot match the empty string become postings
    look-ups (the GIN index on the series' label-pair ids); the others are checked on the
    candidates' labels.
    """
    if org_id is None:
        raise ValueError("series_match needs an org")
    where = [sql.SQL("org_id = %s")]
    params: list = [org_id]
    post: list[tuple[Matcher, object]] = []
    with connection.cursor() as cur:
        required: list[int] = []
        for m in matchers:
            pattern = m.compile()
            if m.op == "=" and m.value != "":
                found = label_pair_ids(cur, org_id, {(m.name, m.value)}, create=False)
                if not found:
                    return {}
                required.extend(found.values())
                if m.name == METRIC_NAME:
                    where.append(sql.SQL("metric_name = %s"))
                    params.append(m.value)
            elif m.op == "=~" and pattern.match("") is None:
                ids = [
                    pid
                    for pid, value in label_pairs_named(cur, org_id, m.name)
                    if pattern.match(value)
                ]
                if not ids:
                    return {}
                where.append(sql.SQL("label_ids && %s::int[]"))
                params.append(ids)
            else:
                post.append((m, pattern))
        if required:
            where.append(sql.SQL("label_ids @> %s::int[]"))
            params.append(required)
        query = sql.SQL("SELECT id, label_ids FROM metric_series WHERE {} ORDER BY id").format(
            sql.SQL(" AND ").join(where)
        )
        cur.execute(query, params)
        rows = cur.fetchall()
        pairs = label_pairs_by_id(cur, org_id, {pid for _, ids in rows for pid in ids})
    out: dict[int, dict[str, str]] = {}
    for sid, ids in rows:
        labels = dict(pairs[pid] for pid in ids)
        if all(m.matches(labels, p) for m, p in post):
            out[sid] = labels
            if limit is not None and len(out) >= limit:
                break
    return out


def _blocks_for(org_id: int, names: list[str], start_ms: int, end_ms: int) -> list[StoredBlock]:
    with connection.cursor() as cur:
        return blocks_fetch(
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
    merged = encoding.normalize(
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


class PostgresQuerier:
    """The PromQL engine's querier over one org's catalog and blocks."""

    def __init__(self, *, org_id: int) -> None:
        if org_id is None:
            raise ValueError("a querier needs an org")
        self.org_id = org_id

    @contextlib.contextmanager
    def reading(self, *, timeout_seconds: float):
        """One read-only transaction bounded by the query timeout, so that a slow statement
        is cancelled by PostgreSQL rather than left running."""
        timeout_ms = max(1, int(timeout_seconds * 1000))
        try:
            with transaction.atomic():
                with connection.cursor() as cur:  # both settings last until the end
                    cur.execute(
                        "SELECT set_config('statement_timeout', %s, true),"
                        " set_config('transaction_read_only', 'on', true)",
                        [str(timeout_ms)],
                    )
                yield self
        except OperationalError as exc:
            if isinstance(exc.__cause__, pg_errors.QueryCanceled):
                raise ReadTimeout from exc
            raise

    def select(
        self, matchers: Sequence[Matcher], *, start_ms: int, end_ms: int, max_series: int
    ) -> SeriesSet:
        found = series_match(org_id=self.org_id, matchers=matchers, limit=max_series + 1)
        if len(found) > max_series:
            raise SeriesLimitExceeded(max_series)
        ordered = sorted(found, key=lambda sid: labels_key(found[sid]))
        timestamps, values, offsets = samples_fetch_rows(
            org_id=self.org_id,
            series={sid: labels.get(METRIC_NAME, "") for sid, labels in found.items()},
            rows={sid: i for i, sid in enumerate(ordered)},
            start_ms=start_ms,
            end_ms=end_ms,
        )
        return SeriesSet.from_rows([found[sid] for sid in ordered], timestamps, values, offsets)
