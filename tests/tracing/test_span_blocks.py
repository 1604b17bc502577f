"""Span blocks answer exactly as the row head: the same spans back, bit for bit, and the same
search results, whether a trace sits in the (pre-upgrade) row head, in blocks cut from it, in
both, or in blocks the drain wrote straight from the outbox; a retried batch is stored once
across head, keys and blocks; retention drops whole blocks."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from django.db import connection

from backend.pipeline.retention import retention_apply
from backend.tracing import dependencies, storage
from backend.tracing.selectors import TraceQuery, span_count, trace_get, traces_find, traces_get
from backend.tracing.spans import Span, SpanEvent, SpanLink
from backend.tracing.storage import encoding

pytestmark = pytest.mark.django_db
SERVICES = ["gateway", "cart", "db-proxy"]
VALUES = [
    "GET",
    "POST",
    "",
    "caf\u00e9 \u2603",
    "nul\x00byte",
    7,
    -3,
    2**53 + 1,
    1.5,
    0.0,
    True,
    False,
    None,
    b"\x00\xffraw",
    [1, "two", None],
    {"nested": {"b": 1, "a": [True]}},
]


def _random_spans(seed: int, now_ns: int, n_traces: int = 40) -> list[Span]:
    rng = random.Random(seed)
    resources = [{"service.name": s, "host.name": f"h{i}"} for i, s in enumerate(SERVICES)]
    spans = []
    for t in range(n_traces):
        trace_id = rng.randbytes(16)
        if t % 5 == 0:
            trace_id = bytes(8) + trace_id[8:]  # B3 64-bit
        if t % 7 == 0:
            trace_id = trace_id[:15] + b"\x00"  # a trailing NUL byte
        t0 = now_ns - rng.randrange(30 * 60 * 10**9)
        ids = []
        for i in range(rng.randrange(1, 9)):
            span_id = rng.randbytes(7) + (b"\x00" if i == 2 else rng.randbytes(1))
            parent = rng.choice(ids) if ids and rng.random() < 0.9 else None
            if parent is None and ids and rng.random() < 0.5:
                parent = rng.randbytes(8)  # a parent never stored
            ids.append(span_id)
            r = rng.randrange(len(SERVICES))
            attrs = {f"k{rng.randrange(12)}": rng.choice(VALUES) for _ in range(rng.randrange(6))}
            if rng.random() < 0.3:
                attrs["http.route"] = f"/items/{rng.randrange(1000)}"
            if rng.random() < 0.1:
                attrs["error"] = True
            spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_span_id=parent,
                    service=SERVICES[r],
                    name=rng.choice(["GET /cart", "SELECT", "publish"]),
                    kind=rng.randrange(6),
                    start_ns=t0 + rng.randrange(-(10**9), 10**10),
                    duration_ns=rng.randrange(10**3, 10**10),
                    status_code=rng.choice([0, 0, 1, 2]),
                    status_message=rng.choice(["", "", "boom"]),
                    attributes=attrs,
                    events=[SpanEvent(t0 + 5, "retry", {"attempt": 2})] if i == 1 else [],
                    links=[SpanLink(rng.randbytes(16), rng.randbytes(8), "st=1", {"x": 1})]
                    if i == 3
                    else [],
                    resource=resources[r],
                    scope_name=rng.choice(["", "envoy", "otel"]),
                    scope_version=rng.choice(["", "1.2"]),
                    trace_state=rng.choice(["", "congo=t61rcWkgMzE"]),
                    flags=rng.choice([0, 1, 257]),
                    shared=False,
                )
            )
    return spans


def _store(org_id: int, spans: list[Span], drain=storage.batches_drain) -> None:
    for lo in range(0, len(spans), 37):
        storage.batch_append(org_id=org_id, spans=spans[lo : lo + 37])
    while drain(org_id=org_id) is not None:
        pass


def _store_in_head(org_id: int, spans: list[Span]) -> None:
    """As the drain did before it wrote blocks: rows in the head (what an upgrade finds)."""
    _store(org_id, spans, drain=storage.batches_drain_to_head)


def _head_rows(org_id: int) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM trace_spans WHERE org_id = %s", [org_id])
        return cur.fetchone()[0]


def _forget_org_spans(org_id: int) -> None:
    with connection.cursor() as cur:
        for table in ("trace_spans", "trace_blocks", "trace_span_keys", "trace_span_horizon"):
            cur.execute(f"DELETE FROM {table} WHERE org_id = %s", [org_id])


def _cut_all(org_id: int, before_ns: int = 2**62) -> int:
    return storage.blocks_cut(org_id=org_id, before_ns=before_ns, max_seq=2**62)


def _queries(now_ns: int) -> list[TraceQuery]:
    window = {"start_ns": now_ns - 3600 * 10**9, "end_ns": now_ns + 3600 * 10**9}
    out = []
    for sort in ("start", "duration"):
        for limit in (3, 1000):
            base = {"service": "cart", "sort": sort, "limit": limit, **window}
            out += [
                TraceQuery(**base),
                TraceQuery(**base, operation="SELECT"),
                TraceQuery(**base, min_duration_ns=10**9, max_duration_ns=5 * 10**9),
                TraceQuery(**base, errors_only=True),
                TraceQuery(**base, status_code=1),
                TraceQuery(**base, tags=(("k3", "GET"),)),
                TraceQuery(**base, tags=(("k1", "7"),)),
                TraceQuery(**base, tags=(("k2", "true"),)),
                TraceQuery(**base, tags=(("error", "true"),)),
                TraceQuery(**base, tags=(("host.name", "h1"),)),
                TraceQuery(**base, tag_filters=(("k4", "!=", "POST"),)),
                TraceQuery(**base, tag_filters=(("http.route", "=~", "/items/1.*"),)),
                TraceQuery(**base, tag_filters=(("k5", "!~", "G.*"), ("k0", "=", ""))),
            ]
    out.append(TraceQuery(service="nobody", **window))
    out.append(TraceQuery(service="cart", operation="no-such-op", **window))
    return out


def _everything(org_id: int, trace_ids: list[bytes], queries) -> tuple:
    return (
        traces_get(org_id=org_id, trace_ids=trace_ids),
        [traces_find(org_id=org_id, query=q) for q in queries],
        span_count(org_id=org_id),
    )


def test_blocks_answer_like_the_head(tenants):
    now = time.time_ns()
    spans = _random_spans(1, now)
    _store_in_head(tenants.org.pk, spans)
    _store(tenants.other_org.pk, _random_spans(2, now))  # a neighbour, never in the answers
    trace_ids = sorted({s.trace_id for s in spans})
    queries = _queries(now)
    in_head = _everything(tenants.org.pk, trace_ids, queries)
    assert in_head[2] == len(spans)
    assert sum(len(v) for v in in_head[0].values()) == len(spans)
    assert any(len(r) >= 3 for r in in_head[1])  # the queries find something

    # half of the spans (by start time) into blocks: traces split across head and blocks
    middle = sorted(s.start_ns for s in spans)[len(spans) // 2]
    assert 0 < _cut_all(tenants.org.pk, before_ns=middle) < len(spans)
    assert _everything(tenants.org.pk, trace_ids, queries) == in_head

    assert _cut_all(tenants.org.pk) > 0
    assert _head_rows(tenants.org.pk) == 0
    assert _everything(tenants.org.pk, trace_ids, queries) == in_head
    assert trace_get(org_id=tenants.other_org.pk, trace_id=trace_ids[0]) == []
    assert traces_get(org_id=tenants.other_org.pk, trace_ids=trace_ids) == {}

    # the same spans drained straight into blocks (the production path): the same answers
    _forget_org_spans(tenants.org.pk)
    assert span_count(org_id=tenants.org.pk) == 0
    _store(tenants.org.pk, spans)
    assert _head_rows(tenants.org.pk) == 0
    assert _everything(tenants.org.pk, trace_ids, queries) == in_head

    # Searches without tag filters read the key head from the org's key horizon on, and
    # blocks before it: the same answers with the older half's keys pruned, and all of them.
    assert storage.keys_prune(org_id=tenants.org.pk, before_ns=middle, max_seq=2**62) > 0
    assert _everything(tenants.org.pk, trace_ids, queries) == in_head
    assert storage.keys_prune(org_id=tenants.org.pk, before_ns=2**62, max_seq=2**62) > 0
    assert _key_count(tenants.org.pk) == 0
    assert _everything(tenants.org.pk, trace_ids, queries) == in_head


def test_search_trusts_the_key_head_only_within_the_retention(tenants):
    """Whole block partitions past the retention go while keys the rollups never pruned may
    stay: such keys find nothing (a search finds no trace it cannot show)."""
    org = tenants.org.pk
    now = time.time_ns()
    old = [s for s in _random_spans(3, now - 20 * 86_400 * 10**9) if s.service == "cart"]
    recent = [s for s in _random_spans(4, now) if s.service == "cart"]
    _store(org, old + recent)
    window = TraceQuery(service="cart", start_ns=now - 30 * 86_400 * 10**9, end_ns=now, limit=1000)
    assert set(traces_find(org_id=org, query=window)) == {s.trace_id for s in old + recent}
    with connection.cursor() as cur:  # as retention's partition drop (14 days by default)
        cur.execute(
            "DELETE FROM trace_blocks WHERE org_id = %s AND max_start_ns < %s",
            [org, now - 14 * 86_400 * 10**9],
        )
    assert _key_count(org) == len(old) + len(recent)  # the old spans' keys are still there
    assert set(traces_find(org_id=org, query=window)) == {s.trace_id for s in recent}


def test_a_retried_batch_is_stored_once_across_head_and_blocks(tenants):
    now = time.time_ns() - 3600 * 10**9
    spans = _random_spans(3, now, n_traces=10)
    _store_in_head(tenants.org.pk, spans)
    assert _cut_all(tenants.org.pk) == len(spans)
    _store(tenants.org.pk, spans)  # the same export again: every span is in a block
    _store(tenants.org.pk, spans[:5] + _random_spans(4, now, n_traces=2))
    assert span_count(org_id=tenants.org.pk) == len(spans) + len(_random_spans(4, now, 2))
    _cut_all(tenants.org.pk)
    _store(tenants.org.pk, spans)
    assert span_count(org_id=tenants.org.pk) == len(spans) + len(_random_spans(4, now, 2))


def _key_count(org_id: int) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM trace_span_keys WHERE org_id = %s", [org_id])
        return cur.fetchone()[0]


def test_a_retry_is_stored_once_across_the_drains_blocks_and_pruned_keys(tenants):
    """The drain writes blocks: a retry finds the span by its key while the key is kept,
    and through the trace index once the key is pruned (behind the org's key horizon);
    retries inside one drain round, and a round mixing old and new spans, store each once."""
    org = tenants.org.pk
    now = time.time_ns() - 3600 * 10**9
    spans = _random_spans(3, now, n_traces=10)
    more = _random_spans(4, now, n_traces=2)
    for lo in range(0, len(spans), 37):  # the same batches twice before one drain round
        storage.batch_append(org_id=org, spans=spans[lo : lo + 37])
        storage.batch_append(org_id=org, spans=spans[lo : lo + 37])
    assert storage.batches_drain(org_id=org) == len(spans)
    assert _head_rows(org) == 0 and _key_count(org) == len(spans)
    trace_ids = sorted({s.trace_id for s in spans})
    stored = traces_get(org_id=org, trace_ids=trace_ids)
    assert sum(len(v) for v in stored.values()) == len(spans)

    _store(org, spans)  # found by their keys
    assert span_count(org_id=org) == len(spans)
    assert storage.keys_prune(org_id=org, before_ns=2**62, max_seq=2**62) == len(spans)
    assert _key_count(org) == 0
    _store(org, spans[:5] + more)  # found through the trace index; the new ones stored
    assert span_count(org_id=org) == len(spans) + len(more)
    _store(org, spans)
    assert span_count(org_id=org) == len(spans) + len(more)
    assert traces_get(org_id=org, trace_ids=trace_ids) == stored
    # the neighbour's identical spans are its own
    _store(tenants.other_org.pk, spans)
    assert span_count(org_id=tenants.other_org.pk) == len(spans)


def test_retention_drops_whole_blocks(tenants):
    now = time.time_ns()
    old = _random_spans(5, now - 20 * 86400 * 10**9, n_traces=5)
    new = _random_spans(6, now, n_traces=5)
    _store(tenants.org.pk, old + new)
    _cut_all(tenants.org.pk)
    removed = storage.org_spans_delete_before(org_id=tenants.org.pk, cutoff_ns=now - 86400 * 10**9)
    assert removed == len(old)
    assert span_count(org_id=tenants.org.pk) == len(new)


def test_integer_columns_round_trip_bit_exact():
    rng = np.random.default_rng(7)
    for values in (
        np.array([], dtype=np.int64),
        np.array([0, -1, 1, 2**63 - 1, -(2**63)], dtype=np.int64),
        rng.integers(-300, 300, 1000),
        rng.integers(0, 2**40, 1000),
    ):
        assert np.array_equal(encoding.unpack_ints(encoding.pack_ints(values)), values)


def test_envoy_spans_take_few_bytes_in_a_block(tenants):
    """The bench's Envoy-shaped spans, encoded: far below the rows' size (the bench measures
    the figure on disk; this keeps the format from regressing by much)."""
    from bench.decode_traces import envoy_spans, otlp_request
    from ingest.decoders.otlp_traces import decode_otlp_protobuf
    from ingest.decoders.spans import SpanLimits

    request = otlp_request(envoy_spans(2000, seed=1)).SerializeToString()
    spans = decode_otlp_protobuf(request, SpanLimits()).spans
    _store(tenants.org.pk, spans)
    _cut_all(tenants.org.pk)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT sum(length(payload)), sum(n_spans) FROM trace_blocks WHERE org_id = %s",
            [tenants.org.pk],
        )
        size, n = cur.fetchone()
    assert n == 2000
    assert size / n < 80


def test_rows_stored_before_blocks_move_into_blocks_in_the_background(tenants):
    """The migration: rows from before blocks existed (drain round 0, no rollup watermarks)
    are cut by the beat job like any counted span, nothing lost."""
    now = time.time_ns()
    spans = _random_spans(7, now - 2 * 3600 * 10**9, n_traces=15)
    _store_in_head(tenants.org.pk, spans)
    with connection.cursor() as cur:
        cur.execute("UPDATE trace_spans SET seq = 0 WHERE org_id = %s", [tenants.org.pk])
        cur.execute("UPDATE trace_span_keys SET seq = 0 WHERE org_id = %s", [tenants.org.pk])
    trace_ids = sorted({s.trace_id for s in spans})
    before = traces_get(org_id=tenants.org.pk, trace_ids=trace_ids)
    assert dependencies.blocks_cut_due(now_ms=now // 10**6) >= len(spans)
    assert _head_rows(tenants.org.pk) == 0
    assert _key_count(tenants.org.pk) == 0  # cut, then pruned: the spans are in blocks
    assert traces_get(org_id=tenants.org.pk, trace_ids=trace_ids) == before
    _store(tenants.org.pk, spans)  # a late retry: behind the key horizon, found in blocks
    assert span_count(org_id=tenants.org.pk) == len(spans)


def test_retention_drops_whole_block_partitions(tenants):
    now = time.time_ns()
    old = _random_spans(8, now - 20 * 86400 * 10**9, n_traces=5)
    _store(tenants.org.pk, old)
    _cut_all(tenants.org.pk)
    result = retention_apply(signal="traces")
    assert any(name.startswith("trace_blocks_") for name in result["dropped_partitions"])
    assert span_count(org_id=tenants.org.pk) == 0


def test_a_cut_in_small_steps_moves_only_its_org(tenants, monkeypatch):
    """Cut transactions of a few spans across day partitions: every span of the org moves
    once, the neighbour's rows (same ctids in other partitions) stay put."""
    from backend.tracing.storage import blocks

    monkeypatch.setattr(blocks, "CUT_MAX_SPANS", 7)
    now = time.time_ns()
    for org, seed in ((tenants.org.pk, 10), (tenants.other_org.pk, 11)):
        spans = _random_spans(seed, now - 86400 * 10**9, n_traces=6)
        spans += _random_spans(seed + 1, now - 3 * 86400 * 10**9, n_traces=6)
        _store_in_head(org, spans)
    expected = {o: span_count(org_id=o) for o in (tenants.org.pk, tenants.other_org.pk)}
    assert _cut_all(tenants.org.pk) == expected[tenants.org.pk]
    with connection.cursor() as cur:
        cur.execute("SELECT org_id, count(*) FROM trace_spans GROUP BY org_id")
        assert dict(cur.fetchall()) == {tenants.other_org.pk: expected[tenants.other_org.pk]}
    assert {o: span_count(org_id=o) for o in expected} == expected


def _blocks_of(org_id: int) -> list[tuple[int, int]]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT window_ns, n_spans FROM trace_blocks WHERE org_id = %s ORDER BY 1, 2",
            [org_id],
        )
        return cur.fetchall()


