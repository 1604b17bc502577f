"""What the engine reads through: a querier selects series by matchers over a time range.

The engine knows nothing of storage. ``backend.metrics.storage.reader.PostgresQuerier`` is
the production implementation; ``promql.memory.MemoryQuerier`` serves engine unit tests (and
anything else that evaluates over a handful of series held in memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from backend.metrics.labels import Labels, Matcher


@dataclass(slots=True)
class SeriesSet:
    """Selected series in label order (Prometheus's: it decides, e.g., which of two equal
    values ``topk`` keeps and the order sums add up in), each with at least one sample, and
    their samples flat: row r's are ``timestamps/values[offsets[r]:offsets[r + 1]]``, in
    time order."""

    labels: list[Labels]
    timestamps: np.ndarray  # int64 ms
    values: np.ndarray  # float64
    offsets: np.ndarray  # int64, len(labels) + 1

    @classmethod
    def from_rows(
        cls, labels: list[Labels], timestamps: np.ndarray, values: np.ndarray, offsets
    ) -> SeriesSet:
        """Drop the rows without samples (series that exist but not in the range)."""
        counts = np.diff(offsets)
        keep = np.flatnonzero(counts > 0)
        if len(keep) < len(labels):
            offsets = np.zeros(len(keep) + 1, dtype=np.int64)
            np.cumsum(counts[keep], out=offsets[1:])
            labels = [labels[i] for i in keep]
        return cls(labels, timestamps, values, offsets)


@dataclass(frozen=True, slots=True)
class Windows:
    """A hint to ``select`` (what Prometheus's ``SelectHints`` carry for a range selector): the
    caller only looks at the samples within ``[end - range_ms, end]`` for the ``count`` window
    ends ``first_end + i * step_ms``. A querier may leave out the samples outside every
    window (a ``[1m]`` range at a 5-minute step needs a fifth of them) or ignore the hint."""

    first_end: int
    step_ms: int
    count: int
    range_ms: int

    @classmethod
    def of(cls, ends: np.ndarray, range_ms: int) -> Windows | None:
        """The windows ending at ``ends``, when those are evenly spaced (or all one time)."""
        if len(ends) == 0:
            return None
        first = int(ends[0])
        if len(ends) == 1 or (ends == first).all():
            return cls(first, 1, 1, range_ms)
        step = int(ends[1]) - first
        if step <= 0 or not (np.diff(ends) == step).all():
            return None
        return cls(first, step, len(ends), range_ms)


class SeriesLimitExceeded(Exception):
    """More series match than the query may touch."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class ReadTimeout(Exception):
    """The storage cancelled a read that ran past the query's timeout."""


class Querier(Protocol):
    def reading(self, *, timeout_seconds: float) -> AbstractContextManager:
        """The scope of one query's reads: a consistent, read-only view of the data, whose
        reads end with :class:`ReadTimeout` past ``timeout_seconds``."""
        ...

    def select(
        self,
        matchers: Sequence[Matcher],
        *,
        start_ms: int,
        end_ms: int,
        max_series: int,
        windows: Windows | None = None,
    ) -> SeriesSet:
        """The series matching every matcher, with their samples in ``[start_ms, end_ms]``
        (and, with ``windows``, possibly only those inside a window). Raises
        :class:`SeriesLimitExceeded` when more than ``max_series`` match."""
        ...
