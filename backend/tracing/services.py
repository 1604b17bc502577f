"""Writes of the tracing domain that the receivers and the workers call."""

from __future__ import annotations

from collections.abc import Sequence

from backend import outbox
from backend.tenancy.selectors import retention_days_by_org
from backend.tracing import storage
from backend.tracing.spans import Span

DAY_NS = 24 * 3600 * 10**9


def spans_write(*, org_id: int, spans: Sequence[Span]) -> int:
    """Durably accept spans: when this returns they are committed, and a drain is queued."""
    from backend.tracing.tasks import drain_org

    batch_id = storage.batch_append(org_id=org_id, spans=spans)
    outbox.drain_requested("traces", org_id, drain_org)
    return batch_id


def org_drain(*, org_id: int, max_rounds: int = 20) -> int:
    """Move the org's outbox into the span table; returns spans newly stored."""
    return outbox.drain(
        "traces", org_id, lambda: storage.batches_drain(org_id=org_id), max_rounds=max_rounds
    )


def retention_apply(*, now_ns: int | None = None) -> dict:
    """Drop whole span partitions past the longest traces retention; trim shorter ones."""
    now_ns = now_ns or storage.now_ns()
    longest, days_by_org = retention_days_by_org(field="traces_retention_days")
    dropped = storage.partitions_drop_before(cutoff_ns=now_ns - longest * DAY_NS)
    trimmed = sum(
        storage.org_spans_delete_before(org_id=org_id, cutoff_ns=now_ns - days * DAY_NS)
        for org_id, days in days_by_org.items()
        if days < longest
    )
    return {"dropped_partitions": dropped, "trimmed_spans": trimmed}
