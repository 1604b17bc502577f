"""Validation of remote-write label sets, and the process-wide caches of validated sets.

A Prometheus server sends the same few thousand series every scrape interval, so a label set is
decoded and validated once and then found again by the exact bytes that encoded it: the labels
part of a 1.0 TimeSeries, or for 2.0 the process-wide ids of the symbols it references. A cached
:class:`LabelSet` does not depend on per-tenant limits; :func:`first_problem` applies those, and
only needs to re-walk the labels for series that exceed a limit or are invalid.

The checks and their order follow Cortex/Mimir's distributor, so that senders see the same
reasons: metric name, label count, then per label: name syntax, name length, value length,
duplicate, order.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import count
from typing import NamedTuple

import numpy as np

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
METRIC_NAME_LABEL = "__name__"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class LabelLimits:
    """Per-tenant limits on a series' labels (lengths in UTF-8 bytes, like Cortex)."""

    max_label_names_per_series: int = 30
    max_label_name_length: int = 1024
    max_label_value_length: int = 2048


_NO_LIMITS = LabelLimits(sys.maxsize, sys.maxsize, sys.maxsize)


class LabelSet(NamedTuple):
    """A decoded label set and what is wrong with it regardless of limits.

    ``labels`` are in wire order with empty-valued labels dropped (Prometheus treats an empty
    value as an absent label); for a valid set that is sorted by name. ``problem`` is the first
    (reason, message) found with no limits, or None.
    """

    labels: Labels
    problem: tuple[str, str] | None
    n_labels: int
    longest_name: int
    longest_value: int
    metric_name: str
    labels_hash: int


def series_text(labels: Iterable[tuple[str, str]], limit: int = 512) -> str:
    """``{__name__="up", job="x"}``, cut at ``limit`` characters, for error messages."""
    text = "{" + ", ".join(f"{name}={_quote(value)}" for name, value in labels) + "}"
    return text if len(text) <= limit else text[: limit - 4] + "...}"


def _quote(value: str, limit: int = 200) -> str:
    if len(value) > limit:
        value = value[:limit] + "..."
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def first_problem(labelset: LabelSet, limits: LabelLimits) -> tuple[str, str] | None:
    """Why this series must be rejected under ``limits`` as (reason, message), or None."""
    if (
        labelset.problem is None
        and labelset.n_labels <= limits.max_label_names_per_series
        and labelset.longest_name <= limits.max_label_name_length
        and labelset.longest_value <= limits.max_label_value_length
    ):
        return None
    if labelset.problem is not None and labelset.problem[0] == "invalid_utf8":
        return labelset.problem
    return _check(labelset.labels, limits)


def _check(labels: Labels, limits: LabelLimits) -> tuple[str, str] | None:
    series = series_text(labels)
    name = next((value for key, value in labels if key == METRIC_NAME_LABEL), None)
    if name is None:
        return "missing_metric_name", f"sample missing metric name, series {series}"
    if not METRIC_NAME_RE.fullmatch(name):
        return "invalid_metric_name", f"sample invalid metric name: {_quote(name)}, series {series}"
    if len(labels) > limits.max_label_names_per_series:
        return (
            "max_label_names_per_series",
            f"series has too many labels (actual: {len(labels)}, "
            f"limit: {limits.max_label_names_per_series}) series: {series}",
        )
    last = ""
    for key, value in labels:
        if key == "":
            return "empty_label_name", f"sample has an empty label name, series {series}"
        if not LABEL_NAME_RE.fullmatch(key):
            return "invalid_label_name", f"sample invalid label: {_quote(key)} series {series}"
        if _utf8_len(key) > limits.max_label_name_length:
            return (
                "label_name_too_long",
                f"label name too long (actual: {_utf8_len(key)}, limit: "
                f"{limits.max_label_name_length}): {_quote(key)} series {series}",
            )
        if _utf8_len(value) > limits.max_label_value_length:
            return (
                "label_value_too_long",
                f"label value too long (actual: {_utf8_len(value)}, limit: "
                f"{limits.max_label_value_length}) for label {_quote(key)}: {_quote(value)} "
                f"series {series}",
            )
        if key == last:
            return "duplicate_label_names", f"duplicate label name: {_quote(key)} series {series}"
        if key < last:
            return (
                "labels_not_sorted",
                f"labels not sorted: {_quote(key)} comes after {_quote(last)} series {series}",
            )
        last = key
    return None


