"""Span blocks: cutting the row head (``trace_spans``) into columnar blocks (``trace_blocks``),
the trace index and block summaries, and fetching the blocks a read needs.

A block holds up to ``BLOCK_MAX_SPANS`` spans of one org whose starts fall in one hour window
(the partition key: blocks live in daily partitions, dropped whole by retention). Its row
carries the summary reads prune with (time and duration range, services and the spans of
each, operations, attribute keys, an error flag, the short-id tokens of its traces: see
``encoding.prefix_tokens``) and the trace index: the 64-bit keys of its traces in a GIN
indexed array, so a trace by id reads only the blocks that hold it.

Cutting moves head rows into blocks in one transaction (DELETE … RETURNING, then INSERT),
under the org's store lock, which the drain also holds: a span is either in the head or in a
block, never both, and a retried span finds its stored copy wherever it is.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
from django.db import connection, transaction

from backend.pipeline import partitions
from backend.pipeline.binary import binary_cursor
from backend.tracing.storage.encoding import (
    AttrColumns,
    Block,
    SpanRows,
    Summary,
    attr_columns,
    attr_columns_concat,
    encode,
    trace_key,
)

NS_PER_MS = 1_000_000
WINDOW_NS = 3600 * 10**9  # a block's spans start within one hour
BLOCK_MAX_SPANS = 5_000  # trace by id decodes one block: small keeps it fast
CUT_MAX_SPANS = 200_000  # spans moved by one cut transaction
_LOCK = zlib.crc32(b"trace_store") & 0x7FFFFFFF


def org_lock(cur, org_id: int, *, shared: bool = False) -> None:
    """The org's store lock, held until commit. Drains take it ``shared``: they run side by
    side, each on the batches it claimed, and the key head's unique index decides which of
    two drains stores a span both hold. Cuts, compactions, prunes and rollups take it alone:
    nothing is moved or pruned between a drain's duplicate check and its insert, and a
    rollup sees no drain in flight, so every drain round numbered up to the highest it
    reads has committed (drain rounds are numbered after taking the lock)."""
    lock = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    cur.execute(f"SELECT {lock}(%s, %s)", [_LOCK, org_id])


_HEAD_COLUMNS = (
    "trace_id, span_id, parent_span_id, service_id, operation_id, kind, start_ns, duration_ns, "
    "status_code, status_message, resource_id, scope, attributes, events, links, flags, "
    "trace_state"
)


def _json_column(values) -> list:
    """Parse a column of jsonb texts (Django's raw cursors hand jsonb back as text) in one
    ``json.loads``: far fewer calls than one per row."""
    if all(isinstance(v, str) or v is None for v in values):
        return json.loads("[" + ",".join(v if v is not None else "null" for v in values) + "]")
    return [json.loads(v) if isinstance(v, str) else v for v in values]


def rows_from_head(rows: list[tuple]) -> SpanRows:
    cols = list(zip(*rows, strict=True))
    return SpanRows(
        trace_ids=[bytes(v) for v in cols[0]],
        span_ids=[bytes(v) for v in cols[1]],
        parent_ids=[bytes(v) if v is not None else None for v in cols[2]],
        service_ids=np.array(cols[3], dtype=np.int64),
        operation_ids=np.array(cols[4], dtype=np.int64),
        kinds=np.array(cols[5], dtype=np.int64),
        starts=np.array(cols[6], dtype=np.int64),
        durations=np.array(cols[7], dtype=np.int64),
        statuses=np.array(cols[8], dtype=np.int64),
        status_messages=list(cols[9]),
        resource_ids=np.array(cols[10], dtype=np.int64),
        scopes=list(cols[11]),
        attributes=_json_column(cols[12]),
        events=_json_column(cols[13]),
        links=_json_column(cols[14]),
        flags=np.array(cols[15], dtype=np.int64),
        trace_states=list(cols[16]),
    )


def subset(rows: SpanRows, idx: np.ndarray) -> SpanRows:
    pick = idx.tolist()
    # (itemgetter picks in C; with one index it returns the item, not a tuple)
    take = itemgetter(*pick) if len(pick) > 1 else (lambda v: tuple(v[i] for i in pick))
    out = {}
    for name in SpanRows.__slots__:
        value = getattr(rows, name)
        if isinstance(value, np.ndarray):
            out[name] = value[idx]
        elif isinstance(value, AttrColumns):
            out[name] = value.take(idx, len(rows))
        else:
            out[name] = list(take(value))
    return SpanRows(**out)


def _int_array(values: list[int]) -> str:
    """An integer array as PostgreSQL's text literal: made in C (join, map), where psycopg
    would dump a list element by element."""
    return "{" + ",".join(map(str, values)) + "}"


def _insert(cur, org_id: int, window_ns: int, payload: bytes, s: Summary) -> None:
    binary_cursor(cur).execute(  # (the payload in binary: no hex literal)
        """
        INSERT INTO trace_blocks (org_id, window_ns, min_start_ns, max_start_ns, n_spans,
            n_traces, min_duration_ns, max_duration_ns, has_error, service_ids, operation_ids,
            attribute_keys, trace_keys, service_counts, prefix_tokens, payload)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::int[], %s::int[], %s, %s::bigint[],
            %s::int[], %s::int[], %b)
        """,
        [
            org_id,
            window_ns,
            s.min_start_ns,
            s.max_start_ns,
            s.n_spans,
            s.n_traces,
            s.min_duration_ns,
            s.max_duration_ns,
            s.has_error,
            _int_array(s.service_ids),
            _int_array(s.operation_ids),
            s.attribute_keys,
            _int_array(s.trace_keys),
            _int_array(s.service_counts),
            _int_array(s.prefix_tokens),
            payload,
        ],
    )


def blocks_write(cur, org_id: int, rows: SpanRows) -> int:
    """Encode spans into blocks (by hour window, then by trace, ``BLOCK_MAX_SPANS`` at most)
    and insert them; returns blocks written."""
    if not len(rows):
        return 0
    windows = rows.starts // WINDOW_NS * WINDOW_NS
    tid = np.frombuffer(b"".join(rows.trace_ids), dtype="S16")
    order = np.lexsort((rows.starts, tid, windows))
    pieces = []
    for window in np.unique(windows).tolist():
        mine = order[windows[order] == window]
        for lo in range(0, len(mine), BLOCK_MAX_SPANS):
            pieces.append((window, mine[lo : lo + BLOCK_MAX_SPANS]))

    def write():
        for window, idx in pieces:
            payload, summary = encode(subset(rows, idx))
            _insert(cur, org_id, window, payload, summary)

    partitions.write_with_partitions(
        "trace_blocks", [w for w, _ in pieces], write, per_ms=NS_PER_MS
    )
    return len(pieces)


def blocks_cut(*, org_id: int, before_ns: int, max_seq: int) -> int:
    """Move the org's head spans that start before ``before_ns`` and were drained in rounds up
    to ``max_seq`` (so the rollups have counted them) into blocks; returns spans moved."""
    moved = 0
    while True:
        with transaction.atomic(), connection.cursor() as cur:
            org_lock(cur, org_id)
            cur.execute(
                f"""
                DELETE FROM trace_spans
                WHERE org_id = %s AND start_ns < %s AND seq <= %s
                  -- (a ctid is unique within one partition only: with the partition's oid)
                  AND (tableoid, ctid) IN (
                    SELECT tableoid, ctid FROM trace_spans WHERE org_id = %s AND start_ns < %s
                    AND seq <= %s LIMIT %s)
                RETURNING {_HEAD_COLUMNS}
                """,  # noqa: S608  (constant column list)
                [org_id, before_ns, max_seq, org_id, before_ns, max_seq, CUT_MAX_SPANS],
            )
            rows = cur.fetchall()
            if not rows:
                return moved
            blocks_write(cur, org_id, rows_from_head(rows))
            moved += len(rows)
        if len(rows) < CUT_MAX_SPANS:
            return moved


def rows_from_block(b: Block) -> SpanRows:
    """Every span of a block, as the columns ``encode`` takes (a compaction re-encodes them)."""
    n = b.n_spans
    rows = np.arange(n)
    raw_ids = b.raw("span_ids")
    trace_raw = b.raw("trace_ids")
    texts = b.texts(rows)
    extras = b.extras(rows)
    return SpanRows(
        trace_ids=[trace_raw[16 * t : 16 * t + 16] for t in b.span_trace_numbers().tolist()],
        span_ids=[raw_ids[8 * r : 8 * r + 8] for r in range(n)],
        parent_ids=b.parent_ids(rows),
        service_ids=b.service_ids(),
        operation_ids=b.operation_ids(),
        kinds=b.kinds(),
        starts=b.starts(),
        durations=b.durations(),
        statuses=b.statuses(),
        status_messages=[t[0] for t in texts],
        resource_ids=b.resource_ids(),
        scopes=[t[1] for t in texts],
        attributes=b.attributes(rows),
        events=[e[0] or None for e in extras],
        links=[e[1] or None for e in extras],
        flags=b.ints("flags"),
        trace_states=[t[2] for t in texts],
    )


def rows_concat(parts: list[SpanRows]) -> SpanRows:
    out = {}
    for name in SpanRows.__slots__:
        values = [getattr(p, name) for p in parts]
        if name == "attributes" and any(isinstance(v, AttrColumns) for v in values):
            out[name] = attr_columns_concat(
                [
                    (v if isinstance(v, AttrColumns) else attr_columns(v), len(p))
                    for v, p in zip(values, parts, strict=True)
                ]
            )
        elif isinstance(values[0], np.ndarray):
            out[name] = np.concatenate(values).astype(np.int64)
        else:
            out[name] = [v for part in values for v in part]
    return SpanRows(**out)


COMPACT_BELOW = BLOCK_MAX_SPANS // 2  # a block this small is merged with its window's others
COMPACT_MAX_SPANS = 50_000  # spans re-encoded by one compaction transaction


def blocks_compact(*, org_id: int, settled_before_ns: int) -> tuple[int, int]:
    """Merge the org's small blocks (under ``COMPACT_BELOW`` spans: a low-volume org's drain
    rounds, late spans) of one hour window into full ones, for windows that ended before
    ``settled_before_ns`` (no more spans expected) or whose small blocks fill a block anyway.
    Same spans, same partition (the window), one transaction per window under the org's store
    lock; returns (blocks merged, blocks written)."""
    merged = written = 0
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT window_ns FROM trace_blocks WHERE org_id = %s AND n_spans < %s
            GROUP BY window_ns
            HAVING count(*) > 1 AND (window_ns + %s <= %s OR sum(n_spans) >= %s)
            ORDER BY window_ns
            """,
            [org_id, COMPACT_BELOW, WINDOW_NS, settled_before_ns, BLOCK_MAX_SPANS],
        )
        windows = [r[0] for r in cur.fetchall()]
    for window in windows:
        with transaction.atomic(), connection.cursor() as cur:
            org_lock(cur, org_id)
            cur.execute(
                """
                DELETE FROM trace_blocks WHERE org_id = %s AND window_ns = %s AND id IN (
                    SELECT id FROM (
                        SELECT id, sum(n_spans) OVER (ORDER BY id) AS upto FROM trace_blocks
                        WHERE org_id = %s AND window_ns = %s AND n_spans < %s) small
                    WHERE upto <= %s)
                RETURNING min_start_ns, payload
                """,
                [org_id, window, org_id, window, COMPACT_BELOW, COMPACT_MAX_SPANS],
            )
            found = cur.fetchall()
            if len(found) < 2:
                transaction.set_rollback(True)
                continue
            rows = rows_concat([rows_from_block(Block(bytes(p), lo)) for lo, p in found])
            merged += len(found)
            written += blocks_write(cur, org_id, rows)
    return merged, written


