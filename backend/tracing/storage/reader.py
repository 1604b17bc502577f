"""Reading spans from the row head and the blocks together: trace by id, search, counts.

Trace by id asks the trace index which blocks hold the trace and decodes only those blocks'
id columns, then the attributes of the matching rows. Search prunes blocks with their
summaries (org, time range, service, operations, duration range, error flag), visits the
survivors newest first (or slowest first) and stops as soon as no block left can change the
answer; the head answers in SQL, and the two top lists merge by each trace's maximum. A search
without tag filters reads the recent part of its window from the key head
(``trace_span_keys``: every stored span's service, operation, start, duration and status,
kept until the org's key horizon) in SQL, and decodes only blocks older than that.
"""

from __future__ import annotations

import heapq
import json
import re
import time
from collections.abc import Callable

import numpy as np
from django.db import connection

from backend.tenancy.selectors import limits_get
from backend.tracing.spans import StoredSpan
from backend.tracing.storage import blocks as block_store
from backend.tracing.storage.catalog import names_get
from backend.tracing.storage.encoding import Block, value_text

NS_PER_DAY = 86_400 * 10**9

_SPAN_COLUMNS = """
    s.trace_id, s.span_id, s.parent_span_id, sv.name, op.name, s.kind, s.start_ns,
    s.duration_ns, s.status_code, s.status_message, s.attributes, s.events, s.links,
    r.attributes, s.scope, s.trace_state, s.flags
"""


def _json(value, empty):
    # Django's raw cursors hand jsonb back as text.
    if value is None:
        return empty
    return json.loads(value) if isinstance(value, str) else value


def _head_spans(cur, org_id: int, condition: str, params: list) -> list[StoredSpan]:
    cur.execute(
        f"SELECT {_SPAN_COLUMNS} FROM trace_spans s "  # noqa: S608
        "JOIN trace_services sv ON sv.org_id = s.org_id AND sv.id = s.service_id "
        "JOIN trace_operations op ON op.org_id = s.org_id AND op.id = s.operation_id "
        "JOIN trace_resources r ON r.org_id = s.org_id AND r.id = s.resource_id "
        f"WHERE s.org_id = %s AND {condition}",
        [org_id, *params],
    )
    return [
        StoredSpan(
            bytes(r[0]),
            bytes(r[1]),
            bytes(r[2]) if r[2] is not None else None,
            *r[3:10],
            _json(r[10], {}),
            _json(r[11], []),
            _json(r[12], []),
            _json(r[13], {}),
            *r[14:17],
        )
        for r in cur.fetchall()
    ]


def _block_spans(org_id: int, picks: list[tuple[Block, np.ndarray]]) -> list[StoredSpan]:
    """StoredSpans of the rows picked from each block."""
    picks = [(b, rows) for b, rows in picks if len(rows)]
    if not picks:
        return []
    services, operations, resources = names_get(
        org_id=org_id,
        service_ids={int(i) for b, r in picks for i in b.service_ids()[r]},
        operation_ids={int(i) for b, r in picks for i in b.operation_ids()[r]},
        resource_ids={int(i) for b, r in picks for i in b.resource_ids()[r]},
    )
    out = []
    for b, rows in picks:
        numbers = b.span_trace_numbers()[rows]
        columns = zip(
            rows.tolist(),
            numbers.tolist(),
            b.parent_ids(rows),
            b.service_ids()[rows].tolist(),
            b.operation_ids()[rows].tolist(),
            b.kinds()[rows].tolist(),
            b.starts()[rows].tolist(),
            b.durations()[rows].tolist(),
            b.statuses()[rows].tolist(),
            b.texts(rows),
            b.attributes(rows),
            b.extras(rows),
            b.resource_ids()[rows].tolist(),
            b.ints("flags")[rows].tolist(),
            strict=True,
        )
        for (
            row,
            number,
            parent,
            sid,
            oid,
            kind,
            start,
            dur,
            status,
            texts,
            attrs,
            extra,
            rid,
            flags,
        ) in columns:
            message, scope, trace_state = texts
            out.append(
                StoredSpan(
                    b.trace_id(number),
                    b.span_id(row),
                    parent,
                    services[sid],
                    operations[oid],
                    kind,
                    start,
                    dur,
                    status,
                    message,
                    attrs,
                    extra[0],
                    extra[1],
                    resources[rid],
                    scope,
                    trace_state,
                    flags,
                )
            )
    return out


