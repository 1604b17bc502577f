"""Writes of the metrics domain that the ingest receivers and the workers call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.utils import timezone

from backend.metrics.models import MetricMetadata
from backend.metrics.storage.exemplars import exemplars_insert
from backend.metrics.storage.outbox import batch_append
from backend.pipeline.outbox import drain_requested

SIGNAL = "metrics"  # this domain's name in the write pipeline


def samples_write(
    *, org_id: int, series_ids: np.ndarray, timestamps: np.ndarray, values: np.ndarray
) -> int:
    """Durably accept samples. When this returns the batch is committed to PostgreSQL, and a
    drain task is (or already was) queued for the org."""
    # One INSERT: committed on its own (or with the caller's transaction, if there is one).
    batch_id = batch_append(
        org_id=org_id, series_ids=series_ids, timestamps=timestamps, values=values
    )
    drain_requested(signal=SIGNAL, org_id=org_id)
    return batch_id


def metadata_upsert(*, org_id: int, entries: Sequence[tuple[str, str, str, str]]) -> None:
    """Store (metric family, type, help, unit); the latest report wins."""
    # (PostgreSQL text cannot hold NUL characters, which a sender may put in a HELP text)
    latest = {e[0]: tuple(t.replace("\x00", "\ufffd") for t in e) for e in entries if e[0]}
    if not latest:
        return
    now = timezone.now()
    MetricMetadata.objects.for_org(org_id).bulk_create(
        [
            MetricMetadata(
                org_id=org_id, metric_family_name=n, type=t, help=h, unit=u, updated_at=now
            )
            for n, t, h, u in latest.values()
        ],
        update_conflicts=True,
        unique_fields=["org", "metric_family_name"],
        update_fields=["type", "help", "unit", "updated_at"],
    )


def exemplars_write(
    *,
    org_id: int,
    series_ids: Sequence[int],
    timestamps: Sequence[int],
    values: Sequence[float],
    labels: Sequence[Sequence[tuple[str, str]]],
    max_per_org: int,
    retention_days: int | None = None,
) -> int:
    """Durably store exemplars of known series (idempotent: one per series and timestamp);
    the org keeps its newest ``max_per_org``, none older than ``retention_days``. Returns the
    number accepted."""
    if max_per_org <= 0:
        return 0
    return exemplars_insert(
        org_id=org_id,
        series_ids=series_ids,
        timestamps=timestamps,
        values=values,
        labels=labels,
        keep=max_per_org,
        oldest_ms=None
        if retention_days is None
        else int(timezone.now().timestamp() * 1000) - retention_days * 86_400_000,
    )
