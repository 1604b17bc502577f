"""Spans that arrive late (within the org's out-of-order window) are counted in the
dependencies, the service graph and the span metrics exactly once, whatever their order of
arrival, retries and block cuts: the rollups end equal to a brute-force count over the stored
spans, and every cumulative counter only grows."""

from __future__ import annotations

import random
import re
import time
from collections import Counter

import pytest
from django.db import connection, transaction

from backend.metrics.labels import Matcher
from backend.metrics.selectors import samples_for_series
from backend.metrics.storage.reader import series_match
from backend.pipeline.binary import binary_cursor
from backend.pipeline.drain import org_drain
from backend.tenancy.services import limits_update
from backend.tracing import dependencies, storage
from backend.tracing.selectors import span_count, traces_get
from backend.tracing.spans import Span
from backend.tracing.storage import outbox
from backend.tracing.storage.encoding import Block

pytestmark = pytest.mark.django_db
MINUTE_NS = 60 * 10**9
SERVICES = ["gateway", "frontend", "cart", "db-proxy"]


def _span(trace_id, span_id, parent, service, kind, start, status, attrs=None) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        service=service,
        name=f"op-{service}",
        kind=kind,
        start_ns=start,
        duration_ns=1000 + start % 7_000_000,
        status_code=status,
        status_message="",
        attributes=attrs or {},
        events=[],
        links=[],
        resource={"service.name": service},
        scope_name="",
        scope_version="",
        trace_state="",
        flags=0,
        shared=False,
    )


def _random_traces(seed: int, base_ns: int, n_traces: int = 40) -> list[Span]:
    rng = random.Random(seed)
    spans = []
    for _ in range(n_traces):
        trace_id = rng.randbytes(16)
        t0 = base_ns + rng.randrange(3 * MINUTE_NS)
        queue = [(None, "gateway", t0)]
        n = 0
        while queue and n < 10:
            parent, service, start = queue.pop(0)
            n += 1
            span_id = rng.randbytes(8)
            status = 2 if rng.random() < 0.2 else 0
            if service == "db-proxy" and rng.random() < 0.5:  # a leaf call to a peer
                # (named like an instrumented service at times: its calls add to that edge)
                peer = rng.choice(["postgres", "cart"])
                spans.append(
                    _span(
                        trace_id,
                        span_id,
                        parent,
                        service,
                        3,
                        start,
                        status,
                        {"peer.service": peer},
                    )
                )
                continue
            spans.append(_span(trace_id, span_id, parent, service, 2, start, status))
            for callee in rng.sample(SERVICES, k=rng.randrange(0, 3)):
                # children start up to 70 s later: some in the next minute
                queue.append((span_id, callee, start + rng.randrange(70 * 10**9)))
    return spans


def _write(org_id: int, spans: list[Span]) -> None:
    for lo in range(0, len(spans), 25):
        storage.batch_append(org_id=org_id, spans=spans[lo : lo + 25])
    org_drain(signal="traces", org_id=org_id)


def _brute_force(spans):
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    has_child = {(s.trace_id, s.parent_span_id) for s in spans if s.parent_span_id}
    edges, calls = Counter(), Counter()
    for s in spans:
        minute = s.start_ns // MINUTE_NS * 60_000
        calls[(s.service, s.name, s.kind, s.status_code)] += 1
        parent = by_id.get((s.trace_id, s.parent_span_id)) if s.parent_span_id else None
        if parent and parent.service != s.service:
            edges[(minute, parent.service, s.service)] += 1
        peer = s.attributes.get("peer.service")
        if s.kind == 3 and peer and peer != s.service and (s.trace_id, s.span_id) not in has_child:
            edges[(minute, s.service, peer)] += 1
    return edges, calls


def _stored(org_id: int):
    with connection.cursor() as cur:
        cur.execute("SELECT DISTINCT trace_id FROM trace_span_keys WHERE org_id = %s", [org_id])
        ids = {bytes(r[0]) for r in cur.fetchall()}
        cur.execute("SELECT min_start_ns, payload FROM trace_blocks WHERE org_id = %s", [org_id])
        for lo, payload in cur.fetchall():
            b = Block(bytes(payload), lo)
            ids |= {b.trace_id(i) for i in range(len(b.trace_counts))}
    found = traces_get(org_id=org_id, trace_ids=sorted(ids))
    return [s for spans in found.values() for s in spans]


