"""The values a PromQL expression evaluates to, over all the steps of a query at once.

An instant vector is a 2-D array (series by steps) of values with a presence mask beside it,
because NaN is a legitimate sample value and cannot mark "no sample". A range vector keeps
each series' raw samples plus the window every step looks at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.metrics.labels import METRIC_NAME, Labels, labels_key
from backend.metrics.promql.errors import ExecutionError

STALE_NAN_BITS = np.uint64(0x7FF0000000000002)


_LABEL_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def valid_label_name(name: str) -> bool:
    return bool(name) and not name[0].isdigit() and set(name) <= _LABEL_NAME_CHARS


def without_name(labels: Labels) -> Labels:
    if METRIC_NAME not in labels:
        return labels
    return {k: v for k, v in labels.items() if k != METRIC_NAME}


def is_stale(values: np.ndarray) -> np.ndarray:
    return values.view(np.uint64) == STALE_NAN_BITS


def labels_text(labels: Labels) -> str:
    """Go's labels.String(): ``{a="1", b="2"}``."""
    inner = ", ".join(f"{k}={_go_quote(v)}" for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _go_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@dataclass(slots=True)
class Scalar:
    values: np.ndarray  # (steps,)


@dataclass(slots=True)
class String:
    value: str


@dataclass(slots=True)
class Vector:
    labels: list[Labels]
    values: np.ndarray  # (series, steps) float64
    present: np.ndarray  # (series, steps) bool

    @classmethod
    def empty(cls, steps: int) -> Vector:
        return cls([], np.empty((0, steps)), np.zeros((0, steps), dtype=bool))

    @property
    def steps(self) -> int:
        return self.values.shape[1]

    def take(self, rows: Sequence[int] | np.ndarray) -> Vector:
        rows = np.asarray(rows, dtype=np.int64)
        return Vector([self.labels[i] for i in rows], self.values[rows], self.present[rows])

    def nonempty(self) -> Vector:
        keep = np.flatnonzero(self.present.any(axis=1))
        return self if len(keep) == len(self.labels) else self.take(keep)


@dataclass(slots=True)
class Matrix:
    """A range vector: for each series its samples (flat arrays, sorted by series then time,
    ``offsets`` delimiting the series), and for each step the window [end - range, end]
    (closed at both ends, as in Prometheus 2.x)."""

    labels: list[Labels]
    timestamps: np.ndarray  # int64 ms, all series back to back
    values: np.ndarray
    offsets: np.ndarray  # (series + 1,)
    ends: np.ndarray  # (steps,) int64 ms
    range_ms: int

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) sample indexes, each (series, steps): the window of series s at step i is
        ``values[lo[s, i]:hi[s, i]]``."""
        lo = search_series(self.timestamps, self.offsets, self.ends - self.range_ms, "left")
        hi = search_series(self.timestamps, self.offsets, self.ends, "right")
        return lo, hi


def search_series(
    timestamps: np.ndarray, offsets: np.ndarray, times: np.ndarray, side: str
) -> np.ndarray:
    """``np.searchsorted`` of ``times`` in every series of flat, per-series sorted timestamps
    (series s at ``timestamps[offsets[s]:offsets[s + 1]]``), all series in one call: each
    sample is keyed by (series, time) packed into one int64. Returns absolute indexes,
    shape (series, len(times))."""
    n = len(offsets) - 1
    if n == 0:
        return np.zeros((0, len(times)), dtype=np.int64)
    if len(timestamps) == 0:
        return np.broadcast_to(offsets[:-1, None], (n, len(times))).copy()
    base = min(int(timestamps.min()), int(times.min())) - 1
    stride = max(int(timestamps.max()), int(times.max())) - base + 2
    if n * stride >= 2**62:  # cannot pack: fall back to one search per series
        out = np.empty((n, len(times)), dtype=np.int64)
        for s in range(n):
            a, b = offsets[s], offsets[s + 1]
            out[s] = a + np.searchsorted(timestamps[a:b], times, side=side)
        return out
    series_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
    keys = series_of * stride + (timestamps - base)
    wanted = np.arange(n, dtype=np.int64)[:, None] * stride + (times - base)[None, :]
    return np.searchsorted(keys, wanted, side=side)


def merge_rows(
    labels: list[Labels], values: np.ndarray, present: np.ndarray, *, per_step: bool = True
) -> Vector:
    """Join rows that carry the same label set (e.g. after a function dropped the metric
    name). Two of them holding a sample at the same step is Prometheus's
    "vector cannot contain metrics with the same labelset"; where Prometheus checks the
    whole result rather than each step (range functions, unary minus), ``per_step=False``
    refuses any two rows with the same labels."""
    index: dict[tuple, int] = {}
    groups: list[list[int]] = []
    for i, lab in enumerate(labels):
        k = labels_key(lab)
        at = index.get(k)
        if at is None:
            index[k] = len(groups)
            groups.append([i])
        else:
            groups[at].append(i)
    if len(groups) == len(labels):
        return Vector(labels, values, present)
    out_labels, out_values, out_present = [], [], []
    for rows in groups:
        out_labels.append(labels[rows[0]])
        if len(rows) == 1:
            out_values.append(values[rows[0]])
            out_present.append(present[rows[0]])
            continue
        if not per_step or (present[rows].sum(axis=0) > 1).any():
            raise ExecutionError("vector cannot contain metrics with the same labelset")
        pick = np.where(present[rows], np.arange(len(rows))[:, None], 0).max(axis=0)
        out_values.append(values[rows][pick, np.arange(values.shape[1])])
        out_present.append(present[rows].any(axis=0))
    steps = values.shape[1]
    if not out_labels:
        return Vector.empty(steps)
    return Vector(out_labels, np.vstack(out_values), np.vstack(out_present))


def format_value(value: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64), as Prometheus writes sample values."""
    return format_values(np.array([value], dtype=np.float64))[0]


_SPECIAL = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}


def format_values(values: np.ndarray) -> list[str]:
    """``format_value`` for a whole array (the hot loop of a range query's answer):
    integral values go through ``int``'s ``str``, the rest through ``repr``."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        integral = (np.abs(values) < 1e15) & (values == np.trunc(values))
    integral &= ~((values == 0) & np.signbit(values))  # -0 prints as "-0"
    if integral.all():
        return list(map(str, values.astype(np.int64).tolist()))
    out = list(map(repr, values.tolist()))
    for i in np.flatnonzero(integral).tolist():
        out[i] = str(int(values[i]))
    for i in np.flatnonzero(~integral).tolist():
        text = out[i]
        if text in _SPECIAL:
            out[i] = _SPECIAL[text]
        elif text.endswith(".0"):
            out[i] = text[:-2]
        elif "e" in text:
            out[i] = np.format_float_positional(values[i], trim="-")
    return out


def format_time(ms: int) -> float | int:
    return ms // 1000 if ms % 1000 == 0 else ms / 1000
