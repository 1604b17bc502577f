"""The querier a group evaluation reads through: the org's stored data plus the samples the
evaluation has produced so far.

Samples written by a rule reach the blocks only when the write pipeline drains (a fraction
of a second later), but Prometheus (and the alert-generator specification) make a rule's
results visible to the next rules of the same group in the same evaluation. The overlay
answers that: what the store has, merged with this evaluation's own samples (which win at
the same timestamp, as a later write wins in the store).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from backend.metrics.labels import METRIC_NAME, Labels, Matcher, labels_key
from backend.metrics.promql import Querier
from backend.metrics.promql.memory import MemoryQuerier
from backend.metrics.promql.querier import SeriesLimitExceeded, SeriesSet, Windows


class OverlayQuerier:
    def __init__(self, base: Querier) -> None:
        self.base = base
        self._written: dict[tuple, tuple[Labels, list[tuple[int, float]]]] = {}
        self._names: set[str] = set()
        self._memory: MemoryQuerier | None = None  # of _written, rebuilt after an add

    def add(self, labels: Labels, timestamp_ms: int, value: float) -> None:
        key = labels_key(labels)
        self._written.setdefault(key, (labels, []))[1].append((timestamp_ms, value))
        self._names.add(labels.get(METRIC_NAME, ""))
        self._memory = None

    def _may_match(self, matchers: Sequence[Matcher]) -> bool:
        """False when a metric-name equality rules out everything written so far (the
        usual case: most selectors read scraped series, not the group's own)."""
        for m in matchers:
            if m.name == METRIC_NAME and m.op == "=":
                return m.value in self._names
        return bool(self._written)

    def reading(self, *, timeout_seconds: float):
        return self.base.reading(timeout_seconds=timeout_seconds)

    def select(
        self,
        matchers: Sequence[Matcher],
        *,
        start_ms: int,
        end_ms: int,
        max_series: int,
        windows: Windows | None = None,
    ) -> SeriesSet:
        stored = self.base.select(
            matchers, start_ms=start_ms, end_ms=end_ms, max_series=max_series, windows=windows
        )
        if not self._may_match(matchers):
            return stored
        if self._memory is None:
            self._memory = MemoryQuerier(self._written.values())
        own = self._memory.select(matchers, start_ms=start_ms, end_ms=end_ms, max_series=max_series)
        if not own.labels:
            return stored
        merged: dict[tuple, tuple[Labels, np.ndarray, np.ndarray]] = {}
        for part in (stored, own):  # own samples last: they win a timestamp
            for r, labels in enumerate(part.labels):
                lo, hi = int(part.offsets[r]), int(part.offsets[r + 1])
                key = labels_key(labels)
                ts, vs = part.timestamps[lo:hi], part.values[lo:hi]
                if key in merged:
                    _, t0, v0 = merged[key]
                    ts, vs = np.concatenate([t0, ts]), np.concatenate([v0, vs])
                    order = np.argsort(ts, kind="stable")
                    ts, vs = ts[order], vs[order]
                    last = np.ones(len(ts), dtype=bool)
                    last[:-1] = ts[1:] != ts[:-1]
                    ts, vs = ts[last], vs[last]
                merged[key] = (labels, ts, vs)
        if len(merged) > max_series:
            raise SeriesLimitExceeded(max_series)
        keys = sorted(merged)
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        np.cumsum([len(merged[k][1]) for k in keys], out=offsets[1:])
        return SeriesSet.from_rows(
            [merged[k][0] for k in keys],
            np.concatenate([merged[k][1] for k in keys]).astype(np.int64),
            np.concatenate([merged[k][2] for k in keys]).astype(np.float64),
            offsets,
        )