def _edges(org_id: int) -> Counter:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT minute, parent, child, calls FROM trace_dependency_edges WHERE org_id = %s",
            [org_id],
        )
        return Counter({(m, p, c): n for m, p, c, n in cur.fetchall()})


def _series(org_id: int, name: str) -> dict[tuple, list[float]]:
    org_drain(signal="metrics", org_id=org_id)
    series = series_match(org_id=org_id, matchers=[Matcher("__name__", "=", name)])
    data = samples_for_series(org_id=org_id, series=series, start_ms=0, end_ms=2**62)
    return {tuple(sorted(series[sid].items())): list(v) for sid, (_, v) in data.items()}


def test_late_spans_are_counted_once_and_rollups_converge(tenants):
    org = tenants.org.pk
    base = (time.time_ns() - 60 * MINUTE_NS) // MINUTE_NS * MINUTE_NS
    base_ms = base // 10**6
    spans = _random_traces(1, base)
    rng = random.Random(9)
    rng.shuffle(spans)
    on_time, late_a, late_b = spans[: len(spans) // 2], spans[len(spans) // 2 :], []
    late_b = late_a[len(late_a) // 2 :]
    late_a = late_a[: len(late_a) // 2]
    _write(tenants.other_org.pk, _random_traces(2, base))  # a neighbour, never counted here

    _write(org, on_time)
    assert dependencies.rollup_due(now_ms=base_ms + 6 * 60_000) > 0
    _write(org, late_a)  # 5 to 8 minutes late
    assert dependencies.rollup_due(now_ms=base_ms + 8 * 60_000) > 0
    _write(org, late_b + late_a[:10])  # up to 11 minutes late, with a retried batch
    dependencies.rollup_due(now_ms=base_ms + 11 * 60_000)
    # later on: the counted keys are pruned, then a retry of spans stored in blocks
    dependencies.rollup_due(now_ms=base_ms + 40 * 60_000)
    dependencies.blocks_cut_due(now_ms=base_ms + 40 * 60_000)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM trace_spans WHERE org_id = %s", [org])
        assert cur.fetchone()[0] == 0  # all in blocks (the drain wrote them)
        cur.execute("SELECT count(*) FROM trace_span_keys WHERE org_id = %s", [org])
        assert cur.fetchone()[0] == 0  # counted keys pruned: a retry is looked up in blocks
    _write(org, late_b[:30])
    assert dependencies.rollup_due(now_ms=base_ms + 41 * 60_000) == 0
    assert span_count(org_id=org) == len(spans)

    edges, calls = _brute_force(_stored(org))
    assert {("db-proxy", "postgres"), ("db-proxy", "cart")} <= {(p, c) for _, p, c in edges}
    assert _edges(org) == edges

    got = _series(org, "traces_spanmetrics_calls_total")
    totals = {
        (d["service"], d["span_name"], d["span_kind"], d["status_code"]): v[-1]
        for d, v in ((dict(k), v) for k, v in got.items())
    }
    kinds = {2: "SPAN_KIND_SERVER", 3: "SPAN_KIND_CLIENT"}
    statuses = {0: "STATUS_CODE_UNSET", 2: "STATUS_CODE_ERROR"}
    assert totals == {(s, n, kinds[k], statuses[c]): n_ for (s, n, k, c), n_ in calls.items()}
    graph = _series(org, "traces_service_graph_request_total")
    pairs = Counter()
    for (_, p, c), n in edges.items():
        pairs[(p, c)] += n
    assert {(dict(k)["client"], dict(k)["server"]): v[-1] for k, v in graph.items()} == pairs
    for values in [*got.values(), *graph.values()]:
        assert values == sorted(values)  # monotonic: a late span never rewrites the past


def test_spans_later_than_the_window_are_stored_but_not_counted(tenants):
    org = tenants.org.pk
    limits_update(org=tenants.org, changes={"traces_out_of_order_window_seconds": 60})
    base = (time.time_ns() - 60 * MINUTE_NS) // MINUTE_NS * MINUTE_NS
    base_ms = base // 10**6
    first = _random_traces(3, base, n_traces=5)
    _write(org, first)
    counted = dependencies.rollup_due(now_ms=base_ms + 6 * 60_000)
    assert counted == len(first)
    too_late = [_span(b"\x01" * 16, b"\x02" * 8, None, "cart", 2, base, 0)]
    _write(org, too_late)  # 5 minutes after its minute was counted, with a 1-minute window
    assert dependencies.rollup_due(now_ms=base_ms + 10 * 60_000) == 0
    assert span_count(org_id=org) == len(first) + 1


def _plan_with_stale_statistics(
    tenants, sql: str, params, pin=None, explain="EXPLAIN "
) -> list[str]:
    """EXPLAIN of ``sql`` for ``tenants.org`` once the key head was analyzed while it held
    another org's keys only: the org's keys are then estimated at one row."""
    now = time.time_ns()
    _write(tenants.other_org.pk, _random_traces(1, now - 5 * MINUTE_NS, n_traces=60))
    with connection.cursor() as cur:
        cur.execute("ANALYZE trace_span_keys")
    _write(tenants.org.pk, _random_traces(2, now - 5 * MINUTE_NS, n_traces=120))
    with transaction.atomic(), connection.cursor() as cur:
        if pin is not None:
            pin(cur)
        raw = binary_cursor(cur)
        raw.execute(explain + sql, params(now))
        return [line for (line,) in raw.fetchall()]


def _probe_indexes(plan: list[str]) -> list[str]:
    """The index each probe of the key head (alias k) reads, a bitmap scan by its index scan
    (the probe's line itself where it reads no index)."""
    out = []
    for i, line in enumerate(plan):
        if "on trace_span_keys k" in line:
            if "Bitmap Heap Scan" in line:
                line = next(x for x in plan[i + 1 :] if "Bitmap Index Scan" in x)
            found = re.search(r"trace_span_keys_\w+", line)
            out.append(found.group(0) if found else line.strip())
    return out


def test_the_rollup_probes_the_identity_index_once_per_new_span(tenants):
    # For an org the statistics have not seen, the rollup's per-span probes once took the
    # (org_id, start_ns) index with the org alone as its condition, a scan of the org's whole
    # key head per span (minutes for 20,000 spans: ingest stalled behind the org's lock).
    # Joined to the service names per edge, the planner once took the org's services as the
    # outer side and computed the edges, probes and all, once per service (4x the day's
    # catch-up at 20 services)
    plan = _plan_with_stale_statistics(
        tenants,
        dependencies._EDGES,
        lambda now: {
            "org": tenants.org.pk,
            "s0": 0,
            "s1": 2**62,
            "r0": now - 10 * MINUTE_NS,
            "r1": now,
            "low": now - 20 * MINUTE_NS,
        },
        pin=dependencies.plan_pin,
        explain="EXPLAIN (ANALYZE, COSTS OFF) ",
    )
    assert _probe_indexes(plan) == ["trace_span_keys_identity"] * 3, "\n".join(plan)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM trace_span_keys WHERE org_id = %s", [tenants.org.pk])
        (keys,) = cur.fetchone()
    loops = [
        int(re.search(r"loops=(\d+)", line).group(1))
        for line in plan
        if "on trace_span_keys k" in line and "never executed" not in line
    ]
    assert loops, "\n".join(plan)
    assert max(loops) <= keys, "\n".join(plan)


def test_the_drain_looks_up_stored_keys_by_trace_for_an_org_the_statistics_have_not_seen(
    tenants,
):
    # (it once scanned the org's whole key head per drain round, the org alone the index
    # condition)
    trace_ids = [bytes([i]) * 16 for i in range(1, 40)]
    plan = _plan_with_stale_statistics(
        tenants,
        outbox.STORED_KEYS,
        lambda now: [tenants.org.pk, len(trace_ids), b"".join(trace_ids)],
    )
    probes = [line for line in plan if "on trace_span_keys" in line]
    assert len(probes) == 1, "\n".join(plan)
    assert "using trace_span_keys_identity" in probes[0], "\n".join(plan)
