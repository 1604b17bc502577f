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


def _labels(name: str, **labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({METRIC_NAME: name, **labels}.items()))


def _increments(stamp_from_ms: int, span_rows, edge_rows) -> dict[int, list[tuple[tuple, float]]]:
    """{minute: [(label set, increment)]} for the rollup's span and edge rows; a late span's
    minute (before ``stamp_from_ms``) counts as that first minute of the run."""
    out: dict[int, list[tuple[tuple, float]]] = {}
    for minute, service, span_name, kind, status, calls, dur_sum, *buckets in span_rows:
        base = {
            "service": service,
            "span_name": span_name,
            "span_kind": KIND_OTLP_NAMES.get(kind, ""),
            "status_code": STATUSES.get(status, ""),
        }
        rows = out.setdefault(max(minute, stamp_from_ms), [])
        rows.append((_labels("traces_spanmetrics_calls_total", **base), calls))
        rows.extend(_histogram("traces_spanmetrics_latency", base, calls, float(dur_sum), buckets))
    for minute, client, server, calls, errors, *latency in edge_rows:
        server_sum, server_buckets, client_sum, client_buckets = latency
        pair = {"client": client, "server": server}
        rows = out.setdefault(max(minute, stamp_from_ms), [])
        rows.append((_labels("traces_service_graph_request_total", **pair), calls))
        rows.append((_labels("traces_service_graph_request_failed_total", **pair), errors))
        rows.extend(
            _histogram(
                "traces_service_graph_request_server_seconds",
                pair,
                calls,
                float(server_sum),
                server_buckets,
            )
        )
        rows.extend(
            _histogram(
                "traces_service_graph_request_client_seconds",
                pair,
                calls,
                float(client_sum),
                client_buckets,
            )
        )
    return out


def _histogram(name: str, labels: dict, count: int, sum_ns: float, buckets) -> list[tuple]:
    """The increments of a classic histogram (``_bucket`` per bound and ``+Inf``, ``_sum`` in
    seconds, ``_count``)."""
    rows = [
        (_labels(f"{name}_count", **labels), count),
        (_labels(f"{name}_sum", **labels), sum_ns / 1e9),
        (_labels(f"{name}_bucket", le="+Inf", **labels), count),
    ]
    for bound, n in zip(BUCKETS, buckets or [0] * len(BUCKETS), strict=True):
        rows.append((_labels(f"{name}_bucket", le=repr(bound), **labels), n))
    return rows


def write_increments(*, org_id: int, stamp_from_ms: int, span_rows, edge_rows) -> int:
    """Add one rollup run's counts of an org to its cumulative series: one sample per series
    and minute it moved in, stamped at the minute's end. Returns samples written."""
    written = 0
    by_minute = _increments(stamp_from_ms, span_rows, edge_rows)
    if by_minute:
        label_sets = list(
            dict.fromkeys(labels for rows in by_minute.values() for labels, _ in rows)
        )
        index = {labels: i for i, labels in enumerate(label_sets)}
        fps = [fingerprint(labels) for labels in label_sets]
        with connection.cursor() as cur:
            cur.execute(
                "SELECT fingerprint, total FROM trace_metric_totals "
                "WHERE org_id = %s AND fingerprint = ANY(%s)",
                [org_id, fps],
            )
            known = dict(cur.fetchall())
        running = np.array([known.get(f, 0.0) for f in fps], dtype=np.float64)
        sample_rows, sample_ts, sample_values = [], [], []
        for minute in sorted(by_minute):
            moved = {}
            for labels, increment in by_minute[minute]:
                i = index[labels]
                running[i] += float(increment)
                moved[i] = running[i]
            sample_rows.extend(moved)
            sample_ts.extend([minute + 60_000] * len(moved))
            sample_values.extend(moved.values())
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
        positions = np.array(sample_rows, dtype=np.int64)
        series_ids = resolved.ids[positions]
        # series over the org's limits are skipped, like any refused one
        keep = resolved.admitted[positions]
        if keep.any():
            samples_write(
                org_id=org_id,
                series_ids=series_ids[keep],
                timestamps=np.array(sample_ts, dtype=np.int64)[keep],
                values=np.array(sample_values, dtype=np.float64)[keep],
            )
            written += int(keep.sum())
    return written
