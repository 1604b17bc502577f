"""RED metrics derived from spans, written into the metrics store under the names Tempo's
metrics-generator uses, so PromQL over them works like over any other series:

- ``traces_spanmetrics_calls_total{service, span_name, span_kind, status_code}``
- ``traces_spanmetrics_latency_bucket{…, le}``, ``_sum``, ``_count`` (seconds)
- ``traces_service_graph_request_total{client, server}``,
  ``traces_service_graph_request_failed_total{client, server}``,
  ``traces_service_graph_request_server_seconds_bucket`` / ``_sum`` / ``_count`` and
  ``traces_service_graph_request_client_seconds_bucket`` / ``_sum`` / ``_count``

The dependency rollup calls :func:`write_increments` with what one run counted for one org
(see ``dependencies.py``), in the transaction that stores the org's new watermarks and under
the org's store lock, so each span is added to the cumulative counters exactly once (the
running totals are read and written under that transaction). Counters are cumulative per
series (``trace_metric_totals`` keeps the running totals) and stamped at the end of the span's
minute, or of the run's first minute for a late span, so a series never goes back in time.
"""

from __future__ import annotations

import numpy as np
from django.db import connection

from backend.metrics.labels import METRIC_NAME
from backend.metrics.series import series_ids_resolve
from backend.metrics.services import samples_write
from backend.metrics.storage.catalog import fingerprint
from backend.tenancy.selectors import limits_get
from backend.tracing.spans import KIND_OTLP_NAMES

# Tempo's default span-metrics histogram buckets, in seconds.
BUCKETS = (
    0.002,
    0.004,
    0.008,
    0.016,
    0.032,
    0.064,
    0.128,
    0.256,
    0.512,
    1.024,
    2.048,
    4.096,
    8.192,
    16.384,
)
STATUSES = {0: "STATUS_CODE_UNSET", 1: "STATUS_CODE_OK", 2: "STATUS_CODE_ERROR"}


def bucket_counts_sql(column: str) -> str:
    """SQL aggregates counting ``column`` (nanoseconds) at or below each bucket bound."""
    return ", ".join(f"count(*) FILTER (WHERE {column} <= {int(b * 1e9)})" for b in BUCKETS)


def bucket_sums_sql(column: str) -> str:
    """SQL aggregates summing arrays of ``bucket_counts_sql`` counts (``column``) per bucket."""
    return ", ".join(f"sum({column}[{i}])::bigint" for i in range(1, len(BUCKETS) + 1))


def _labels(name: str, **labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({METRIC_NAME: name, **labels}.items()))


def _span_label_sets(service, span_name, kind_name, status_name) -> list[tuple]:
    """The label sets of one span group's series, in ``_SPAN_VALUES``' column order."""
    base = {
        "service": service,
        "span_name": span_name,
        "span_kind": kind_name,
        "status_code": status_name,
    }
    return [
        _labels("traces_spanmetrics_calls_total", **base),
        *_histogram_labels("traces_spanmetrics_latency", base),
    ]


def _edge_label_sets(client, server) -> list[tuple]:
    """The label sets of one edge's series, in ``_EDGE_VALUES``' column order."""
    pair = {"client": client, "server": server}
    return [
        _labels("traces_service_graph_request_total", **pair),
        _labels("traces_service_graph_request_failed_total", **pair),
        *_histogram_labels("traces_service_graph_request_server_seconds", pair),
        *_histogram_labels("traces_service_graph_request_client_seconds", pair),
    ]


def _histogram_labels(name: str, labels: dict) -> list[tuple]:
    """A classic histogram's series: ``_count``, ``_sum``, ``_bucket`` for ``+Inf`` and each
    bound (the column order of ``_histogram_values``)."""
    return [
        _labels(f"{name}_count", **labels),
        _labels(f"{name}_sum", **labels),
        _labels(f"{name}_bucket", le="+Inf", **labels),
        *(_labels(f"{name}_bucket", le=repr(bound), **labels) for bound in BUCKETS),
    ]


def _histogram_values(count: np.ndarray, sum_ns: np.ndarray, buckets) -> list[np.ndarray]:
    """The increment columns of ``_histogram_labels`` (the sum in seconds)."""
    if len(buckets):
        matrix = np.array(buckets, dtype=np.float64).reshape(len(count), len(BUCKETS))
    else:
        matrix = np.zeros((0, len(BUCKETS)))
    return [count, sum_ns / 1e9, count, *matrix.T]


def _groups(keys, make_labels) -> tuple[np.ndarray, list[tuple]]:
    """The group index of every row's key, and the label sets of the distinct groups (each
    group's series in a row, ``n`` per group)."""
    index: dict[tuple, int] = {}
    label_sets: list[tuple] = []
    rows = np.empty(len(keys), dtype=np.int64)
    for r, key in enumerate(keys):
        g = index.get(key)
        if g is None:
            g = index[key] = len(index)
            label_sets.extend(make_labels(*key))
        rows[r] = g
    return rows, label_sets


