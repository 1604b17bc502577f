"""Label set → series id, cached in each receiver process in front of the catalog."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from backend.metrics.catalog import series_resolve

MAX_ENTRIES = 1_000_000

_lock = threading.Lock()
_cache: dict[tuple[int, tuple], int] = {}
# The decoder hands out the *same* tuple object for a label set it has seen before, so most
# look-ups can go by object identity (an int hash) instead of hashing 16 label pairs. The
# entry keeps the tuple alive, so its id cannot be reused while cached.
_by_identity: dict[tuple[int, int], tuple[tuple, int]] = {}


def resolve(
    *, org_id: int, label_sets: Sequence[tuple], max_per_user: int, max_per_metric: int
) -> np.ndarray:
    """Series ids (int64) of the label sets; a negative catalog.REFUSED_* code where a series
    limit refused a new series (those are not cached: the next request asks again)."""
    ids: list[int] = [0] * len(label_sets)
    missing: list[int] = []
    by_identity = _by_identity.get
    get = _cache.get
    for i, labels in enumerate(label_sets):
        hit = by_identity((org_id, id(labels)))
        if hit is not None and hit[0] is labels:
            ids[i] = hit[1]
            continue
        sid = get((org_id, labels))
        if sid is None:
            missing.append(i)
        else:
            ids[i] = sid
            _by_identity[(org_id, id(labels))] = (labels, sid)
    if missing:
        found = series_resolve(
            org_id=org_id,
            label_sets=[label_sets[i] for i in missing],
            max_per_user=max_per_user,
            max_per_metric=max_per_metric,
        )
        with _lock:
            if len(_cache) + len(missing) > MAX_ENTRIES:
                _cache.clear()  # crude but bounded; a miss costs one catalog round trip
                _by_identity.clear()
            for i, sid in zip(missing, found, strict=True):
                ids[i] = sid
                if sid > 0:
                    _cache[(org_id, label_sets[i])] = sid
    return np.array(ids, dtype=np.int64)


def clear() -> None:
    with _lock:
        _cache.clear()
        _by_identity.clear()