def spans_of_traces(*, org_id: int, trace_ids: list[bytes]) -> list[StoredSpan]:
    """Every stored span of these traces of the org (head and blocks), by start time."""
    if org_id is None:
        raise ValueError("span reads need an org")
    if not trace_ids:
        return []
    with connection.cursor() as cur:
        spans = _head_spans(cur, org_id, "s.trace_id = ANY(%s)", [trace_ids])
        stored = block_store.blocks_with_traces(cur, org_id, trace_ids)
    wanted = np.frombuffer(b"".join(trace_ids), dtype="S16")
    picks = []
    for s in stored:
        hit = np.isin(s.block.trace_ids(), wanted)
        if hit.any():
            picks.append((s.block, np.flatnonzero(hit[s.block.span_trace_numbers()])))
    spans += _block_spans(org_id, picks)
    spans.sort(key=lambda s: (s.start_ns, s.span_id))
    return spans


def span_count(*, org_id: int, since_ns: int | None = None) -> int:
    """Stored spans of the org (starting at or after ``since_ns``, if given)."""
    low = since_ns if since_ns is not None else -(2**63)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM trace_spans WHERE org_id = %s AND start_ns >= %s", [org_id, low]
        )
        (n,) = cur.fetchone()
        cur.execute(
            "SELECT coalesce(sum(n_spans), 0) FROM trace_blocks "
            "WHERE org_id = %s AND min_start_ns >= %s",
            [org_id, low],
        )
        n += int(cur.fetchone()[0])
        straddling = _fetch_straddling(cur, org_id, low)
    for b in straddling:
        n += int((b.starts() >= low).sum())
    return n


def _fetch_straddling(cur, org_id: int, low: int) -> list[Block]:
    cur.execute(
        "SELECT min_start_ns, payload FROM trace_blocks "
        "WHERE org_id = %s AND min_start_ns < %s AND max_start_ns >= %s",
        [org_id, low, low],
    )
    return [Block(bytes(p), lo) for lo, p in cur.fetchall()]


# --- search ----------------------------------------------------------------------------------

TAG_OPS = {"=": "=", "!=": "<>", "=~": "~", "!~": "!~"}
SORTS = {"start": "max(s.start_ns)", "duration": "max(s.duration_ns)"}


def _add_span_conditions(query, prefix: str, where: list[str], params: list) -> None:
    """The query's duration and status conditions on a span table's columns (``prefix``: the
    table's alias and a dot, or ""), appended to ``where`` and ``params``."""
    if query.min_duration_ns is not None:
        where.append(f"{prefix}duration_ns >= %s")
        params.append(query.min_duration_ns)
    if query.max_duration_ns is not None:
        where.append(f"{prefix}duration_ns <= %s")
        params.append(query.max_duration_ns)
    if query.errors_only:
        where.append(f"{prefix}status_code = 2")
    if query.status_code is not None:
        where.append(f"{prefix}status_code = %s")
        params.append(query.status_code)


def _head_find(cur, org_id: int, query) -> list[tuple[bytes, int]]:
    where = ["s.org_id = %s", "sv.org_id = %s", "sv.name = %s", "s.start_ns BETWEEN %s AND %s"]
    params: list = [org_id, org_id, query.service, query.start_ns, query.end_ns]
    joins = "JOIN trace_services sv ON sv.org_id = s.org_id AND sv.id = s.service_id"
    if query.operation:
        joins += " JOIN trace_operations op ON op.org_id = s.org_id AND op.id = s.operation_id"
        where.append("op.name = %s")
        params.append(query.operation)
    _add_span_conditions(query, "s.", where, params)
    for key, op, value in _filters(query):
        if key == "error" and op == "=" and value == "true":
            where.append("(s.status_code = 2 OR s.attributes->>'error' = 'true')")
            continue
        # Tags match as text, whatever their stored type (Jaeger sends them as strings), on
        # the span's attributes first and its resource's second.
        if op in ("=~", "!~"):
            value = f"^(?:{value})$"
        where.append(f"coalesce(s.attributes->>%s, r.attributes->>%s, '') {TAG_OPS[op]} %s")
        params += [key, key, value]
        if "trace_resources r" not in joins:
            joins += " JOIN trace_resources r ON r.org_id = s.org_id AND r.id = s.resource_id"
    cur.execute(
        f"SELECT s.trace_id, {SORTS[query.sort]} FROM trace_spans s {joins} "  # noqa: S608
        f"WHERE {' AND '.join(where)} "
        f"GROUP BY s.trace_id ORDER BY 2 DESC LIMIT %s",
        [*params, query.limit],
    )
    return [(bytes(t), v) for t, v in cur.fetchall()]


