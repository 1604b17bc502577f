"""Label set → series id, cached in each receiver process in front of the catalog."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from backend.metrics.storage.catalog import series_resolve

MAX_ENTRIES = 1_000_000

_lock = threading.Lock()
_cache: dict[tuple[int, tuple], int] = {}
# The decoder hands out the *same* tuple object for a label set it has seen before, so most
# look-ups go by object identity, per org: id(labels) -> series id, mapped over a whole request
# at C speed. _alive holds the tuples, so no other object can take an id while it is cached.
_by_identity: dict[int, dict[int, int]] = {}
_alive: dict[int, dict[int, tuple]] = {}


def resolve(
    *, org_id: int, label_sets: Sequence[tuple], max_per_user: int, max_per_metric: int
) -> np.ndarray:
    """Series ids (int64) of the label sets; a negative catalog.REFUSED_* code where a series
    limit refused a new series (those are not cached: the next request asks again)."""
    by_identity = _by_identity.get(org_id) or {}
    ids = list(map(by_identity.get, map(id, label_sets)))
    if None not in ids:
        return np.array(ids, dtype=np.int64)
    missing: list[int] = []
    with _lock:
        if len(by_identity) > MAX_ENTRIES:  # (label set tuples the decoder no longer hands out)
            _by_identity.pop(org_id, None)
            _alive.pop(org_id, None)
        by_identity = _by_identity.setdefault(org_id, {})
        alive = _alive.setdefault(org_id, {})
        for i in [i for i, sid in enumerate(ids) if sid is None]:
            labels = label_sets[i]
            sid = _cache.get((org_id, labels))
            if sid is None:
                missing.append(i)
            else:
                ids[i] = by_identity[id(labels)] = sid
                alive[id(labels)] = labels
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
                _alive.clear()
            for i, sid in zip(missing, found, strict=True):
                ids[i] = sid
                if sid > 0:
                    _cache[(org_id, label_sets[i])] = sid
    return np.array(ids, dtype=np.int64)


def clear() -> None:
    with _lock:
        _cache.clear()
        _by_identity.clear()
        _alive.clear()
