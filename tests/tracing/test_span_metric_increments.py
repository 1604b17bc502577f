"""The span metrics' increments, computed per group and column (numpy), equal the plain
per-series, per-minute running totals they replaced (kept here as the reference), late
minutes, unknown kinds and series moved twice in a minute included."""

from __future__ import annotations

import random

import numpy as np

from backend.tracing import span_metrics
from backend.tracing.span_metrics import BUCKETS, STATUSES, running_totals
from backend.tracing.spans import KIND_OTLP_NAMES


def _labels(name, **labels):
    return tuple(sorted({"__name__": name, **labels}.items()))


def _histogram(name, labels, count, sum_ns, buckets):
    rows = [
        (_labels(f"{name}_count", **labels), count),
        (_labels(f"{name}_sum", **labels), sum_ns / 1e9),
        (_labels(f"{name}_bucket", le="+Inf", **labels), count),
    ]
    for bound, n in zip(BUCKETS, buckets, strict=True):
        rows.append((_labels(f"{name}_bucket", le=repr(bound), **labels), n))
    return rows


def _reference(stamp_from_ms, span_rows, edge_rows, known):
    """The samples {(labels, minute): total} and final totals, one series at a time."""
    by_minute = {}
    for minute, service, span_name, kind, status, calls, dur_sum, *buckets in span_rows:
        base = {
            "service": service,
            "span_name": span_name,
            "span_kind": KIND_OTLP_NAMES.get(kind, ""),
            "status_code": STATUSES.get(status, ""),
        }
        rows = by_minute.setdefault(max(minute, stamp_from_ms), [])
        rows.append((_labels("traces_spanmetrics_calls_total", **base), calls))
        rows.extend(_histogram("traces_spanmetrics_latency", base, calls, float(dur_sum), buckets))
    for minute, client, server, calls, errors, s_sum, s_b, c_sum, c_b in edge_rows:
        pair = {"client": client, "server": server}
        rows = by_minute.setdefault(max(minute, stamp_from_ms), [])
        rows.append((_labels("traces_service_graph_request_total", **pair), calls))
        rows.append((_labels("traces_service_graph_request_failed_total", **pair), errors))
        rows.extend(
            _histogram(
                "traces_service_graph_request_server_seconds", pair, calls, float(s_sum), s_b
            )
        )
        rows.extend(
            _histogram(
                "traces_service_graph_request_client_seconds", pair, calls, float(c_sum), c_b
            )
        )
    running = dict(known)
    samples = {}
    for minute in sorted(by_minute):
        for labels, inc in by_minute[minute]:
            running[labels] = running.get(labels, 0.0) + float(inc)
            samples[(labels, minute)] = running[labels]
    return samples, running


def _rows(rng, first_minute):
    span_rows, edge_rows = [], []
    for minute in range(first_minute - 3 * 60_000, first_minute + 5 * 60_000, 60_000):
        for service in rng.sample(["cart", "db", "gateway"], k=rng.randrange(1, 4)):
            for kind in rng.sample([1, 2, 3, 9], k=rng.randrange(1, 3)):  # 9: unknown
                calls = rng.randrange(1, 50)
                buckets = sorted(rng.randrange(calls + 1) for _ in BUCKETS)
                span_rows.append(
                    (
                        minute,
                        service,
                        f"op-{service}",
                        kind,
                        rng.choice([0, 1, 2, 7]),
                        calls,
                        rng.randrange(10**12),
                        *buckets,
                    )
                )
        for client, server in rng.sample([("cart", "db"), ("gateway", "cart"), ("cart", "pg")], 2):
            calls = rng.randrange(1, 50)
            edge_rows.append(
                (
                    minute,
                    client,
                    server,
                    calls,
                    rng.randrange(calls + 1),
                    rng.randrange(10**12),
                    sorted(rng.randrange(calls + 1) for _ in BUCKETS),
                    rng.randrange(10**12),
                    sorted(rng.randrange(calls + 1) for _ in BUCKETS),
                )
            )
    rng.shuffle(span_rows)
    rng.shuffle(edge_rows)
    return span_rows, edge_rows


def test_increments_equal_the_per_series_running_totals():
    rng = random.Random(14)
    first = 1_700_000_040_000
    for _ in range(20):
        span_rows, edge_rows = _rows(rng, first)
        label_sets, series, minutes, increments = span_metrics._increments(
            first, span_rows, edge_rows
        )
        assert len(set(label_sets)) == len(label_sets)
        known = {labels: rng.randrange(1000) * 1.5 for labels in rng.sample(label_sets, 10)}
        positions, sample_minutes, values, running = running_totals(
            np.array([known.get(ls, 0.0) for ls in label_sets]), series, minutes, increments
        )
        got = {
            (label_sets[p], int(m)): float(v)
            for p, m, v in zip(positions, sample_minutes, values, strict=True)
        }
        assert len(got) == len(positions)  # one sample per series and minute
        samples, totals = _reference(first, span_rows, edge_rows, known)
        assert got == samples  # exactly: the same additions in the same order per series
        assert dict(zip(label_sets, running.tolist(), strict=True)) == {
            ls: totals[ls] for ls in label_sets
        }
        assert min(sample_minutes) == first  # late minutes stamped at the run's first


def test_no_rows_no_increments():
    label_sets, series, minutes, increments = span_metrics._increments(0, [], [])
    assert label_sets == [] and len(series) == len(minutes) == len(increments) == 0