def _filters(query) -> list[tuple[str, str, str]]:
    return [(k, "=", v) for k, v in query.tags] + list(query.tag_filters)


def _predicate(op: str, value: str) -> Callable[[str], bool]:
    if op == "=":
        return lambda t: t == value
    if op == "!=":
        return lambda t: t != value
    pattern = re.compile(value)
    if op == "=~":
        return lambda t: pattern.fullmatch(t) is not None
    return lambda t: pattern.fullmatch(t) is None


def _attribute_texts(b: Block, key: str) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """(rows with ``key`` among their attributes, each one's index into the distinct texts,
    the distinct values as text)."""
    names = b.attribute_keys()
    if key not in names:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), []
    keys, spans, values = b.attribute_columns()
    mine = keys == names.index(key)
    distinct, inverse = np.unique(values[mine], return_inverse=True)
    return spans[mine], inverse, [value_text(json.loads(t)) for t in b.value_texts(distinct)]


def _tag_mask(b: Block, key: str, op: str, value: str, resources: dict[int, dict]) -> np.ndarray:
    """Rows whose ``coalesce(span attribute, resource attribute, '')`` satisfies the filter."""
    pred = _predicate(op, value)
    distinct, inverse = np.unique(b.resource_ids(), return_inverse=True)
    by_resource = np.array(
        [pred(value_text(resources.get(int(r), {}).get(key)) or "") for r in distinct.tolist()],
        dtype=bool,
    )
    mask = by_resource[inverse] if len(distinct) else np.zeros(b.n_spans, dtype=bool)
    rows, which, texts = _attribute_texts(b, key)
    if len(rows):
        # a JSON null falls through to the resource, as ``->>`` gives NULL
        present = np.array([t is not None for t in texts], dtype=bool)[which]
        ok = np.array([t is not None and pred(t) for t in texts], dtype=bool)[which]
        mask[rows[present]] = ok[present]
    return mask


def _error_mask(b: Block) -> np.ndarray:
    mask = b.statuses() == 2
    rows, which, texts = _attribute_texts(b, "error")
    if len(rows):
        mask[rows[np.array([t == "true" for t in texts], dtype=bool)[which]]] = True
    return mask


def traces_find(*, org_id: int, query) -> list[bytes]:
    """Ids of the org's traces with a span matching the query, by the query's sort, best
    first (see ``selectors.TraceQuery``)."""
    if org_id is None:
        raise ValueError("span reads need an org")
    with connection.cursor() as cur:
        found = dict(_head_find(cur, org_id, query))
        cur.execute(
            "SELECT id FROM trace_services WHERE org_id = %s AND name = %s", [org_id, query.service]
        )
        row = cur.fetchone()
        if row is None:
            return _best(found, query.limit)
        (service_id,) = row
        where = [
            "org_id = %s",
            "max_start_ns >= %s",
            "min_start_ns <= %s",
            "service_ids @> ARRAY[%s]::int[]",
        ]
        params: list = [org_id, query.start_ns, query.end_ns, service_id]
        operation_ids = None
        if query.operation:
            cur.execute(
                "SELECT id FROM trace_operations WHERE org_id = %s AND service_id = %s "
                "AND name = %s",
                [org_id, service_id, query.operation],
            )
            operation_ids = [r[0] for r in cur.fetchall()]
            if not operation_ids:
                return _best(found, query.limit)
            where.append("operation_ids && %s::int[]")
            params.append(operation_ids)
        if query.min_duration_ns is not None:
            where.append("max_duration_ns >= %s")
            params.append(query.min_duration_ns)
        if query.max_duration_ns is not None:
            where.append("min_duration_ns <= %s")
            params.append(query.max_duration_ns)
        if query.errors_only or query.status_code == 2:
            where.append("has_error")
        if not _filters(query):
            # Spans from the key horizon on are all in the key head: SQL finds their best
            # traces; only blocks holding older spans are decoded.
            low = _keys_low(cur, org_id)
            if query.end_ns >= low:
                for trace_id, value in _keys_find(
                    cur, org_id, query, service_id, operation_ids, low
                ):
                    if found.get(trace_id, value - 1) < value:
                        found[trace_id] = value
            where.append("min_start_ns < %s")
            params.append(low)
        bound = "max_start_ns" if query.sort == "start" else "max_duration_ns"
        cur.execute(
            f"SELECT id, min_start_ns, {bound} FROM trace_blocks "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY {bound} DESC",
            params,
        )
        candidates = cur.fetchall()
        resources: dict[int, dict] = {}
        if _filters(query):
            cur.execute("SELECT id, attributes FROM trace_resources WHERE org_id = %s", [org_id])
            resources = {rid: _json(a, {}) for rid, a in cur.fetchall()}
        for block_id, min_start, block_bound in candidates:
            if len(found) >= query.limit and block_bound < _kth(found, query.limit):
                break  # no span left in any block can beat the answer
            cur.execute(
                "SELECT payload FROM trace_blocks WHERE id = %s AND org_id = %s", [block_id, org_id]
            )
            b = Block(bytes(cur.fetchone()[0]), min_start)
            _block_find(b, query, service_id, operation_ids, resources, found)
    return _best(found, query.limit)


