"""Reads of the metrics store for the Prometheus API and the dashboard (the PromQL engine
reads through ``storage.reader.PostgresQuerier``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.db import connection

from backend.metrics.labels import METRIC_NAME, Labels
from backend.metrics.models import MetricMetadata
from backend.metrics.storage import blocks
from backend.metrics.storage.catalog import label_pairs_named
from backend.metrics.storage.reader import samples_fetch


def samples_for_series(
    *, org_id: int, series: dict[int, Labels], start_ms: int, end_ms: int
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """(timestamps ms int64, values float64) per series within [start, end]."""
    names = {sid: labels.get(METRIC_NAME, "") for sid, labels in series.items()}
    return samples_fetch(org_id=org_id, series=names, start_ms=start_ms, end_ms=end_ms)


def label_names(*, org_id: int, metrics: set[str] | None = None) -> list[str]:
    """Every label name the org's series use, sorted; with ``metrics``, only the names the
    series of those metrics use (what ``start``/``end`` narrow to: metrics with samples)."""
    with connection.cursor() as cur:
        if metrics is None:
            cur.execute(
                "SELECT DISTINCT name FROM metric_label_pairs WHERE org_id = %s ORDER BY name",
                [org_id],
            )
        else:
            cur.execute(
                "SELECT DISTINCT p.name FROM metric_series s"
                " CROSS JOIN LATERAL unnest(s.label_ids) AS l(pair_id)"
                " JOIN metric_label_pairs p ON p.id = l.pair_id AND p.org_id = s.org_id"
                " WHERE s.org_id = %s AND s.metric_name = ANY(%s) ORDER BY 1",
                [org_id, sorted(metrics)],
            )
        return [name for (name,) in cur.fetchall()]


def label_values(*, org_id: int, name: str, metrics: set[str] | None = None) -> list[str]:
    """Every (non-empty) value of one label name across the org's series, sorted; with
    ``metrics``, across the series of those metrics only."""
    with connection.cursor() as cur:
        if metrics is None:
            return sorted(value for _, value in label_pairs_named(cur, org_id, name) if value)
        if name == METRIC_NAME:
            return sorted(metrics)
        cur.execute(
            "SELECT DISTINCT p.value FROM metric_series s"
            " CROSS JOIN LATERAL unnest(s.label_ids) AS l(pair_id)"
            " JOIN metric_label_pairs p ON p.id = l.pair_id AND p.org_id = s.org_id"
            " WHERE s.org_id = %s AND s.metric_name = ANY(%s) AND p.name = %s",
            [org_id, sorted(metrics), name],
        )
        return sorted(value for (value,) in cur.fetchall() if value)


def metadata_list(*, org_id: int, metric: str | None = None) -> list[tuple[str, str, str, str]]:
    qs = MetricMetadata.objects.for_org(org_id)
    if metric:
        qs = qs.filter(metric_family_name=metric)
    return list(qs.values_list("metric_family_name", "type", "help", "unit"))


@dataclass(frozen=True, slots=True)
class IngestOverview:
    series: int
    metrics: int
    samples_last_hour: int
    last_sample_ms: int | None
    pending_batches: int


def ingest_overview(*, org_id: int, now_ms: int | None = None) -> IngestOverview:
    """What the dashboard shows about an org's metrics ingest (cheap: catalog and block
    headers only, no sample is decoded)."""
    now_ms = now_ms or blocks.now_ms()
    hour_ago = now_ms - 3600 * 1000
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(DISTINCT metric_name) FROM metric_series WHERE org_id = %s",
            [org_id],
        )
        series, metrics = cur.fetchone()
        cur.execute(
            """
            SELECT coalesce(sum(n_samples) FILTER (WHERE window_start >= %s), 0), max(max_ts)
            FROM metric_blocks WHERE org_id = %s AND window_start >= %s
            """,
            [hour_ago - hour_ago % blocks.WINDOW_MS, org_id, now_ms - 24 * 3600 * 1000],
        )
        samples, last = cur.fetchone()
        cur.execute("SELECT count(*) FROM metric_batches WHERE org_id = %s", [org_id])
        (pending,) = cur.fetchone()
    return IngestOverview(series, metrics, int(samples), last, pending)
