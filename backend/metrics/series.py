"""Series ids for label sets: the one way into the series catalog for whatever writes samples
(remote write, the span-metrics writer), with refusals typed by the limit that refused them.

Receivers put a cache in each process in front of the catalog (``cache=True``): label set →
series id never changes once a series exists. Writers that resolve inside a transaction which
may still roll back must not cache (``cache=False``): the ids of series created in it would
outlive the rows.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from backend.metrics.labels import LabelPairs
from backend.metrics.storage.catalog import REFUSED_PER_METRIC, REFUSED_PER_USER, series_resolve

MAX_ENTRIES = 1_000_000


class SeriesRefusal(enum.Enum):
    """Why a new series was refused; the value is the reason senders and counters see."""

    PER_USER = "per_user_series_limit"
    PER_METRIC = "per_metric_series_limit"


# (catalog codes, in the order refusals are reported)
_CATALOG_CODES = {
    REFUSED_PER_USER: SeriesRefusal.PER_USER,
    REFUSED_PER_METRIC: SeriesRefusal.PER_METRIC,
}


@dataclass(frozen=True, slots=True)
class SeriesIds:
    """``ids[i]`` is the series id of label set ``i`` where ``admitted[i]``, else 0;
    ``refused`` holds the positions of the refused label sets by limit (only limits that
    refused any)."""

    ids: np.ndarray  # int64
    admitted: np.ndarray  # bool
    refused: dict[SeriesRefusal, np.ndarray] = field(default_factory=dict)


_lock = threading.Lock()
_cache: dict[tuple[int, tuple], int] = {}
# The decoder hands out the *same* tuple object for a label set it has seen before, so most
# look-ups go by object identity, per org: id(labels) -> series id, mapped over a whole request
# at C speed. _alive holds the tuples, so no other object can take an id while it is cached.
_by_identity: dict[int, dict[int, int]] = {}
_alive: dict[int, dict[int, tuple]] = {}


def series_ids_resolve(
    *,
    org_id: int,
    label_sets: Sequence[LabelPairs],
    max_per_user: int,
    max_per_metric: int,
    cache: bool,
) -> SeriesIds:
    """The series ids of the label sets (label names sorted, ``__name__`` among them); new
    series over the org's or the metric's limit are refused, not created."""
    if cache:
        ids = _cached_resolve(
            org_id=org_id,
            label_sets=label_sets,
            max_per_user=max_per_user,
            max_per_metric=max_per_metric,
        )
    else:
        ids = np.array(
            series_resolve(
                org_id=org_id,
                label_sets=label_sets,
                max_per_user=max_per_user,
                max_per_metric=max_per_metric,
            ),
            dtype=np.int64,
        )
    admitted = ids > 0
    if admitted.all():
        return SeriesIds(ids, admitted)
    refused = {}
    for code, refusal in _CATALOG_CODES.items():
        positions = np.flatnonzero(ids == code)
        if len(positions):
            refused[refusal] = positions
    ids[~admitted] = 0
    return SeriesIds(ids, admitted, refused)


def _cached_resolve(
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


def series_ids_cache_clear() -> None:
    with _lock:
        _cache.clear()
        _by_identity.clear()
        _alive.clear()
