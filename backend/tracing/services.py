"""Writes of the tracing domain that the receivers and the workers call."""

from __future__ import annotations

from collections.abc import Sequence

from backend import outbox
from backend.tracing import storage
from backend.tracing.storage import SpanLike

DAY_NS = 24 * 3600 * 10**9


def spans_write(*, org_id: int, spans: Sequence[SpanLike]) -> int:
    """Durably accept spans: when this returns they are committed, and a drain is queued."""
    from backend.tracing.tasks import drain_org

    batch_id = storage.batch_append(org_id=org_id, spans=spans)
    outbox.drain_requested("traces", org_id, drain_org)
    return batch_id


def org_drain(*, org_id: int, max_rounds: int = 20) -> int:
    """Move the org's outbox into the span table; returns spans newly stored."""
    outbox.drain_started("traces", org_id)
    stored = 0
    for _ in range(max_rounds):
        moved = storage.batches_drain(org_id=org_id)
        if moved is None:
            break
        stored += moved
    return stored


def retention_apply(*, now_ns: int | None = None) -> dict:
    """Drop whole span partitions past the longest traces retention; trim shorter ones."""
    from backend.tenancy.models import Organization, OrgLimits

    now_ns = now_ns or storage.now_ns()
    default_days = OrgLimits._meta.get_field("traces_retention_days").default
    custom = dict(OrgLimits.objects.unscoped().values_list("org_id", "traces_retention_days"))
    longest = max([default_days, *custom.values()])
    dropped = storage.partitions_drop_before(cutoff_ns=now_ns - longest * DAY_NS)
    trimmed = 0
    for org_id in Organization.objects.values_list("id", flat=True):
        days = custom.get(org_id, default_days)
        if days < longest:
            trimmed += storage.org_spans_delete_before(
                org_id=org_id, cutoff_ns=now_ns - days * DAY_NS
            )
    return {"dropped_partitions": dropped, "trimmed_spans": trimmed}
