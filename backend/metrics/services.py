"""Writes of the metrics domain that the ingest receivers and the workers call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.utils import timezone

from backend import outbox
from backend.metrics import storage
from backend.metrics.models import MetricMetadata
from backend.tenancy.selectors import retention_days_by_org


def samples_write(
    *, org_id: int, series_ids: np.ndarray, timestamps: np.ndarray, values: np.ndarray
) -> int:
    """Durably accept samples. When this returns the batch is committed to PostgreSQL, and a
    drain task is (or already was) queued for the org."""
    from backend.metrics.tasks import drain_org

    # One INSERT: committed on its own (or with the caller's transaction, if there is one).
    batch_id = storage.batch_append(
        org_id=org_id, series_ids=series_ids, timestamps=timestamps, values=values
    )
    outbox.drain_requested("metrics", org_id, drain_org)
    return batch_id


def org_drain(*, org_id: int, max_rounds: int = 20) -> int:
    """Drain the org's outbox (what the ingest task does); returns samples moved."""
    return outbox.drain(
        "metrics", org_id, lambda: storage.batches_drain(org_id=org_id), max_rounds=max_rounds
    )


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


def retention_apply(*, now_ms: int | None = None) -> dict:
    """Drop whole partitions past the longest retention, then trim orgs with shorter ones."""
    now_ms = now_ms or storage.now_ms()
    day_ms = 24 * 3600 * 1000
    longest, days_by_org = retention_days_by_org(field="retention_days")
    dropped = storage.partitions_drop_before(cutoff_ms=now_ms - longest * day_ms)
    trimmed = sum(
        storage.org_samples_delete_before(org_id=org_id, cutoff_ms=now_ms - days * day_ms)
        for org_id, days in days_by_org.items()
        if days < longest
    )
    return {"dropped_partitions": dropped, "trimmed_blocks": trimmed}
