"""Writes of the tracing domain that the receivers and the workers call."""

from __future__ import annotations

from collections.abc import Sequence

from backend.pipeline.outbox import drain_requested
from backend.tracing import storage
from backend.tracing.spans import AttributeEntries, Span

SIGNAL = "traces"  # this domain's name in the write pipeline


def spans_write(
    *, org_id: int, spans: Sequence[Span], attributes: AttributeEntries | None = None
) -> int:
    """Durably accept spans: when this returns they are committed, and a drain is queued.
    ``attributes``: the spans' attributes when not in the spans (see ``TraceBatch``)."""
    batch_id = storage.batch_append(org_id=org_id, spans=spans, attributes=attributes)
    drain_requested(signal=SIGNAL, org_id=org_id)
    return batch_id