def labelset_from_pairs(
    pairs: Sequence[tuple[str, str]], *, utf8_problem: str | None = None
) -> LabelSet:
    """Build a :class:`LabelSet` from decoded (name, value) pairs in wire order.

    ``utf8_problem`` describes a name or value that was not valid UTF-8 (decoded with
    replacement characters in ``pairs``); such a set is always rejected.
    """
    intern = sys.intern
    labels = tuple((intern(name), intern(value)) for name, value in pairs if value != "")
    metric_name = next((value for key, value in labels if key == METRIC_NAME_LABEL), "")
    if utf8_problem is not None:
        problem: tuple[str, str] | None = (
            "invalid_utf8",
            f"{utf8_problem}, series {series_text(labels)}",
        )
    else:
        problem = _check(labels, _NO_LIMITS)
    return LabelSet(
        labels=labels,
        problem=problem,
        n_labels=len(labels),
        longest_name=max((_utf8_len(k) for k, _ in labels), default=0),
        longest_value=max((_utf8_len(v) for _, v in labels), default=0),
        metric_name=metric_name,
        labels_hash=hash(labels),
    )


def labelset_from_wire(pairs: Sequence[tuple[bytes, bytes]]) -> LabelSet:
    """A :class:`LabelSet` from raw (name, value) bytes as found on the wire."""
    decoded = []
    utf8_problem = None
    for name, value in pairs:
        try:
            decoded.append((name.decode(), value.decode()))
        except UnicodeDecodeError:
            text = name.decode(errors="replace")
            decoded.append((text, value.decode(errors="replace")))
            if utf8_problem is None:
                what = "value of label" if _is_utf8(name) else "label name"
                utf8_problem = f"{what} {_quote(text)} is not valid UTF-8"
    return labelset_from_pairs(decoded, utf8_problem=utf8_problem)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


class LabelSetCache:
    """A bounded map from the bytes that encode a label set to its :class:`LabelSet`.

    Reads are plain ``dict.get`` calls (atomic under the GIL, and cheap enough to be mapped over
    a whole request in C); inserts take a lock because eviction is a read-modify-write. When full,
    the oldest insertions are evicted first (FIFO: hits do not reorder, which would cost a dict
    operation per series on the hot path).
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: dict[bytes, LabelSet] = {}
        self._lock = threading.Lock()
        self.get = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    def insert(self, key: bytes, labelset: LabelSet) -> LabelSet:
        with self._lock:
            entries = self._entries
            if len(entries) >= self.max_entries:
                # evict a tenth at once so that a full cache does not pay this on every miss
                drop = max(1, self.max_entries // 10)
                for old in list(_take(entries, drop)):
                    del entries[old]
            return entries.setdefault(key, labelset)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _take(entries: dict[bytes, LabelSet], n: int) -> Iterable[bytes]:
    iterator = iter(entries)
    for _ in range(n):
        key = next(iterator, None)
        if key is None:
            return
        yield key


class SymbolIds:
    """Process-wide ids for 2.0 symbols, so that a series can be keyed by small fixed-size ids.

    A 2.0 request numbers its strings its own way, so the cache key of a series is the sequence of
    these process-wide ids. Ids are never reused (a 64-bit counter): when the table is full it is
    emptied and strings get fresh ids, which only turns old cache keys into misses. Id 0 marks a
    symbol that is not valid UTF-8 and is never looked up in the cache.
    """

    INVALID = 0

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._ids: dict[str, int] = {}
        self._next = count(1)
        self._lock = threading.Lock()

    def ids(self, symbols: Sequence[str | None]) -> np.ndarray:
        """uint64 id per symbol (None, for a symbol that is not valid UTF-8, gets INVALID)."""
        found = list(map(self._ids.get, symbols))
        if None in found:
            with self._lock:
                table = self._ids
                if len(table) + len(symbols) > self.max_entries:
                    table.clear()
                for i, symbol in enumerate(symbols):
                    if symbol is None:
                        found[i] = self.INVALID
                    elif found[i] is None:
                        found[i] = table.get(symbol) or table.setdefault(symbol, next(self._next))
        return np.array(found, dtype=np.uint64)

    def clear(self) -> None:
        with self._lock:
            self._ids.clear()