def _best(found: dict[bytes, int], limit: int) -> list[bytes]:
    return [t for t, _ in heapq.nlargest(limit, found.items(), key=lambda kv: kv[1])]


def _kth(found: dict[bytes, int], limit: int) -> int:
    """The value of the ``limit``-th best trace (``found`` holds at least that many)."""
    return heapq.nlargest(limit, found.values())[-1]


def _keys_low(cur, org_id: int) -> int:
    """Where the key head is complete: spans starting at or after this all have their keys.
    Keys before the org's horizon may have been pruned; past the org's retention, blocks
    may have gone (whole partitions) while keys the rollups never pruned stayed."""
    cur.execute("SELECT pruned_before_ns FROM trace_span_horizon WHERE org_id = %s", [org_id])
    row = cur.fetchone()
    days = limits_get(org_id=org_id).traces_retention_days
    retained = time.time_ns() - days * NS_PER_DAY
    return max(row[0] if row else retained, retained)


def _keys_find(cur, org_id: int, query, service_id: int, operation_ids, low: int):
    """(trace id, best start or duration) of the best ``limit`` traces among the key head's
    spans starting in [max(start, low), end] that match the query (no tag filters)."""
    where = ["org_id = %s", "service_id = %s", "start_ns BETWEEN %s AND %s"]
    params: list = [org_id, service_id, max(query.start_ns, low), query.end_ns]
    if operation_ids is not None:
        where.append("operation_id = ANY(%s::int[])")
        params.append(operation_ids)
    _add_span_conditions(query, "", where, params)
    column = "start_ns" if query.sort == "start" else "duration_ns"
    cur.execute(
        f"SELECT trace_id, max({column}) FROM trace_span_keys "  # noqa: S608
        f"WHERE {' AND '.join(where)} GROUP BY trace_id ORDER BY 2 DESC LIMIT %s",
        [*params, query.limit],
    )
    return [(bytes(t), v) for t, v in cur.fetchall()]


def _block_find(b: Block, query, service_id, operation_ids, resources, found) -> None:
    starts = b.starts()
    mask = (b.service_ids() == service_id) & (starts >= query.start_ns) & (starts <= query.end_ns)
    if operation_ids is not None:
        mask &= np.isin(b.operation_ids(), operation_ids)
    durations = b.durations()
    if query.min_duration_ns is not None:
        mask &= durations >= query.min_duration_ns
    if query.max_duration_ns is not None:
        mask &= durations <= query.max_duration_ns
    if query.errors_only:
        mask &= b.statuses() == 2
    if query.status_code is not None:
        mask &= b.statuses() == query.status_code
    for key, op, value in _filters(query):
        if not mask.any():
            return
        if key == "error" and op == "=" and value == "true":
            mask &= _error_mask(b)
        else:
            mask &= _tag_mask(b, key, op, value, resources)
    rows = np.flatnonzero(mask)
    if not len(rows):
        return
    keys = (starts if query.sort == "start" else durations)[rows]
    numbers = b.span_trace_numbers()[rows]
    best = np.full(len(b.trace_counts), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(best, numbers, keys)
    for number in np.flatnonzero(best > np.iinfo(np.int64).min).tolist():
        trace_id = b.trace_id(number)
        value = int(best[number])
        if found.get(trace_id, value - 1) < value:
            found[trace_id] = value
