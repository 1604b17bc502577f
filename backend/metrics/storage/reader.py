"""Reading samples back: the PromQL engine's querier over the catalog and the blocks."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence

import numpy as np
import psycopg
from django.db import DatabaseError, OperationalError, connection, transaction
from psycopg import errors as pg_errors
from psycopg import sql

from backend.metrics.labels import METRIC_NAME, LabelPairs, Labels, Matcher
from backend.metrics.promql.querier import ReadTimeout, SeriesLimitExceeded, SeriesSet, Windows
from backend.metrics.storage import block_cache, encoding
from backend.metrics.storage.blocks import (
    WINDOW_MS,
    BlockHeader,
    columns_fetch,
    headers_from_rows,
    headers_query,
)
from backend.metrics.storage.catalog import label_pair_ids, label_pairs_named, series_labels


def series_match(
    *, org_id: int, matchers: Sequence[Matcher], limit: int | None = None
) -> dict[int, Labels]:
    """Series id -> labels for the org's series that satisfy every matcher.

    Equality matchers and regexes that cannot match the empty string become postings
    look-ups (the GIN index on the series' label-pair ids); the others are checked on the
    candidates' labels.
    """
    return {
        sid: dict(labels)
        for sid, labels, _ in _series_matching(org_id=org_id, matchers=matchers, limit=limit)
    }


def series_labels_matching(
    *, org_id: int, matchers: Sequence[Matcher], limit: int | None = None
) -> list[Labels]:
    """The labels of series_match's series, in series id order, without copying them: the
    catalog's shared dicts, to read and never change (counting, serializing)."""
    return [
        labels for _, labels, _ in _series_matching(org_id=org_id, matchers=matchers, limit=limit)
    ]


def _several_statements(cur) -> bool:
    """Whether one ``execute`` of this (Django) cursor may hold several statements: psycopg's
    client-side binding cursor (Django's default) sends queries through the simple protocol;
    with ``server_side_binding`` on, a query is a prepared statement, one statement only."""
    return isinstance(getattr(cur, "cursor", None), psycopg.ClientCursor)


def _series_matching(
    *,
    org_id: int,
    matchers: Sequence[Matcher],
    limit: int | None = None,
    blocks_of: tuple[str, int, int, dict] | None = None,
) -> list[tuple[int, Labels, LabelPairs]]:
    """series_match's (series id, labels, labels_key), in series id order; the labels are the
    catalog's shared, cached dicts (``series_labels``): read them, never change them.

    ``blocks_of`` = (metric name, start ms, end ms, blocks_seen): the headers of that metric's
    blocks over that range are read in the same round trip as the series (a second statement
    of the same query) and kept in ``blocks_seen`` under ``samples_fetch_rows``' key, when at
    least one series of the metric may match (the selector names the metric)."""
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
                pair_ids = label_pair_ids(cur, org_id, {(m.name, m.value)}, create=False)
                if not pair_ids:
                    return []
                required.extend(pair_ids.values())
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
                    return []
                where.append(sql.SQL("label_ids && %s::int[]"))
                params.append(ids)
            elif m.op == "!=" and m.value != "":
                # Only the series holding this very pair fail it: excluded in SQL, before
                # their labels are looked up (no such pair: every series passes).
                pair_ids = label_pair_ids(cur, org_id, {(m.name, m.value)}, create=False)
                if pair_ids:
                    where.append(sql.SQL("NOT label_ids @> %s::int[]"))
                    params.append(list(pair_ids.values()))
            elif m.op == "!~" and pattern.match("") is None:
                # An absent label ("") passes; a series fails only by holding a pair whose
                # value the regex matches.
                ids = [
                    pid
                    for pid, value in label_pairs_named(cur, org_id, m.name)
                    if pattern.match(value)
                ]
                if ids:
                    where.append(sql.SQL("NOT label_ids && %s::int[]"))
                    params.append(ids)
            else:
                post.append((m, pattern))
        if required:
            where.append(sql.SQL("label_ids @> %s::int[]"))
            params.append(required)
        query = sql.SQL("SELECT id, label_ids FROM metric_series WHERE {} ORDER BY id").format(
            sql.SQL(" AND ").join(where)
        )
        if blocks_of is None or not _several_statements(cur):
            cur.execute(query, params)
            rows = cur.fetchall()
        else:
            # The headers are a few small columns a block: read even when the series turn
            # out to be too many (the query is then refused before any block is read).
            name, start_ms, end_ms, blocks_seen = blocks_of
            cur.execute(
                query + sql.SQL("; ") + headers_query(_BLOCKS_WHERE),
                [*params, *_blocks_params(org_id, [name], start_ms, end_ms)],
            )
            rows = cur.fetchall()
            cur.nextset()
            headers = headers_from_rows(cur.fetchall())
            if rows:
                blocks_seen[((name,), start_ms, end_ms)] = headers
        found = series_labels(cur, org_id, rows)
    if post:
        kept = (s for s in found if all(m.matches(s[1], p) for m, p in post))
        return list(itertools.islice(kept, limit))
    return found if limit is None else found[:limit]


_BLOCKS_WHERE = (
    "org_id = %s AND metric_name = ANY(%s) AND window_start > %s AND window_start <= %s"
    " AND max_ts >= %s AND min_ts <= %s"
)


def _blocks_params(org_id: int, names: list[str], start_ms: int, end_ms: int) -> list:
    return [org_id, names, start_ms - WINDOW_MS, end_ms, start_ms, end_ms]


def _headers_for(org_id: int, names: list[str], start_ms: int, end_ms: int) -> list[BlockHeader]:
    with connection.cursor() as cur:
        cur.execute(headers_query(_BLOCKS_WHERE), _blocks_params(org_id, names, start_ms, end_ms))
        return headers_from_rows(cur.fetchall())


def _decoded(
    org_id: int, headers: list[BlockHeader], wanted: np.ndarray
) -> list[encoding.Decoded] | None:
    """Each block of ``headers`` decoded, from the process's block cache where it holds them.
    The others are read in one statement; those that fit the cache's budget for one query (a
    quarter of it) are decoded whole and kept, the rest only for the ``wanted`` series: a query
    over more than that allocates no more than it would without the cache. None when a block
    is gone since its header was read (the caller reads the headers again)."""
    budget = block_cache.capacity() // 4
    out = block_cache.get_many(org_id, headers) if budget else [None] * len(headers)
    whole, partial = [], []
    for i, header in enumerate(headers):
        if out[i] is not None:
            continue
        size = header.n_samples * 16 + header.n_series * 24
        if size <= budget:
            budget -= size
            whole.append(i)
        else:
            partial.append(i)
    if whole or partial:
        with connection.cursor() as cur:
            columns = columns_fetch(cur, org_id, [headers[i] for i in whole + partial])
        if columns is None:
            return None
        for i, d in zip(whole, encoding.decode_blocks(columns[: len(whole)]), strict=True):
            block_cache.put(org_id, headers[i], d)
            out[i] = d
        decoded = encoding.decode_blocks(columns[len(whole) :], wanted)
        for i, d in zip(partial, decoded, strict=True):
            out[i] = d
    return out


def _in_windows(timestamps: np.ndarray, windows: Windows) -> np.ndarray | None:
    """Which samples of ``[first end - range, last end]`` fall in at least one of the windows
    ``[end_i - range, end_i]``; None when all of them do (windows at least as long as the
    step cover the span)."""
    if windows.range_ms >= windows.step_ms or windows.count == 1:
        return None
    # the distance from t to the next window end; windows shorter than the step
    return (windows.first_end - timestamps) % windows.step_ms <= windows.range_ms


# Reads of the headers, then of the blocks' columns, before giving up (each miss means a
# compaction replaced blocks in between: in a reading scope of its own, a query sees one
# snapshot and never misses).
_ATTEMPTS = 3


def samples_fetch_rows(
    *,
    org_id: int,
    series: dict[int, str],
    rows: dict[int, int],
    start_ms: int,
    end_ms: int,
    windows: Windows | None = None,
    blocks_seen: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(timestamps, values, offsets): the samples within [start, end] of ``series`` (id ->
    metric name, which says which blocks to read), laid out by ``rows`` (id -> row), row after
    row, each in time order; row r's samples are ``[offsets[r]:offsets[r + 1]]``. What the
    PromQL engine reads. With ``windows``, samples outside every window may be left out.
    ``blocks_seen`` keeps the block headers read, by (metric names, range), for the next call of
    the same read scope (two selectors of one metric over one range read them once).

    Each block lists its series with their sample counts, so the wanted samples are located
    per (block, series) segment and gathered in one pass, already in row order: no per-sample
    membership test and no sort of the samples themselves. Blocks are decoded all together
    (``encoding.decode_many``), or come decoded from the process's block cache.
    """
    n_rows = max(rows.values(), default=-1) + 1
    no_samples = (np.empty(0, np.int64), np.empty(0), np.zeros(n_rows + 1, np.int64))
    if not rows:
        return no_samples
    names = sorted(set(series.values()))
    key = (tuple(names), start_ms, end_ms)
    sids = np.fromiter(rows.keys(), dtype=np.int64)
    row_of = np.fromiter(rows.values(), dtype=np.int64)
    order = np.argsort(sids)
    sids, row_of = sids[order], row_of[order]
    blocks_seen = {} if blocks_seen is None else blocks_seen
    for _ in range(_ATTEMPTS):
        headers = blocks_seen.get(key)
        if headers is None:
            headers = blocks_seen[key] = _headers_for(org_id, names, start_ms, end_ms)
        decoded = _decoded(org_id, headers, sids)
        if decoded is not None:
            break
        del blocks_seen[key]  # compacted meanwhile: the new blocks' headers, then
    else:
        raise OperationalError("the blocks read were replaced again and again: try again")
    groups: dict[tuple[str, int], list[encoding.Decoded]] = {}
    for header, d in zip(headers, decoded, strict=True):  # in window order
        groups.setdefault((header.metric_name, header.window_start), []).append(d)
    segs = encoding.gather(
        [
            (g, group[0] if len(group) == 1 else encoding.merge_decoded(group))
            for g, group in enumerate(groups.values())
        ],
        sids,
    )
    if not len(segs.ids):
        return no_samples
    seg_starts = segs.starts
    seg_rows = row_of[np.searchsorted(sids, segs.ids)]
    # Blocks are tagged in window order: ordering segments by (row, tag) puts time in order.
    seg_order = np.lexsort((segs.tags, seg_rows))
    seg_rows, seg_counts = seg_rows[seg_order], segs.counts[seg_order]
    seg_starts = seg_starts[seg_order]
    total = int(seg_counts.sum())
    out_starts = np.cumsum(seg_counts) - seg_counts
    gather = np.arange(total) + np.repeat(seg_starts - out_starts, seg_counts)
    timestamps = segs.timestamps[gather]
    per_row = np.bincount(seg_rows, weights=seg_counts, minlength=n_rows).astype(np.int64)
    inside = (timestamps >= start_ms) & (timestamps <= end_ms)
    if windows is not None:
        # the caller's span is the windows' (its start may reach back further: then the
        # earlier samples are outside every window and dropped as well)
        in_windows = _in_windows(timestamps, windows)
        if in_windows is not None:
            inside &= in_windows & (timestamps >= windows.first_end - windows.range_ms)
    if not inside.all():
        sample_rows = np.repeat(np.arange(n_rows), per_row)
        gather, timestamps = gather[inside], timestamps[inside]
        per_row = np.bincount(sample_rows[inside], minlength=n_rows)
    values = segs.values[gather]
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


class _LazyReadOnlyTransaction:
    """A read-only transaction with the query's statement timeout, begun only by the scope's
    first SQL statement and in the same round trip: the execute wrapper prepends
    ``BEGIN … READ ONLY; SET LOCAL statement_timeout = N;`` to that statement (psycopg's
    client-side binding cursor, Django's default, sends a query through the simple protocol,
    which runs several statements) and steps over their two results. A scope that reads
    nothing (``vector(1)``) sends nothing; one that reads sends COMMIT (or ROLLBACK after an
    error) at its end. Every statement the connection runs inside the scope goes through the
    wrapper, whoever issues it, so none runs outside the transaction. Round trips for a scope
    of n statements: n + 1 (0 for n = 0), where ``transaction.atomic()`` + ``set_config`` took
    n + 3 (psycopg's BEGIN, the settings, the statements, COMMIT). The transaction is
    REPEATABLE READ: its statements see one snapshot, so a query's series, block headers and
    block columns agree while compaction replaces blocks (read-only, it cannot fail to
    serialize)."""

    def __init__(self, timeout_ms: int) -> None:
        self.prefix = (
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;"
            f" SET LOCAL statement_timeout = {int(timeout_ms)}; "
        )
        self.begun = False

    def __call__(self, execute, statement, params, many, context):
        if self.begun:
            return execute(statement, params, many, context)
        self.begun = True
        cursor = context["cursor"]
        joinable = isinstance(statement, str | sql.Composable) and _several_statements(cursor)
        if many or not joinable:
            execute(self.prefix, None, False, context)
            return execute(statement, params, many, context)
        if isinstance(statement, str):
            joined = self.prefix + statement
        else:
            joined = sql.SQL(self.prefix) + statement
        result = execute(joined, params, many, context)
        cursor.nextset()  # past BEGIN
        cursor.nextset()  # past SET: the caller's statement's result is current
        return result

    @contextlib.contextmanager
    def scope(self):
        with connection.execute_wrapper(self):
            try:
                yield
            except BaseException:
                if self.begun:
                    try:
                        with connection.cursor() as cur:
                            cur.execute("ROLLBACK")
                    except DatabaseError:
                        connection.close()  # a connection in an unknown state is not reused
                raise
        if self.begun:
            with connection.cursor() as cur:
                cur.execute("COMMIT")


class PostgresQuerier:
    """The PromQL engine's querier over one org's catalog and blocks."""

    def __init__(self, *, org_id: int) -> None:
        if org_id is None:
            raise ValueError("a querier needs an org")
        self.org_id = org_id
        self._blocks_seen: dict | None = None  # within one reading scope

    @contextlib.contextmanager
    def reading(self, *, timeout_seconds: float):
        """One read-only transaction bounded by the query timeout, so that a slow statement
        is cancelled by PostgreSQL rather than left running. Re-entrant: inside an open
        reading scope (several queries read as one, e.g. the mesh graph's), the outer scope's
        transaction, timeout and blocks read are kept."""
        if self._blocks_seen is not None:
            try:
                yield self
            except OperationalError as exc:
                if isinstance(exc.__cause__, pg_errors.QueryCanceled):
                    raise ReadTimeout from exc
                raise
            return
        timeout_ms = max(1, int(timeout_seconds * 1000))
        try:
            if connection.in_atomic_block or not connection.get_autocommit():
                # inside the caller's transaction (a rules evaluation, a test): settings local
                # to a savepoint's transaction, as before
                with transaction.atomic():
                    with connection.cursor() as cur:  # both settings last until the end
                        cur.execute(
                            "SELECT set_config('statement_timeout', %s, true),"
                            " set_config('transaction_read_only', 'on', true)",
                            [str(timeout_ms)],
                        )
                    yield from self._scope()
            else:
                with _LazyReadOnlyTransaction(timeout_ms).scope():
                    yield from self._scope()
        except OperationalError as exc:
            if isinstance(exc.__cause__, pg_errors.QueryCanceled):
                raise ReadTimeout from exc
            raise

    def _scope(self):
        self._blocks_seen = {}
        try:
            yield self
        finally:
            self._blocks_seen = None

    def select(
        self,
        matchers: Sequence[Matcher],
        *,
        start_ms: int,
        end_ms: int,
        max_series: int,
        windows: Windows | None = None,
    ) -> SeriesSet:
        name = next(
            (m.value for m in matchers if m.name == METRIC_NAME and m.op == "=" and m.value), None
        )
        blocks_of = None
        if (
            name is not None
            and self._blocks_seen is not None
            and ((name,), start_ms, end_ms) not in self._blocks_seen
        ):
            blocks_of = (name, start_ms, end_ms, self._blocks_seen)
        found = _series_matching(
            org_id=self.org_id, matchers=matchers, limit=max_series + 1, blocks_of=blocks_of
        )
        if len(found) > max_series:
            raise SeriesLimitExceeded(max_series)
        found.sort(key=lambda s: s[2])
        timestamps, values, offsets = samples_fetch_rows(
            org_id=self.org_id,
            series={sid: labels.get(METRIC_NAME, "") for sid, labels, _ in found},
            rows={s[0]: i for i, s in enumerate(found)},
            start_ms=start_ms,
            end_ms=end_ms,
            windows=windows,
            blocks_seen=self._blocks_seen,
        )
        labels = [dict(s[1]) for s in found]  # copies: the engine may change its own
        return SeriesSet.from_rows(labels, timestamps, values, offsets)
