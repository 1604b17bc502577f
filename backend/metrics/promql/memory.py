"""A querier over series held in memory: the engine without a database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import numpy as np

from backend.metrics.labels import Labels, Matcher, labels_key
from backend.metrics.promql.querier import SeriesLimitExceeded, SeriesSet, Windows


class MemoryQuerier:
    def __init__(self, series: Iterable[tuple[Labels, Sequence[tuple[int, float]]]]) -> None:
        """``series``: (labels, [(timestamp ms, value), ...]) pairs. Samples are sorted and,
        like the store's, a later sample of the same timestamp wins."""
        self._series: list[tuple[Labels, np.ndarray, np.ndarray]] = []
        for labels, points in series:
            ts = np.array([int(t) for t, _ in points], dtype=np.int64)
            vs = np.array([float(v) for _, v in points], dtype=np.float64)
            order = np.argsort(ts, kind="stable")
            ts, vs = ts[order], vs[order]
            last = np.ones(len(ts), dtype=bool)
            last[:-1] = ts[1:] != ts[:-1]
            self._series.append((dict(labels), ts[last], vs[last]))

    def reading(self, *, timeout_seconds: float):
        return contextlib.nullcontext()

    def select(
        self,
        matchers: Sequence[Matcher],
        *,
        start_ms: int,
        end_ms: int,
        max_series: int,
        windows: Windows | None = None,  # a hint this querier does not need
    ) -> SeriesSet:
        patterns = [m.compile() for m in matchers]
        found = [
            s
            for s in self._series
            if all(m.matches(s[0], p) for m, p in zip(matchers, patterns, strict=True))
        ]
        if len(found) > max_series:
            raise SeriesLimitExceeded(max_series)
        found.sort(key=lambda s: labels_key(s[0]))
        parts_t, parts_v, counts = [], [], []
        for _, ts, vs in found:
            lo = int(np.searchsorted(ts, start_ms, side="left"))
            hi = int(np.searchsorted(ts, end_ms, side="right"))
            parts_t.append(ts[lo:hi])
            parts_v.append(vs[lo:hi])
            counts.append(hi - lo)
        offsets = np.zeros(len(found) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return SeriesSet.from_rows(
            [s[0] for s in found],
            np.concatenate(parts_t) if parts_t else np.empty(0, np.int64),
            np.concatenate(parts_v) if parts_v else np.empty(0),
            offsets,
        )