def keys_prune(*, org_id: int, before_ns: int, max_seq: int) -> int:
    """Delete the org's span keys that start before ``before_ns`` and were drained in rounds
    up to ``max_seq`` (counted by the rollups), and move the org's key horizon up to
    ``before_ns`` (a drained span older than it is looked up in the blocks too); returns the
    keys deleted. Run after the cut of the same bounds: a span whose key is gone is in a
    block."""
    with transaction.atomic(), connection.cursor() as cur:
        org_lock(cur, org_id)
        cur.execute(
            """
            INSERT INTO trace_span_horizon (org_id, pruned_before_ns) VALUES (%s, %s)
            ON CONFLICT (org_id) DO UPDATE SET pruned_before_ns =
                greatest(trace_span_horizon.pruned_before_ns, EXCLUDED.pruned_before_ns)
            """,
            [org_id, before_ns],
        )
        cur.execute(
            "DELETE FROM trace_span_keys WHERE org_id = %s AND start_ns < %s AND seq <= %s",
            [org_id, before_ns, max_seq],
        )
        return cur.rowcount


@dataclass(slots=True)
class StoredBlock:
    id: int
    min_start_ns: int
    max_start_ns: int
    max_duration_ns: int
    block: Block


def _fetch(cur, where: str, params: list, order: str = "id") -> list[StoredBlock]:
    cur.execute(
        "SELECT id, min_start_ns, max_start_ns, max_duration_ns, payload FROM trace_blocks "  # noqa: S608
        f"WHERE {where} ORDER BY {order}",
        params,
    )
    return [
        StoredBlock(bid, lo, hi, dmax, Block(bytes(payload), lo))
        for bid, lo, hi, dmax, payload in cur.fetchall()
    ]


