"""Hand-made series for engine and API tests: written straight into the metrics store, or held
by an in-memory querier."""

from __future__ import annotations

import struct

import numpy as np

from backend.metrics.promql.memory import MemoryQuerier
from backend.metrics.storage import outbox
from backend.metrics.storage.catalog import series_resolve

T0 = 1_699_999_980_000  # ms, a multiple of 60 s (subquery steps align to it)
STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


def load(org, data: dict[tuple, list[tuple[int, float]]], *, base_ms: int = T0) -> None:
    """data: label pairs -> [(seconds after ``base_ms``, value)], stored and drained as the
    ingest workers would."""
    label_sets = [tuple(sorted(k)) for k in data]
    ids = series_resolve(
        org_id=org.pk, label_sets=label_sets, max_per_user=10_000, max_per_metric=10_000
    )
    sid, ts, vs = [], [], []
    for series_id, points in zip(ids, data.values(), strict=True):
        for t, v in points:
            sid.append(series_id)
            ts.append(base_ms + int(t * 1000))
            vs.append(v)
    outbox.batch_append(
        org_id=org.pk,
        series_ids=np.array(sid),
        timestamps=np.array(ts),
        values=np.array(vs, dtype=float),
    )
    while outbox.batches_drain(org_id=org.pk):
        pass


def in_memory(data: dict[tuple, list[tuple[int, float]]], *, base_ms: int = T0):
    """The same data as ``load`` takes, held by an in-memory querier (no database)."""
    return MemoryQuerier(
        (dict(key), [(base_ms + int(t * 1000), v) for t, v in points])
        for key, points in data.items()
    )


def counter(name="reqs", **labels):
    return (("__name__", name), *sorted(labels.items()))
