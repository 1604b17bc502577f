"""Reads of the span store (the Jaeger/Zipkin query APIs build on these)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from django.db import connection

from backend.tracing.spans import StoredSpan
from backend.tracing.storage import reader
from backend.tracing.storage.blocks import WINDOW_NS
from backend.tracing.storage.encoding import Block, prefix_token


def trace_get(*, org_id: int, trace_id: bytes) -> list[StoredSpan]:
    """Every stored span of one trace of the org, by start time."""
    return reader.spans_of_traces(org_id=org_id, trace_ids=[trace_id])


def services_list(*, org_id: int) -> list[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT name FROM trace_services WHERE org_id = %s ORDER BY name", [org_id])
        return [row[0] for row in cur.fetchall()]


def span_count(*, org_id: int) -> int:
    """Stored spans of the org, in the head and in blocks."""
    return reader.span_count(org_id=org_id)


@dataclass(frozen=True, slots=True)
class TracesOverview:
    services: int
    spans_last_hour: int
    pending_batches: int


def traces_overview(*, org_id: int, now_ns: int) -> TracesOverview:
    """What the dashboard shows about an org's trace ingest."""
    hour_ago = now_ns - 3600 * 10**9
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM trace_services WHERE org_id = %s", [org_id])
        (services,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM trace_batches WHERE org_id = %s", [org_id])
        (pending,) = cur.fetchone()
    spans = reader.span_count(org_id=org_id, since_ns=hour_ago)
    return TracesOverview(services, spans, pending)


def operations_list(*, org_id: int, service: str, kind: int | None = None) -> list[tuple[str, int]]:
    """(operation name, OTLP kind) of one service of the org."""
    query = (
        "SELECT o.name, o.kind FROM trace_operations o JOIN trace_services s"
        " ON s.org_id = o.org_id AND s.id = o.service_id"
        " WHERE o.org_id = %s AND s.org_id = %s AND s.name = %s"
    )
    params: list = [org_id, org_id, service]
    if kind is not None:
        query += " AND o.kind = %s"
        params.append(kind)
    with connection.cursor() as cur:
        cur.execute(query + " ORDER BY o.name, o.kind", params)
        return cur.fetchall()


@dataclass(frozen=True, slots=True)
class TraceQuery:
    service: str
    start_ns: int
    end_ns: int
    operation: str | None = None
    tags: tuple[tuple[str, str], ...] = ()  # every one must match, as text
    # (key, op, value) with op "=", "!=", "=~" or "!~" (regex fully anchored); an absent
    # attribute counts as "" (so it satisfies != and !~ of anything non-empty)
    tag_filters: tuple[tuple[str, str, str], ...] = ()
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    errors_only: bool = False
    status_code: int | None = None
    sort: str = "start"  # or "duration": the slowest traces first
    limit: int = 20


TAG_OPS = reader.TAG_OPS
SORTS = reader.SORTS


def traces_find(*, org_id: int, query: TraceQuery) -> list[bytes]:
    """Ids of the org's traces with a span matching the query, the most recent first (or
    the slowest first), from the head and the blocks."""
    return reader.traces_find(org_id=org_id, query=query)


def traces_get(*, org_id: int, trace_ids: list[bytes]) -> dict[bytes, list[StoredSpan]]:
    """The spans of several traces of the org, by trace id (one query)."""
    spans = reader.spans_of_traces(org_id=org_id, trace_ids=trace_ids)
    out: dict[bytes, list[StoredSpan]] = {}
    for span in spans:
        out.setdefault(span.trace_id, []).append(span)
    return out


# --- the trace search page's helpers: the busiest service, short trace ids -------------------


def _window(start_ns: int, end_ns: int) -> tuple[str, list]:
    """The SQL condition (and its parameters) of the blocks holding spans that may start in
    [start, end]; the hour window bounds let PostgreSQL skip the other daily partitions."""
    return (
        "org_id = %s AND max_start_ns >= %s AND min_start_ns <= %s"
        " AND window_ns > %s AND window_ns <= %s",
        [start_ns, end_ns, start_ns - WINDOW_NS, end_ns],
    )


def service_span_counts(
    *, org_id: int, start_ns: int, end_ns: int, limit: int = 10
) -> list[tuple[str, int]]:
    """(service, spans starting in [start, end]) of the org's busiest services, most spans
    first (ties by name). Reads the head in SQL, the blocks wholly inside the window from
    their summaries (spans per service, summed in SQL), and decodes the start and service
    columns of the others only: those straddling an end of the window (at most the blocks of
    two hour windows) and blocks written before their summaries had per-service counts."""
    counts: dict[int, int] = {}
    within, params = _window(start_ns, end_ns)
    summed = (
        "min_start_ns >= %s AND max_start_ns <= %s"
        " AND (service_counts IS NOT NULL OR cardinality(service_ids) = 1)"
    )
    with connection.cursor() as cur:
        cur.execute(
            "SELECT service_id, count(*) FROM trace_spans"
            " WHERE org_id = %s AND start_ns BETWEEN %s AND %s GROUP BY service_id",
            [org_id, start_ns, end_ns],
        )
        for sid, n in cur.fetchall():
            counts[sid] = counts.get(sid, 0) + n
        cur.execute(
            "SELECT u.sid, sum(u.n) FROM trace_blocks b,"  # noqa: S608  (constant conditions)
            " unnest(b.service_ids, coalesce(b.service_counts, ARRAY[b.n_spans])) AS u(sid, n)"
            f" WHERE {within} AND {summed} GROUP BY u.sid",
            [org_id, *params, start_ns, end_ns],
        )
        for sid, n in cur.fetchall():
            counts[sid] = counts.get(sid, 0) + int(n)
        cur.execute(
            f"SELECT min_start_ns, payload FROM trace_blocks WHERE {within} AND NOT ({summed})",  # noqa: S608
            [org_id, *params, start_ns, end_ns],
        )
        for lo, payload in cur.fetchall():
            block = Block(bytes(payload), lo)
            starts = block.starts()
            inside = (starts >= start_ns) & (starts <= end_ns)
            ids, n = np.unique(block.service_ids()[inside], return_counts=True)
            for sid, k in zip(ids.tolist(), n.tolist(), strict=True):
                counts[sid] = counts.get(sid, 0) + k
        if not counts:
            return []
        cur.execute(
            "SELECT id, name FROM trace_services WHERE org_id = %s AND id = ANY(%s)",
            [org_id, list(counts)],
        )
        names = dict(cur.fetchall())
    ranked = sorted(
        ((names[sid], n) for sid, n in counts.items() if sid in names and n),
        key=lambda row: (-row[1], row[0]),
    )
    return ranked[:limit]


def _prefix_mask(raw: bytes, prefix: str) -> np.ndarray:
    """Which of the 16-byte ids in ``raw``, as displayed (64-bit ids from their low half),
    start with the hex ``prefix`` (vectorized: a block holds thousands of traces)."""
    ids = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 16)
    short = ~ids[:, :8].any(axis=1)
    shown = ids.copy()
    shown[short, :8] = ids[short, 8:]  # 64-bit ids: 16 digits, from their low half
    whole = bytes.fromhex(prefix[: len(prefix) // 2 * 2])
    mask = np.ones(len(ids), dtype=bool)
    if whole:
        mask &= (shown[:, : len(whole)] == np.frombuffer(whole, dtype=np.uint8)).all(axis=1)
    if len(prefix) % 2:
        mask &= (shown[:, len(whole)] >> 4) == int(prefix[-1], 16)
    # a 64-bit id shows 16 digits: a longer prefix cannot match it
    if len(prefix) > 16:
        mask &= ~short
    return mask


def _prefix_candidates(cur, org_id: int, prefix: str, start_ns: int, end_ns: int) -> list:
    """(id, min start, max start) of the org's blocks of the window that may hold a trace
    whose shown id starts with ``prefix``, the newest first: those whose short-id tokens
    have the prefix's, and those written before blocks had tokens."""
    within, params = _window(start_ns, end_ns)
    token = prefix_token(prefix)
    match = ""
    if token is not None:
        match = " AND (prefix_tokens && ARRAY[%s]::int[] OR prefix_tokens IS NULL)"
        params = [*params, token]
    cur.execute(
        f"SELECT id, min_start_ns, max_start_ns FROM trace_blocks WHERE {within}{match}"  # noqa: S608
        " ORDER BY max_start_ns DESC, id DESC",
        [org_id, *params],
    )
    return cur.fetchall()


_PREFIX_FETCH_MAX = 16  # payloads fetched per query (after 1, 2, 4, …: the first may do)


def traces_by_prefix(
    *, org_id: int, prefix: str, start_ns: int, end_ns: int, limit: int
) -> list[tuple[bytes, int]]:
    """(trace id, its latest span start) of the org's traces with a span starting in
    [start, end] whose id, as displayed, starts with ``prefix`` (lower-case hex), the most
    recent first, at most ``limit``. The head answers in SQL; of the blocks, only those the
    short-id index names are read, the newest first, until no block left can add a trace
    more recent than the ``limit``-th found (a prefix every trace shares stops at once)."""
    if not prefix or any(c not in "0123456789abcdef" for c in prefix):
        raise ValueError("a trace id prefix is lower-case hex")
    found: dict[bytes, int] = {}
    with connection.cursor() as cur:
        cur.execute(
            "SELECT trace_id, max(start_ns) FROM trace_spans"
            " WHERE org_id = %s AND start_ns BETWEEN %s AND %s"
            " AND (CASE WHEN substring(trace_id FROM 1 FOR 8) = %s"
            "      THEN encode(substring(trace_id FROM 9), 'hex')"
            "      ELSE encode(trace_id, 'hex') END) LIKE %s"
            " GROUP BY trace_id ORDER BY 2 DESC LIMIT %s",
            [org_id, start_ns, end_ns, bytes(8), prefix + "%", limit],
        )
        for trace_id, start in cur.fetchall():
            found[bytes(trace_id)] = start
        candidates = _prefix_candidates(cur, org_id, prefix, start_ns, end_ns)
        payloads: dict[int, bytes] = {}
        fetched = 0
        for i, (block_id, lo, hi) in enumerate(candidates):
            if len(found) >= limit and hi < heapq.nlargest(limit, found.values())[-1]:
                break  # this block and all older ones start too early to make the list
            if block_id not in payloads:
                ids = [c[0] for c in candidates[i : i + min(_PREFIX_FETCH_MAX, fetched + 1)]]
                cur.execute(
                    "SELECT id, payload FROM trace_blocks WHERE org_id = %s AND id = ANY(%s)",
                    [org_id, ids],
                )
                payloads = {bid: bytes(p) for bid, p in cur.fetchall()}
                fetched += len(ids)
            payload = payloads.pop(block_id, None)
            if payload is not None:  # (None: merged by a compaction meanwhile)
                _prefix_find(Block(payload, lo), prefix, start_ns, end_ns, found)
    ranked = sorted(found.items(), key=lambda item: -item[1])
    return ranked[:limit]


def _prefix_find(block: Block, prefix: str, start_ns: int, end_ns: int, found: dict) -> None:
    """Add the block's traces matching the prefix, with their latest start in the window."""
    raw = block.raw("trace_ids")
    numbers = np.flatnonzero(_prefix_mask(raw, prefix))
    if not len(numbers):
        return
    starts = block.starts()
    inside = (starts >= start_ns) & (starts <= end_ns)
    latest = np.full(len(raw) // 16, -1, dtype=np.int64)  # per trace, in the window
    np.maximum.at(latest, block.span_trace_numbers()[inside], starts[inside])
    for k, last in zip(numbers.tolist(), latest[numbers].tolist(), strict=True):
        if last >= 0:
            trace_id = raw[16 * k : 16 * k + 16]
            found[trace_id] = max(found.get(trace_id, 0), last)