def _increments(stamp_from_ms: int, span_rows, edge_rows):
    """The rollup's span and edge rows as increments of series: (label sets, then per
    increment its series' position in them, its minute and its value). A late span's minute
    (before ``stamp_from_ms``) counts as that first minute of the run. Computed per group
    and column (numpy), not per series and minute in Python."""
    label_sets: list[tuple] = []
    series, minutes, values = [], [], []
    if span_rows:
        cols = list(zip(*span_rows, strict=True))
        keys = zip(
            cols[1],
            cols[2],
            (KIND_OTLP_NAMES.get(k, "") for k in cols[3]),
            (STATUSES.get(c, "") for c in cols[4]),
            strict=True,
        )
        groups, labels = _groups(list(keys), _span_label_sets)
        calls = np.array(cols[5], dtype=np.float64)
        columns = [
            calls,
            *_histogram_values(
                calls,
                np.array([float(v) for v in cols[6]], dtype=np.float64),
                [b for row in span_rows for b in row[7:]],
            ),
        ]
        _add(series, minutes, values, groups, len(label_sets), cols[0], columns)
        label_sets.extend(labels)
    if edge_rows:
        cols = list(zip(*edge_rows, strict=True))
        groups, labels = _groups(list(zip(cols[1], cols[2], strict=True)), _edge_label_sets)
        calls = np.array(cols[3], dtype=np.float64)
        columns = [
            calls,
            np.array(cols[4], dtype=np.float64),
            *_histogram_values(
                calls,
                np.array([float(v) for v in cols[5]], dtype=np.float64),
                [b for bs in cols[6] for b in bs],
            ),
            *_histogram_values(
                calls,
                np.array([float(v) for v in cols[7]], dtype=np.float64),
                [b for bs in cols[8] for b in bs],
            ),
        ]
        _add(series, minutes, values, groups, len(label_sets), cols[0], columns)
        label_sets.extend(labels)
    if not label_sets:
        return label_sets, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    minute = np.maximum(np.concatenate(minutes), stamp_from_ms)
    return label_sets, np.concatenate(series), minute, np.concatenate(values)


def _add(series, minutes, values, groups, offset, row_minutes, columns) -> None:
    """Append, column by column, each row's increment of its group's series."""
    width = len(columns)
    row_minutes = np.array(row_minutes, dtype=np.int64)
    for j, column in enumerate(columns):
        series.append(offset + groups * width + j)
        minutes.append(row_minutes)
        values.append(np.asarray(column, dtype=np.float64))


def running_totals(known: np.ndarray, series, minutes, increments):
    """Add the increments to the running totals ``known`` (per series, in minute order):
    returns the samples (series position, minute, total after that minute) of every series
    and minute that moved, and the new totals."""
    running = np.array(known, dtype=np.float64)
    out_series, out_minutes, out_values = [], [], []
    # by minute, then series (stable: a series added to twice in a minute keeps its order)
    order = np.lexsort((series, minutes))
    series, minutes, increments = series[order], minutes[order], increments[order]
    bounds = np.flatnonzero(np.diff(minutes)) + 1
    for part in np.split(np.arange(len(minutes)), bounds):
        if len(part) == 0:
            continue
        idx = series[part]
        np.add.at(running, idx, increments[part])  # (in order, a series added to twice)
        first = np.ones(len(idx), dtype=bool)
        first[1:] = idx[1:] != idx[:-1]
        moved = idx[first]
        out_series.append(moved)
        out_minutes.append(np.full(len(moved), minutes[part[0]], dtype=np.int64))
        out_values.append(running[moved])
    if not out_series:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), running
    return (
        np.concatenate(out_series),
        np.concatenate(out_minutes),
        np.concatenate(out_values),
        running,
    )


# The same series move in every run: their fingerprints are kept (bounded) per process.
_fingerprints: dict[tuple, int] = {}
_MAX_FINGERPRINTS = 200_000


def _fingerprint(labels: tuple) -> int:
    fp = _fingerprints.get(labels)
    if fp is None:
        if len(_fingerprints) >= _MAX_FINGERPRINTS:
            _fingerprints.clear()
        fp = _fingerprints[labels] = fingerprint(labels)
    return fp


def write_increments(*, org_id: int, stamp_from_ms: int, span_rows, edge_rows) -> int:
    """Add one rollup run's counts of an org to its cumulative series: one sample per series
    and minute it moved in, stamped at the minute's end. Returns samples written."""
    label_sets, series, minutes, increments = _increments(stamp_from_ms, span_rows, edge_rows)
    if not label_sets:
        return 0
    fps = [_fingerprint(labels) for labels in label_sets]
    with connection.cursor() as cur:
        cur.execute(
            "SELECT fingerprint, total FROM trace_metric_totals "
            "WHERE org_id = %s AND fingerprint = ANY(%s)",
            [org_id, fps],
        )
        known = dict(cur.fetchall())
    positions, sample_minutes, sample_values, running = running_totals(
        np.array([known.get(f, 0.0) for f in fps], dtype=np.float64),
        series,
        minutes,
        increments,
    )
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO trace_metric_totals (org_id, fingerprint, total)
            SELECT %s, f, v FROM unnest(%s::bigint[], %s::float8[]) AS t(f, v)
            ORDER BY f
            ON CONFLICT (org_id, fingerprint) DO UPDATE SET total = EXCLUDED.total
            """,
            [org_id, fps, running.tolist()],
        )
    limits = limits_get(org_id=org_id)
    resolved = series_ids_resolve(
        org_id=org_id,
        label_sets=label_sets,
        max_per_user=limits.max_global_series_per_user,
        max_per_metric=limits.max_global_series_per_metric,
        cache=False,  # (inside the rollup's transaction: its new series may roll back)
    )
    # series over the org's limits are skipped, like any refused one
    keep = resolved.admitted[positions]
    if not keep.any():
        return 0
    samples_write(
        org_id=org_id,
        series_ids=resolved.ids[positions][keep],
        timestamps=sample_minutes[keep] + 60_000,
        values=sample_values[keep],
    )
    return int(keep.sum())
