"""The ingest outbox (``trace_batches``) and its drain into span blocks.

A receiver turns a request's spans into table rows (catalog ids resolved, attributes as JSON)
and commits them as one zstd'ed outbox row before answering. A Celery task claims the org's
batches and, in one transaction: drops the spans already stored (a round's second copies;
those whose keys the thin key head ``trace_span_keys`` holds, looked up per trace; for spans
older than the org's key horizon, those in the blocks, through the trace index); COPYs the
keys of the rest (ids, parent, service, operation, kind, times, status, ``peer.service``)
into a temporary table and from there into the key head, stamped with this drain round's
sequence number (the rollups count them there); encodes those spans straight into columnar
blocks (``blocks.blocks_write``); and deletes the batches. The drain holds the org's store
lock (``blocks.org_lock``) shared, so nothing is pruned or compacted between its look-up and
its insert, while other drains of the org run beside it on other batches (the key head's
unique index arbitrates a span two of them hold: the later one runs its round again): a
retried export or a redelivered task stores nothing twice, and a span is queryable as soon
as the drain commits.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from itertools import count
from operator import attrgetter

import numpy as np
from django.db import IntegrityError, connection, transaction
from psycopg import sql

from backend.pipeline import partitions
from backend.pipeline.binary import binary_cursor
from backend.tracing.spans import AttributeEntries, Span, SpanColumns, id_list
from backend.tracing.storage import blocks, catalog
from backend.tracing.storage.encoding import (
    AttrColumns,
    SpanRows,
    attr_columns,
    first_use,
    value_text,
    value_tokens,
)
from backend.zstd_contexts import compressor, decompressor

_OUTBOX_ZSTD_LEVEL = 1  # the hot path: fast beats small for a row that lives seconds

NS_PER_MS = 1_000_000
# Batches per drain round: ~16,000 spans at the bench's 1,000 a request. Small enough that a
# backlog is shared by the drains of the org that run side by side (each round asks for a
# helper: ``pipeline.drain.org_drain``), large enough that a round's fixed costs stay small.
DRAIN_MAX_BATCHES = 16


# --- write path -------------------------------------------------------------------------------


def _events(events) -> list | None:
    if not events:
        return None
    return [{"time_ns": e.time_ns, "name": e.name, "attributes": e.attributes} for e in events]


def _links(links) -> list | None:
    if not links:
        return None
    return [
        {
            "trace_id": ln.trace_id.hex(),
            "span_id": ln.span_id.hex(),
            "trace_state": ln.trace_state,
            "attributes": ln.attributes,
        }
        for ln in links
    ]


_JSON_COLUMNS = (12, 13, 14)  # attributes, events, links in an outbox row of the first format
_V2 = b"TOB2"  # the columnar outbox format (below); the first format is a JSON array of rows
_ZERO_ID = bytes(8)
_INT_COLUMNS = (
    "service_ids",
    "operation_ids",
    "kinds",
    "starts",
    "durations",
    "statuses",
    "resource_ids",
    "flags",
)


def _has_nul(cols: AttrColumns) -> bool:
    strs = [t for t in cols.tokens if type(t) is str]
    return (
        "\x00" in "".join(cols.key_names)
        or "\x00" in "".join(strs)
        or (
            len(strs) < len(cols.tokens)
            and any("\\u0000" in t[1] for t in cols.tokens if type(t) is not str)
        )
    )


def _entry_columns(entries: AttributeEntries) -> AttrColumns | None:
    """``attr_columns`` of the entries' spans, made from their distinct pairs instead of a
    dict per span: the same columns (keys and values numbered by first use, entry by entry),
    or None when only the dicts can say (a key twice in a span; a bytes value or a NUL)."""
    codes = np.asarray(entries.codes, dtype=np.int64)
    counts = entries.counts
    n = len(counts)
    pairs = entries.pairs
    if not entries.first_use and len(codes):  # renumber the pairs used by first use
        codes, used = first_use(codes)
        pairs = [pairs[p] for p in used.tolist()]
    pair_keys = [key for key, _ in pairs]
    try:
        pair_values = value_tokens([value for _, value in pairs])
    except TypeError:  # bytes
        return None
    # (the loops over pairs run in C, as attr_columns' over entries)
    names = dict(zip(dict.fromkeys(pair_keys), count()))
    tokens = dict(zip(dict.fromkeys(pair_values), count()))
    keys = np.fromiter(map(names.__getitem__, pair_keys), np.int64, len(pairs))[codes]
    values = np.fromiter(map(tokens.__getitem__, pair_values), np.int64, len(pairs))[codes]
    spans = np.repeat(np.arange(n, dtype=np.int64), counts)
    cols = AttrColumns(spans, keys, values, list(names), list(tokens))
    if _has_nul(cols):
        return None
    if len(keys):  # a key twice in one span: its dict keeps one entry
        per_span_key = spans * len(names) + keys
        if n * len(names) <= 1 << 24:
            twice = np.bincount(per_span_key).max() > 1
        else:
            twice = len(np.unique(per_span_key)) < len(keys)
        if twice:
            return None
    return cols


def _attributes(spans: Sequence[Span], entries: AttributeEntries | None = None) -> AttrColumns:
    """The spans' attributes as columns, the values as the first format's JSON gave them back
    to the drain: ``bytes`` as ``{"bytesValue": base64}``, NUL as U+FFFD (both rare: the
    fast path checks the distinct keys and values only). ``entries``: the attributes when
    the spans do not hold them."""
    if entries is not None:
        cols = _entry_columns(entries)
        if cols is not None:
            return cols
        attributes = entries.dicts()
    else:
        attributes = [s.attributes for s in spans]
    try:
        cols = attr_columns(attributes)
    except TypeError:  # a bytes value somewhere
        return attr_columns(json.loads(catalog.dumps(attributes)))
    if _has_nul(cols):
        return attr_columns(json.loads(catalog.dumps(attributes)))
    return cols


_ID_FIELDS = attrgetter("trace_id", "span_id", "parent_span_id")
_INT_FIELDS = attrgetter("kind", "start_ns", "duration_ns", "status_code", "flags")
_TEXT_FIELDS = attrgetter("status_message", "scope_name", "scope_version", "trace_state")


def _span_fields(spans: Sequence[Span]) -> tuple:
    """The fields of :func:`_payload` that come from the spans, read span by span: ids (joined),
    whether each has a parent (bytes), kinds, starts, durations, statuses, flags, the text
    triples' numbers and the triples, the rows with events or links and those as JSON."""
    # the spans' fields as columns, one pass each in C (map of attrgetter, zip)
    trace_list, span_list, parent_list = zip(*map(_ID_FIELDS, spans), strict=True)
    kinds, starts, durations, statuses, flags = zip(*map(_INT_FIELDS, spans), strict=True)
    raw_texts = list(map(_TEXT_FIELDS, spans))
    texts: dict[tuple, int] = {}  # (message, scope, trace state) -> number, by first use
    raw_codes = {
        (message, scope, version, state): texts.setdefault(
            (message or None, _scope(scope, version), state or None), len(texts)
        )
        for message, scope, version, state in dict.fromkeys(raw_texts)
    }
    text_codes = list(map(raw_codes.__getitem__, raw_texts))
    extra_rows = [i for i, s in enumerate(spans) if s.events or s.links]
    extras = (
        catalog.dumps([[_events(spans[i].events), _links(spans[i].links)] for i in extra_rows])
        if extra_rows
        else "[]"
    )
    return (
        b"".join(trace_list),
        b"".join(span_list),
        b"".join([p or _ZERO_ID for p in parent_list]),
        bytes(map(bool, parent_list)),
        (kinds, starts, durations, statuses, flags),
        text_codes,
        list(texts),
        extra_rows,
        extras,
    )


