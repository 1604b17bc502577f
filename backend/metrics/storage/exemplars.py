"""Exemplars per series (``metric_exemplars``): written directly and idempotently (one per
series and timestamp), each org trimmed to its newest ``max_global_exemplars_per_user``, read
by series and time for ``/api/v1/query_exemplars``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction

from backend.metrics.models import MetricExemplar

TRACE_ID = "trace_id"
SPAN_ID = "span_id"


@dataclass(frozen=True, slots=True)
class StoredExemplar:
    series_id: int
    timestamp_ms: int
    value: float
    labels: dict[str, str]  # trace_id and span_id (lower hex) included


def _id_bytes(text: str | None, size: int) -> bytes | None:
    """An id label as bytes when it is ``size`` bytes of hex, as OTel and Prometheus write."""
    if text is None or len(text) != 2 * size:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def exemplars_insert(
    *,
    org_id: int,
    series_ids: Sequence[int],
    timestamps: Sequence[int],
    values: Sequence[float],
    labels: Sequence[Sequence[tuple[str, str]]],
    keep: int,
    oldest_ms: int | None = None,
) -> int:
    """Store exemplars (a retried write adds nothing), then drop the org's oldest beyond
    ``keep`` and those before ``oldest_ms`` (the org's retention). Returns how many were
    offered (Prometheus's "written" counts accepted ones)."""
    rows = []
    for series_id, ts, value, pairs in zip(series_ids, timestamps, values, labels, strict=True):
        found = dict(pairs)
        trace_id = _id_bytes(found.get(TRACE_ID), 16)
        span_id = _id_bytes(found.get(SPAN_ID), 8)
        # ids that are not plain hex stay among the other labels, as sent
        others = [
            [name, text]
            for name, text in pairs
            if not (name == TRACE_ID and trace_id) and not (name == SPAN_ID and span_id)
        ]
        rows.append(
            MetricExemplar(
                org_id=org_id,
                series_id=int(series_id),
                timestamp_ms=int(ts),
                value=float(value),
                trace_id=trace_id,
                span_id=span_id,
                labels=others,
            )
        )
    if not rows:
        return 0
    with transaction.atomic():
        MetricExemplar.objects.for_org(org_id).bulk_create(rows, ignore_conflicts=True)
        _trim(org_id, keep)
        if oldest_ms is not None:
            MetricExemplar.objects.for_org(org_id).filter(timestamp_ms__lt=oldest_ms).delete()
    return len(rows)


def _trim(org_id: int, keep: int) -> None:
    # The newest ``keep`` by time stay (an index-only walk of at most ``keep`` entries finds
    # the cut); concurrent writers may briefly leave a few more, never fewer.
    with connection.cursor() as cur:
        cur.execute(
            "DELETE FROM metric_exemplars WHERE org_id = %s AND timestamp_ms < ("
            " SELECT timestamp_ms FROM metric_exemplars WHERE org_id = %s"
            " ORDER BY timestamp_ms DESC OFFSET %s LIMIT 1)",
            [org_id, org_id, max(keep - 1, 0)],
        )


def exemplars_for_series(
    *, org_id: int, series_ids: Sequence[int], start_ms: int, end_ms: int, limit: int
) -> list[StoredExemplar]:
    """Exemplars of these series in ``[start_ms, end_ms]``, by series then time (at most
    ``limit``)."""
    if not series_ids:
        return []
    found = (
        MetricExemplar.objects.for_org(org_id)
        .filter(series_id__in=list(series_ids))
        .filter(timestamp_ms__gte=start_ms, timestamp_ms__lte=end_ms)
        .order_by("series_id", "timestamp_ms")
        .values_list("series_id", "timestamp_ms", "value", "trace_id", "span_id", "labels")[:limit]
    )
    out = []
    for series_id, ts, value, trace_id, span_id, others in found:
        labels = {name: text for name, text in others}
        if trace_id is not None:
            labels[TRACE_ID] = bytes(trace_id).hex()
        if span_id is not None:
            labels[SPAN_ID] = bytes(span_id).hex()
        out.append(StoredExemplar(series_id, ts, value, labels))
    return out