def blocks_with_traces(cur, org_id: int, trace_ids: list[bytes]) -> list[StoredBlock]:
    """The org's blocks that may hold these traces (the trace index; keys may collide, so
    readers still compare full ids)."""
    keys = sorted({trace_key(t) for t in trace_ids})
    return _fetch(cur, "trace_keys && %s::bigint[] AND org_id = %s", [keys, org_id])


def drop_stored_in_blocks(cur, org_id: int, table: str, *, below_ns: int) -> int:
    """Delete from ``table`` (a temp table with trace_id, span_id, kind, start_ns) the spans
    starting before ``below_ns`` that are already stored in the org's blocks; returns how
    many. The caller passes the org's key horizon: younger spans still have their keys."""
    cur.execute(
        f"SELECT DISTINCT trace_id FROM {table} WHERE start_ns < %s",  # noqa: S608
        [below_ns],
    )
    trace_ids = [bytes(r[0]) for r in cur.fetchall()]
    if not trace_ids:
        return 0
    wanted = np.frombuffer(b"".join(trace_ids), dtype="S16")
    found = set()
    for stored in blocks_with_traces(cur, org_id, trace_ids):
        b = stored.block
        rows = np.flatnonzero(np.isin(b.trace_ids(), wanted)[b.span_trace_numbers()])
        numbers = b.span_trace_numbers()
        kinds, starts = b.kinds(), b.starts()
        for r in rows.tolist():
            found.add((b.trace_id(int(numbers[r])), b.span_id(r), int(kinds[r]), int(starts[r])))
    if not found:
        return 0
    cols = list(zip(*found, strict=True))
    cur.execute(
        f"""
        DELETE FROM {table} t USING unnest(%s::bytea[], %s::bytea[], %s::smallint[],
                                            %s::bigint[]) AS d(tr, sp, k, st)
        WHERE t.trace_id = d.tr AND t.span_id = d.sp AND t.kind = d.k AND t.start_ns = d.st
        """,  # noqa: S608  (a temp table name of this module's callers)
        [list(c) for c in cols],
    )
    return cur.rowcount