def _scope(name: str, version: str) -> str | None:
    return (f"{name}@{version}" if version else name) or None


def _column_fields(spans: SpanColumns) -> tuple:
    """:func:`_span_fields` of spans as columns: the same fields, no Python per span."""
    scope_numbers: dict[str | None, int] = {}
    group_scope = np.array(
        [
            scope_numbers.setdefault(_scope(name, version), len(scope_numbers))
            for _, _, name, version in spans.groups
        ],
        dtype=np.int64,
    )
    # (message, scope, trace state) numbered by first use, as _span_fields does: distinct
    # messages and states are distinct texts ("" reads as None, which no string is)
    n_scopes, n_states = len(scope_numbers), len(spans.states)
    text_codes, keys = first_use(
        (spans.message * n_scopes + group_scope[spans.group]) * n_states + spans.state
    )
    scopes = list(scope_numbers)
    texts = [
        (
            spans.messages[k // n_states // n_scopes] or None,
            scopes[k // n_states % n_scopes],
            spans.states[k % n_states] or None,
        )
        for k in keys.tolist()
    ]
    return (
        spans.trace_ids,
        spans.span_ids,
        spans.parent_ids,
        spans.has_parent.astype(np.uint8).tobytes(),
        (spans.kinds, spans.starts, spans.durations, spans.statuses, spans.flags),
        text_codes,
        texts,
        [],
        "[]",
    )


def _payload(
    spans: Sequence[Span] | SpanColumns,
    service_ids: Sequence[int],
    operation_ids: Sequence[int],
    resource_ids: Sequence[int],
    entries: AttributeEntries | None = None,
):
    """One outbox row's payload, columnar (format ``TOB2``), zstd'ed.

    ``TOB2``, header length and span count (``<II``), a JSON header (attribute keys and
    values, the distinct status message / scope / trace state triples, events and links of
    the spans that have them), then fixed-width columns: trace ids (16 bytes), span ids (8),
    parent ids (8, zeros when none) and whether there is one (1), the integer columns
    (``_INT_COLUMNS``, then the text triple's number; int64), attribute counts per span
    (int64), and the attribute entries' key and value numbers (int32). The drain reads it
    with a few ``numpy.frombuffer`` and one small ``json.loads``: no object per span but
    its ids."""
    n = len(spans)
    cols = _attributes(spans, entries)
    fields = _column_fields(spans) if isinstance(spans, SpanColumns) else _span_fields(spans)
    trace_ids, span_ids, parents, has_parent, numbers, text_codes, texts, extra_rows, extras = (
        fields
    )
    kinds, starts, durations, statuses, flags = numbers
    header = json.dumps(
        {
            "keys": cols.key_names,
            "tokens": cols.tokens,
            "texts": texts,
            "entries": len(cols.keys),
            "extra_rows": extra_rows,
            "extras": extras,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    if len(trace_ids) != 16 * n or len(span_ids) != 8 * n or len(parents) != 8 * n:
        raise ValueError("trace ids must be 16 bytes, span and parent ids 8")
    ints = [
        service_ids,
        operation_ids,
        kinds,
        starts,
        durations,
        statuses,
        resource_ids,
        flags,
        text_codes,
    ]
    body = b"".join(
        [
            _V2,
            struct.pack("<II", len(header), n),
            header,
            trace_ids,
            span_ids,
            parents,
            has_parent,
            *(np.asarray(column, dtype=np.int64).tobytes() for column in ints),
            np.bincount(cols.spans, minlength=n).astype(np.int64).tobytes(),
            cols.keys.astype(np.int32).tobytes(),
            cols.values.astype(np.int32).tobytes(),
        ]
    )
    return compressor(_OUTBOX_ZSTD_LEVEL).compress(body)


def _catalog_numbers(cur, org_id: int, spans: Sequence[Span] | SpanColumns) -> tuple:
    """Per span, its service id, operation id and resource id (the catalogs' rows made for
    new names and resources), and its first and last start."""
    if isinstance(spans, SpanColumns):
        return _column_catalog_numbers(cur, org_id, spans)
    # ids per distinct (service, operation, kind) and per resource dict, then per span by
    # look-ups in C (map)
    names = [(s.service, s.name, s.kind) for s in spans]
    pairs = list(map(catalog.catalog_ids(cur, org_id, set(names)).__getitem__, names))
    sids, oids = [p[0] for p in pairs], [p[1] for p in pairs]
    memo: dict[int, int] = {}
    resources = list(map(id, [s.resource for s in spans]))
    for s in dict(zip(resources, spans, strict=True)).values():
        catalog.resource_id(cur, org_id, s.resource, memo)
    rids = list(map(memo.__getitem__, resources))
    starts = [s.start_ns for s in spans]
    return sids, oids, rids, min(starts), max(starts)


def _column_catalog_numbers(cur, org_id: int, spans: SpanColumns) -> tuple:
    services: dict[str, int] = {}
    group_service = np.array(
        [services.setdefault(service, len(services)) for _, service, _, _ in spans.groups],
        dtype=np.int64,
    )
    # (service, operation, kind) as one number (kinds are 0-5), each distinct one looked up
    key = (group_service[spans.group] * len(spans.names) + spans.name) * 8 + spans.kinds
    distinct, inverse = np.unique(key, return_inverse=True)
    service_names, n_names = list(services), len(spans.names)
    triples = [
        (service_names[k // 8 // n_names], spans.names[k // 8 % n_names], k % 8)
        for k in distinct.tolist()
    ]
    ids = catalog.catalog_ids(cur, org_id, set(triples))
    sids = np.array([ids[t][0] for t in triples], dtype=np.int64)[inverse.reshape(-1)]
    oids = np.array([ids[t][1] for t in triples], dtype=np.int64)[inverse.reshape(-1)]
    # resources in order of first use, as span by span
    memo: dict[int, int] = {}
    group_rid = np.zeros(len(spans.groups), dtype=np.int64)
    for g in first_use(spans.group)[1].tolist():
        group_rid[g] = catalog.resource_id(cur, org_id, spans.groups[g][0], memo)
    return (
        sids,
        oids,
        group_rid[spans.group],
        int(spans.starts.min()),
        int(spans.starts.max()),
    )


def batch_append(
    *,
    org_id: int,
    spans: Sequence[Span] | SpanColumns,
    attributes: AttributeEntries | None = None,
) -> int:
    """Durably accept spans (one outbox row); returns the batch id. ``attributes``: the
    spans' attributes when not in the spans (the OTLP protobuf decoder's columns)."""
    with transaction.atomic(), connection.cursor() as cur:
        sids, oids, rids, first_start, last_start = _catalog_numbers(cur, org_id, spans)
        payload = _payload(spans, sids, oids, rids, attributes)
        raw = binary_cursor(cur)  # (the payload in binary: no hex literal)
        raw.execute(
            "INSERT INTO trace_batches (org_id, n_spans, min_start_ns, max_start_ns, payload) "
            "VALUES (%s, %s, %s, %s, %b) RETURNING id",
            [org_id, len(spans), first_start, last_start, payload],
        )
        return raw.fetchone()[0]


_COLUMNS = (
    "org_id, trace_id, span_id, parent_span_id, service_id, operation_id, kind, "
    "start_ns, duration_ns, status_code, status_message, resource_id, scope, "
    "attributes, events, links, flags, trace_state"
)
_MOVE = sql.SQL(
    "INSERT INTO trace_spans ({c}, seq) SELECT {c}, %s FROM trace_spans_in ON CONFLICT DO NOTHING"
).format(c=sql.SQL(_COLUMNS))

_KEY_COLUMNS = (
    "trace_id, span_id, parent_span_id, service_id, operation_id, kind, start_ns, duration_ns, "
    "status_code, peer_service"
)
# The keys of one drain round, COPYed in PostgreSQL's binary format from one numpy record per
# span (no Python per row): fixed-width fields only, so a parent is 8 bytes with a flag and a
# peer service a number into the round's list of them (1-based; 0: none).
_KEYS_IN = (
    "CREATE TEMP TABLE IF NOT EXISTS trace_keys_in_bin (trace_id bytea, span_id bytea, "
    "parent_span_id bytea, has_parent boolean, service_id integer, operation_id integer, "
    "kind smallint, start_ns bigint, duration_ns bigint, status_code smallint, "
    "peer_code integer) ON COMMIT DELETE ROWS"
)
_KEYS_IN_FIELDS = (  # (column, its binary type): every field is preceded by its length
    ("trace_id", "V16"),
    ("span_id", "V8"),
    ("parent_span_id", "V8"),
    ("has_parent", "u1"),
    ("service_id", ">i4"),
    ("operation_id", ">i4"),
    ("kind", ">i2"),
    ("start_ns", ">i8"),
    ("duration_ns", ">i8"),
    ("status_code", ">i2"),
    ("peer_code", ">i4"),
)
_KEYS_IN_RECORD = np.dtype(
    [("fields", ">i2")]
    + [f for name, kind in _KEYS_IN_FIELDS for f in ((f"{name}_size", ">i4"), (name, kind))]
)
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no extension
_COPY_TRAILER = b"\xff\xff"
PEER_SERVICE_MAX = 512  # as the service catalog's names


def _claim(cur, org_id: int, max_batches: int) -> list[tuple]:
    """Delete and return up to ``max_batches`` of the org's batches that no other drain
    holds. (The locking sub-select runs once, materialized: as an ``IN (...)`` semi-join,
    a nested-loop plan ran it again per outer row, and each run, past the rows the
    statement had already deleted, locked and deleted one more batch: a drain of one batch
    took them all, leaving nothing to the drains beside it.)"""
    raw = binary_cursor(cur)  # (the payloads in binary: no hex text)
    raw.execute(
        """
        WITH claimed AS MATERIALIZED (
            SELECT id FROM trace_batches WHERE org_id = %s
            ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
        DELETE FROM trace_batches b USING claimed WHERE b.org_id = %s AND b.id = claimed.id
        RETURNING b.min_start_ns, b.max_start_ns, b.payload
        """,
        [org_id, max_batches, org_id],
        binary=True,
    )
    return raw.fetchall()


def _rows_v1(raw: bytes) -> list[list]:
    """The rows of a payload of the first format (a JSON array of rows; ids as bytes)."""
    rows = json.loads(raw)
    for row in rows:
        row[0] = bytes.fromhex(row[0])
        row[1] = bytes.fromhex(row[1])
        if row[2] is not None:
            row[2] = bytes.fromhex(row[2])
    return rows


def _spans_v2(raw: bytes) -> SpanRows:
    header_size, n = struct.unpack_from("<II", raw, 4)
    at = 12
    header = json.loads(raw[at : at + header_size])
    at += header_size

    def take(size: int) -> bytes:
        nonlocal at
        at += size
        return raw[at - size : at]

    trace_raw, span_raw, parent_raw = take(16 * n), take(8 * n), take(8 * n)
    has_parent = take(n)
    ints = {name: np.frombuffer(take(8 * n), dtype=np.int64) for name in _INT_COLUMNS}
    text_codes = np.frombuffer(take(8 * n), dtype=np.int64).tolist()
    counts = np.frombuffer(take(8 * n), dtype=np.int64)
    entries = header["entries"]
    keys = np.frombuffer(take(4 * entries), dtype=np.int32).astype(np.int64)
    values = np.frombuffer(take(4 * entries), dtype=np.int32).astype(np.int64)
    texts = header["texts"]
    events: list = [None] * n
    links: list = [None] * n
    for i, (ev, ln) in zip(header["extra_rows"], json.loads(header["extras"]), strict=True):
        events[i] = ev
        links[i] = ln
    messages, scopes, states = zip(*texts, strict=True) if texts else ((), (), ())
    return SpanRows(
        trace_ids=id_list(trace_raw, 16),
        span_ids=id_list(span_raw, 8),
        parent_ids=id_list(parent_raw, 8, np.frombuffer(has_parent, np.uint8)),
        status_messages=list(map(messages.__getitem__, text_codes)),
        scopes=list(map(scopes.__getitem__, text_codes)),
        trace_states=list(map(states.__getitem__, text_codes)),
        attributes=AttrColumns(
            np.repeat(np.arange(n, dtype=np.int64), counts),
            keys,
            values,
            header["keys"],
            [t if type(t) is str else tuple(t) for t in header["tokens"]],
        ),
        events=events,
        links=links,
        **ints,
    )


def _spans(batches: list[tuple]) -> SpanRows:
    """The batches' spans as columns, whichever format each batch was written in."""
    parts = []
    for _, _, payload in batches:
        raw = decompressor().decompress(payload)
        if raw[:4] == _V2:
            parts.append(_spans_v2(raw))
        else:  # written before the columnar format: still drains (upgrade safety)
            parts.append(blocks.rows_from_head(_rows_v1(raw)))
    return parts[0] if len(parts) == 1 else blocks.rows_concat(parts)


def _head_rows(spans: SpanRows) -> list[list]:
    """The spans as ``trace_spans`` rows (attributes, events, links as parsed JSON)."""
    n = len(spans)
    attributes = (
        spans.attributes.dicts(n) if isinstance(spans.attributes, AttrColumns) else spans.attributes
    )
    return [
        list(row)
        for row in zip(
            spans.trace_ids,
            spans.span_ids,
            spans.parent_ids,
            spans.service_ids.tolist(),
            spans.operation_ids.tolist(),
            spans.kinds.tolist(),
            spans.starts.tolist(),
            spans.durations.tolist(),
            spans.statuses.tolist(),
            spans.status_messages,
            spans.resource_ids.tolist(),
            spans.scopes,
            attributes,
            spans.events,
            spans.links,
            spans.flags.tolist(),
            spans.trace_states,
            strict=True,
        )
    ]


def _peer_service(attributes: dict | None) -> str | None:
    """``attributes->>'peer.service'`` as the rollups read it (None when absent or null)."""
    if not attributes or "peer.service" not in attributes:
        return None
    text = value_text(attributes["peer.service"])
    return text[:PEER_SERVICE_MAX] if text is not None else None


def _peer_services(spans: SpanRows) -> list[str | None]:
    if isinstance(spans.attributes, AttrColumns):
        texts = spans.attributes.texts("peer.service", len(spans))
        return [t[:PEER_SERVICE_MAX] if t is not None else None for t in texts]
    return [_peer_service(a) for a in spans.attributes]


def _key_records(spans: SpanRows, peers: dict[str, int]) -> np.ndarray:
    """The spans' rows of ``trace_keys_in_bin`` as binary COPY records; numbers the peer
    services in ``peers`` (from 1, in order of first use)."""
    n = len(spans)
    out = np.zeros(n, dtype=_KEYS_IN_RECORD)
    out["fields"] = len(_KEYS_IN_FIELDS)
    for name, kind in _KEYS_IN_FIELDS:
        out[f"{name}_size"] = np.dtype(kind).itemsize
    out["trace_id"] = np.frombuffer(b"".join(spans.trace_ids), dtype="V16")
    out["span_id"] = np.frombuffer(b"".join(spans.span_ids), dtype="V8")
    parents = spans.parent_ids
    out["parent_span_id"] = np.frombuffer(b"".join([p or _ZERO_ID for p in parents]), dtype="V8")
    out["has_parent"] = np.fromiter(map(bool, parents), dtype=bool, count=n)
    for name, column in (
        ("service_id", spans.service_ids),
        ("operation_id", spans.operation_ids),
        ("kind", spans.kinds),
        ("start_ns", spans.starts),
        ("duration_ns", spans.durations),
        ("status_code", spans.statuses),
    ):
        out[name] = column
    out["peer_code"] = [
        0 if p is None else peers.setdefault(p, len(peers) + 1) for p in _peer_services(spans)
    ]
    return out


# The keys stored for some traces of an org: the org, how many traces, their ids one after
# another (a binary parameter)
STORED_KEYS = (
    "WITH o AS MATERIALIZED (SELECT %s::bigint AS org_id) "
    "SELECT k.trace_id, k.span_id, k.kind, k.start_ns "
    "FROM o, generate_series(0, %s - 1) AS i, LATERAL ("
    "SELECT trace_id, span_id, kind, start_ns FROM trace_span_keys s "
    "WHERE s.org_id = o.org_id AND s.trace_id = substring(%b FROM i * 16 + 1 FOR 16) "
    "OFFSET 0) k"
)


def keys_insert(cur, org_id: int, spans: SpanRows, seq: int) -> np.ndarray:
    """Store the keys (what the rollups and the de-duplication read) of the spans not stored
    yet, stamped with the drain round ``seq``; returns the indexes of those spans in
    ``spans`` (the first copy when one span comes twice). Spans older than the org's key
    horizon are looked up in the blocks too. Call under the org's store lock."""
    cur.execute(_KEYS_IN)
    # (ON COMMIT empties it, but two drains may share a transaction: a caller's atomic block)
    cur.execute("DELETE FROM trace_keys_in_bin")
    peers: dict[str, int] = {}
    records, peer_names = _key_records(spans, peers), list(peers)
    # in the identity index's order: two drains inserting the same spans wait for each other
    # in one order, never in a cycle (the key head's heap keeps the COPY's order)
    ids = np.frombuffer(records["trace_id"].tobytes(), dtype=">u8").reshape(-1, 2)
    span_ids = np.frombuffer(records["span_id"].tobytes(), dtype=">u8")
    order = np.lexsort((records["start_ns"], records["kind"], span_ids, ids[:, 1], ids[:, 0]))
    records, ids, span_ids = records[order], ids[order], span_ids[order]
    # what the key head holds already: a round's second copy of a span (adjacent once
    # sorted), and the keys stored for the round's traces (one index probe per trace)
    copies = np.zeros(len(records), dtype=bool)
    copies[1:] = (
        (ids[1:] == ids[:-1]).all(axis=1)
        & (span_ids[1:] == span_ids[:-1])
        & (records["kind"][1:] == records["kind"][:-1])
        & (records["start_ns"][1:] == records["start_ns"][:-1])
    )
    traces = np.ones(len(records), dtype=bool)
    traces[1:] = (ids[1:] != ids[:-1]).any(axis=1)
    # (the trace ids as one binary parameter, cut in SQL: a bytea[] of them would be dumped
    # element by element in Python. One identity index probe per trace, the org matched as
    # a join column: with the org as a constant, an org the statistics have not seen yet is
    # estimated at one row, and the planner took the (org_id, start_ns) index with the org
    # alone as its condition, a scan of the org's whole key head per round)
    raw = binary_cursor(cur)
    raw.execute(STORED_KEYS, [org_id, int(traces.sum()), records["trace_id"][traces].tobytes()])
    if stored := {(bytes(t), bytes(sp), k, st) for t, sp, k, st in raw.fetchall()}:
        copies |= [
            (t, sp, k, st) in stored
            for t, sp, k, st in zip(
                map(bytes, records["trace_id"]),
                map(bytes, records["span_id"]),
                records["kind"].tolist(),
                records["start_ns"].tolist(),
                strict=True,
            )
        ]
    with cur.copy("COPY trace_keys_in_bin FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(_COPY_SIGNATURE + records[~copies].tobytes() + _COPY_TRAILER)
    cur.execute("SELECT pruned_before_ns FROM trace_span_horizon WHERE org_id = %s", [org_id])
    horizon = cur.fetchone()
    if horizon is not None and int(spans.starts.min()) < horizon[0]:
        blocks.drop_stored_in_blocks(cur, org_id, "trace_keys_in_bin", below_ns=horizon[0])
    # a plain INSERT (no ON CONFLICT: a third cheaper): a drain beside this one may insert a
    # key of the same span first, and this one then fails on the identity index and is run
    # again (``batches_drain``)
    cur.execute(
        f"INSERT INTO trace_span_keys (org_id, {_KEY_COLUMNS}, seq) "  # noqa: S608
        "SELECT %s, trace_id, span_id, CASE WHEN has_parent THEN parent_span_id END, "
        "service_id, operation_id, kind, start_ns, duration_ns, status_code, "
        "(%s::text[])[peer_code], %s FROM trace_keys_in_bin",
        [org_id, peer_names, seq],
    )
    if cur.rowcount == len(spans):  # the usual case: all new, nothing to read back
        return np.arange(len(spans))
    cur.execute(
        "SELECT trace_id, span_id, kind, start_ns FROM trace_span_keys "
        "WHERE org_id = %s AND seq = %s",
        [org_id, seq],
    )
    stored = cur.fetchall()
    wanted = {(bytes(t), bytes(s), k, st) for t, s, k, st in stored}
    kinds, starts = spans.kinds.tolist(), spans.starts.tolist()
    keep = []
    for i, key in enumerate(zip(spans.trace_ids, spans.span_ids, kinds, starts, strict=True)):
        if key in wanted:
            wanted.discard(key)  # a second copy of the span in this round is dropped
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def batches_drain(*, org_id: int, max_batches: int = DRAIN_MAX_BATCHES) -> int | None:
    """Store up to ``max_batches`` outbox rows of the org: the keys of the spans not stored
    yet into ``trace_span_keys``, the spans themselves encoded into blocks, the batches
    deleted, all in one transaction; returns the spans that were new (duplicates of stored
    spans are dropped), None if there was nothing. Several drains of one org run side by
    side (``blocks.org_lock``, shared); a round that lost a span to one of them is run again
    (the batches claimed anew, that span found stored)."""
    for _ in range(_DRAIN_ATTEMPTS - 1):
        try:
            return _drain_round(org_id, max_batches)
        except IntegrityError as exc:
            diag = getattr(exc.__cause__, "diag", None)
            if diag is None or diag.constraint_name != "trace_span_keys_identity":
                raise
    return _drain_round(org_id, max_batches)


_DRAIN_ATTEMPTS = 3


def _drain_round(org_id: int, max_batches: int) -> int | None:
    with transaction.atomic(), connection.cursor() as cur:
        blocks.org_lock(cur, org_id, shared=True)
        batches = _claim(cur, org_id, max_batches)
        if not batches:
            return None
        spans = _spans(batches)
        cur.execute("SELECT nextval('trace_drain_seq')")
        (seq,) = cur.fetchone()
        new = keys_insert(cur, org_id, spans, seq)
        if len(new):
            blocks.blocks_write(
                cur, org_id, spans if len(new) == len(spans) else blocks.subset(spans, new)
            )
        return len(new)


def batches_drain_to_head(*, org_id: int, max_batches: int = DRAIN_MAX_BATCHES) -> int | None:
    """The drain as it was before blocks were written at drain time: into the row head
    ``trace_spans`` (and the keys). Kept for the head's readers and the cut of rows stored
    before the upgrade, which the tests reproduce with it; nothing in production calls it."""
    with transaction.atomic(), connection.cursor() as cur:
        blocks.org_lock(cur, org_id)
        batches = _claim(cur, org_id, max_batches)
        if not batches:
            return None
        spans = _spans(batches)
        rows = _head_rows(spans)
        cur.execute("SELECT nextval('trace_drain_seq')")
        (seq,) = cur.fetchone()
        new = keys_insert(cur, org_id, spans, seq).tolist()
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS trace_spans_in "
            "(LIKE trace_spans INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cur.execute("DELETE FROM trace_spans_in")
        with cur.copy(f"COPY trace_spans_in ({_COLUMNS}) FROM STDIN") as copy:
            for i in new:
                row = rows[i]
                for c in _JSON_COLUMNS:
                    if row[c] is not None and not isinstance(row[c], str):
                        row[c] = catalog.dumps(row[c])
                copy.write_row((org_id, *row))

        def move():
            cur.execute(_MOVE, [seq])

        # (every span's day: a batch's first and last start may skip a midnight in between)
        starts = spans.starts[new].tolist()
        partitions.write_with_partitions("trace_spans", starts, move, per_ms=NS_PER_MS)
        return len(new)