def test_compaction_merges_small_blocks_and_answers_the_same(tenants):
    """A low-volume org: one small block per drain round. Compaction merges each settled
    hour window's small blocks into full ones: same answers, same spans, fewer bytes; a
    retry afterwards is still stored once; the neighbour's blocks are left alone."""
    from backend.tracing.storage import blocks

    org, other = tenants.org.pk, tenants.other_org.pk
    now = time.time_ns()
    # the spans' half hour straddles an hour boundary at a fixed phase, so the (seeded) spans
    # fall into the same two windows whatever the wall clock says
    hour = 3600 * 10**9
    spans = _random_spans(12, (now - 3 * hour) // hour * hour + hour // 4, n_traces=60)
    for lo in range(0, len(spans), 11):  # a drain round per small export
        _store(org, spans[lo : lo + 11])
    _store(other, _random_spans(13, now - 3 * 3600 * 10**9, n_traces=20))
    neighbour = _blocks_of(other)
    small = _blocks_of(org)
    windows = {w for w, _ in small}
    assert len(small) > 2 * len(windows)  # several small blocks per window
    trace_ids = sorted({s.trace_id for s in spans})
    queries = _queries(now - 3 * 3600 * 10**9)
    before = _everything(org, trace_ids, queries)
    with connection.cursor() as cur:
        cur.execute("SELECT sum(length(payload)) FROM trace_blocks WHERE org_id = %s", [org])
        size_before = cur.fetchone()[0]

    # windows not settled yet and too few spans to fill a block: nothing to do
    assert blocks.blocks_compact(org_id=org, settled_before_ns=0) == (0, 0)
    merged, written = blocks.blocks_compact(org_id=org, settled_before_ns=now)
    assert merged == len(small) and written == len(windows)
    assert [w for w, _ in _blocks_of(org)] == sorted(windows)
    assert sum(n for _, n in _blocks_of(org)) == len(spans)
    assert _everything(org, trace_ids, queries) == before
    with connection.cursor() as cur:
        cur.execute("SELECT sum(length(payload)) FROM trace_blocks WHERE org_id = %s", [org])
        assert cur.fetchone()[0] < size_before
    assert blocks.blocks_compact(org_id=org, settled_before_ns=now) == (0, 0)  # nothing left
    assert _blocks_of(other) == neighbour

    storage.keys_prune(org_id=org, before_ns=2**62, max_seq=2**62)
    _store(org, spans)  # found in the compacted blocks
    assert span_count(org_id=org) == len(spans)


def test_compaction_of_a_busy_window_fills_blocks(tenants, monkeypatch):
    """Small blocks of a window still receiving spans are merged once they fill a block."""
    from backend.tracing.storage import blocks

    monkeypatch.setattr(blocks, "BLOCK_MAX_SPANS", 40)
    monkeypatch.setattr(blocks, "COMPACT_BELOW", 20)
    org = tenants.org.pk
    hour = time.time_ns() // blocks.WINDOW_NS * blocks.WINDOW_NS - blocks.WINDOW_NS
    spans = _random_spans(14, hour + 45 * 60 * 10**9, n_traces=80)  # all in the last hour
    assert {s.start_ns // blocks.WINDOW_NS for s in spans} == {hour // blocks.WINDOW_NS}
    for lo in range(0, len(spans), 9):
        _store(org, spans[lo : lo + 9])
    assert blocks.blocks_compact(org_id=org, settled_before_ns=0)[0] > 0
    sizes = [n for _, n in _blocks_of(org)]
    assert sum(sizes) == len(spans)
    assert sum(1 for n in sizes if n < 20) <= 1  # what is left over after full blocks


def _v1_payload(batch, service_ids, operation_ids, resource_ids, previous="json_rows"):
    """An outbox payload as receivers wrote it before the columnar format: a JSON array of
    rows, attributes, events and links nested ("json_rows") or as JSON texts ("json_texts")."""
    import json as json_module

    from backend.tracing.storage import catalog, outbox
    from backend.zstd_contexts import compressor

    rows = []
    for s, sid, oid, rid in zip(batch, service_ids, operation_ids, resource_ids, strict=True):
        scope = f"{s.scope_name}@{s.scope_version}" if s.scope_version else s.scope_name
        rows.append(
            [
                s.trace_id.hex(),
                s.span_id.hex(),
                s.parent_span_id.hex() if s.parent_span_id else None,
                sid,
                oid,
                s.kind,
                s.start_ns,
                s.duration_ns,
                s.status_code,
                s.status_message or None,
                rid,
                scope or None,
                s.attributes or None,
                outbox._events(s.events),
                outbox._links(s.links),
                s.flags,
                s.trace_state or None,
            ]
        )
    text = json_module.dumps(
        rows, default=catalog.json_default, ensure_ascii=False, separators=(",", ":")
    )
    if previous == "json_texts" or "\\u0000" in text:
        for row in rows:
            for i in (12, 13, 14):
                if row[i] is not None:
                    row[i] = catalog.dumps(row[i])
        text = json_module.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    return compressor(1).compress(text.encode())


@pytest.mark.parametrize("previous", ["json_rows", "json_texts"])
def test_outbox_rows_written_before_the_upgrade_drain_alike(tenants, monkeypatch, previous):
    """Batches committed by previous receivers, a JSON array of rows (attributes, events and
    links nested, or, before that, as JSON texts inside the row), drain to the same spans as
    today's columnar batches, alone or mixed with them in one drain round."""
    from backend.tracing.storage import outbox

    now = time.time_ns()
    spans = _random_spans(15, now, n_traces=12)
    _store(tenants.other_org.pk, spans)

    def previous_payload(batch, service_ids, operation_ids, resource_ids, entries=None):
        assert entries is None  # (spans written here hold their attributes)
        return _v1_payload(batch, service_ids, operation_ids, resource_ids, previous)

    new_payload = outbox._payload
    monkeypatch.setattr(outbox, "_payload", previous_payload)
    _store(tenants.org.pk, spans)
    trace_ids = sorted({s.trace_id for s in spans})
    got = traces_get(org_id=tenants.org.pk, trace_ids=trace_ids)
    assert sum(len(v) for v in got.values()) == len(spans)
    assert got == traces_get(org_id=tenants.other_org.pk, trace_ids=trace_ids)

    # both formats in one drain round (batches of an upgrade in flight)
    third = tenants.org.pk
    _forget_org_spans(third)
    for i, lo in enumerate(range(0, len(spans), 23)):
        writer = previous_payload if i % 2 else new_payload
        monkeypatch.setattr(outbox, "_payload", writer)
        storage.batch_append(org_id=third, spans=spans[lo : lo + 23])
    assert storage.batches_drain(org_id=third) == len(spans)
    got = traces_get(org_id=third, trace_ids=trace_ids)
    assert got == traces_get(org_id=tenants.other_org.pk, trace_ids=trace_ids)


@pytest.mark.parametrize("previous", ["json_rows", "json_texts"])
def test_columnar_outbox_encodes_the_very_same_blocks(previous):
    """The drain reads a columnar batch into the same block, byte for byte, as the same spans
    written in a previous format (every attribute type, NUL, bytes, events, links)."""
    from backend.tracing.storage import outbox

    for seed in (21, 22):
        spans = _random_spans(seed, time.time_ns(), n_traces=30)
        rng = random.Random(seed)
        ids = [[rng.randrange(1, 50) for _ in spans] for _ in range(3)]
        new = outbox._spans([(0, 0, outbox._payload(spans, *ids))])
        old = outbox._spans([(0, 0, _v1_payload(spans, *ids, previous))])
        assert encoding.encode(new) == encoding.encode(old)
        assert outbox._peer_services(new) == outbox._peer_services(old)
        assert outbox._head_rows(new) == outbox._head_rows(old)


def _edge_request(*, nul_and_bytes: bool, twice: bool):
    """OTLP spans with every attribute type, long strings and nested values; NUL in keys and
    values and bytes values (``nul_and_bytes``); a key sent twice in some spans (``twice``)."""
    from tests.ingest.test_trace_decoders import kv, pb_span, request_of

    rng = random.Random(5)
    values = ["a", "b" * 300, 7, -1, 2.5, True, None, [1, "x"], {"k": 1.5}]
    keys = ["k", "j", "http.url", "peer.service"]
    if nul_and_bytes:
        values += ["nul\x00", b"\x00\x01", [b"\x02"]]
        keys.append("n\x00ul")
    spans = []
    for i in range(60):
        span = pb_span(span_id=(i + 1).to_bytes(8, "big"), start_time_unix_nano=10**18 + i)
        chosen = rng.sample(keys, rng.randrange(0, len(keys)))
        span.attributes.extend(kv(k, rng.choice(values)) for k in chosen)
        if twice and i % 7 == 3 and chosen:
            span.attributes.append(kv(chosen[0], "again"))  # the dict keeps the last value
        spans.append(span)
    return request_of(*spans)


@pytest.mark.parametrize("shape", ["envoy", "otel", "typed", "twice", "nul_and_bytes", "plain"])
def test_outbox_row_from_the_decoders_columns_is_the_same(shape):
    """The outbox row the receiver writes from the OTLP decoder's attribute entries (no dict
    per span) is byte for byte the one written from a dict per span: all the spans, and the
    subsets the time window and the per-trace cap leave."""
    from backend.tracing.storage import outbox
    from bench.decode_traces import envoy_spans, otlp_request
    from bench.traces_ingest import otel_spans
    from ingest.decoders.otlp_traces import decode_otlp_protobuf
    from ingest.decoders.spans import SpanLimits

    if shape == "envoy":
        body = otlp_request(envoy_spans(500, seed=3)).SerializeToString()
    elif shape == "otel":
        body = otlp_request(otel_spans(500, seed=3, start_us=10**15)).SerializeToString()
    else:
        request = _edge_request(nul_and_bytes=shape == "nul_and_bytes", twice=shape == "twice")
        if shape == "plain":  # strings only, no NUL, no key twice: the columns' fast path
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        del span.attributes[:]
                        span.attributes.add(key="k", value={"string_value": span.name})
        body = request.SerializeToString()
    for limits in (
        SpanLimits(),
        SpanLimits(max_attributes_per_span=3, max_attribute_value_length=9),
    ):
        dicts = decode_otlp_protobuf(body, limits)
        cols = decode_otlp_protobuf(body, limits, columns=True)
        assert cols.attributes is not None and len(cols.spans) == len(dicts.spans)
        n = len(dicts.spans)
        rng = random.Random(n)
        ids = [[rng.randrange(1, 50) for _ in range(n)] for _ in range(3)]
        assert outbox._payload(cols.spans, *ids, cols.attributes) == outbox._payload(
            dicts.spans, *ids
        )
        for _ in range(3):
            idx = sorted(rng.sample(range(n), rng.randrange(1, n)))
            sub_ids = [[column[i] for i in idx] for column in ids]
            assert outbox._payload(
                [cols.spans[i] for i in idx], *sub_ids, cols.attributes.take(idx)
            ) == outbox._payload([dicts.spans[i] for i in idx], *sub_ids)
