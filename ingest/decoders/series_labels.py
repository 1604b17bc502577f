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

import operator
import random
import re
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import count
from typing import NamedTuple

import numpy as np

from backend.metrics.labels import METRIC_NAME, LabelPairs

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True, slots=True)
class LabelLimits:
    """Per-tenant limits on a series' labels (lengths in UTF-8 bytes, like Cortex)."""

    max_label_names_per_series: int = 30
    max_label_name_length: int = 1024
    max_label_value_length: int = 2048


_NO_LIMITS = LabelLimits(sys.maxsize, sys.maxsize, sys.maxsize)
DEFAULT_LIMITS = LabelLimits()

# LabelSet.flags: anything set sends the request through the slower, per-series checks.
HAS_PROBLEM = 1  # invalid whatever the limits
EXCEEDS_DEFAULT_LIMITS = 2  # may be invalid under DEFAULT_LIMITS or lower ones
NON_CANONICAL = 4  # other bytes may encode the same labels (e.g. an empty-valued label was sent)


class LabelSet(NamedTuple):
    """A decoded label set and what is wrong with it regardless of limits.

    ``labels`` are in wire order with empty-valued labels dropped (Prometheus treats an empty
    value as an absent label); for a valid set that is sorted by name. ``problem`` is the first
    (reason, message) found with no limits, or None. ``flags`` summarises the above so that a
    whole request of unremarkable series is checked in one C-level pass.
    """

    labels: LabelPairs
    problem: tuple[str, str] | None
    n_labels: int
    longest_name: int
    longest_value: int
    metric_name: str
    flags: int


def series_text(labels: Iterable[tuple[str, str]], limit: int = 512) -> str:
    """``{__name__="up", job="x"}``, cut at ``limit`` characters, for error messages."""
    text = "{" + ", ".join(f"{name}={_quote(value)}" for name, value in labels) + "}"
    return text if len(text) <= limit else text[: limit - 4] + "...}"


def _quote(value: str, limit: int = 200) -> str:
    if len(value) > limit:
        value = value[:limit] + "..."
    value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + value.replace("\x00", "\\x00") + '"'


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def first_problem(labelset: LabelSet, limits: LabelLimits) -> tuple[str, str] | None:
    """Why this series must be rejected under ``limits`` as (reason, message), or None."""
    if labelset.problem is None and not exceeds_limits(
        labelset.n_labels, labelset.longest_name, labelset.longest_value, limits
    ):
        return None
    if labelset.problem is not None and labelset.problem[0] == "invalid_utf8":
        return labelset.problem
    return _check(labelset.labels, limits)


class _Syntax:
    """Memo of names known to match a pattern: a few hundred distinct names cover most traffic.

    ``valid.get`` can be mapped over a list of names at C speed (None for a name not seen yet).
    """

    def __init__(self, pattern: re.Pattern[str], max_entries: int = 10_000) -> None:
        self._match = pattern.fullmatch
        self.valid: dict[str, bool] = {}
        self._max_entries = max_entries

    def ok(self, name: str) -> bool:
        if name in self.valid:
            return True
        if self._match(name) is None:
            return False
        if len(self.valid) >= self._max_entries:
            self.valid.clear()
        self.valid[name] = True
        return True


_METRIC_NAME_SYNTAX = _Syntax(METRIC_NAME_RE)
_LABEL_NAME_SYNTAX = _Syntax(LABEL_NAME_RE)

# (name, value) pairs shared by the cached label sets (see shared_pair)
_PAIRS: dict[tuple[str, str], tuple[str, str]] = {}
_MAX_PAIRS = 200_000


def _check(labels: LabelPairs, limits: LabelLimits) -> tuple[str, str] | None:
    name = next((value for key, value in labels if key == METRIC_NAME), None)
    if name is None:
        return "missing_metric_name", f"sample missing metric name, series {series_text(labels)}"
    if not _METRIC_NAME_SYNTAX.ok(name):
        return (
            "invalid_metric_name",
            f"sample invalid metric name: {_quote(name)}, series {series_text(labels)}",
        )
    if len(labels) > limits.max_label_names_per_series:
        return (
            "max_label_names_per_series",
            f"series has too many labels (actual: {len(labels)}, "
            f"limit: {limits.max_label_names_per_series}) series: {series_text(labels)}",
        )
    check_lengths = limits is not _NO_LIMITS
    last = ""
    for key, value in labels:
        if key == "":
            return (
                "empty_label_name",
                f"sample has an empty label name, series {series_text(labels)}",
            )
        if not _LABEL_NAME_SYNTAX.ok(key):
            return (
                "invalid_label_name",
                f"sample invalid label: {_quote(key)} series {series_text(labels)}",
            )
        if check_lengths and _utf8_len(key) > limits.max_label_name_length:
            return (
                "label_name_too_long",
                f"label name too long (actual: {_utf8_len(key)}, limit: "
                f"{limits.max_label_name_length}): {_quote(key)} series {series_text(labels)}",
            )
        if check_lengths and _utf8_len(value) > limits.max_label_value_length:
            return (
                "label_value_too_long",
                f"label value too long (actual: {_utf8_len(value)}, limit: "
                f"{limits.max_label_value_length}) for label {_quote(key)}: {_quote(value)} "
                f"series {series_text(labels)}",
            )
        if "\x00" in value:
            return (
                "invalid_label_value",
                f"label value contains a NUL character, which Canopy cannot store, for label "
                f"{_quote(key)}: {_quote(value)} series {series_text(labels)}",
            )
        if key <= last:
            if key == last:
                return (
                    "duplicate_label_names",
                    f"duplicate label name: {_quote(key)} series {series_text(labels)}",
                )
            return (
                "labels_not_sorted",
                f"labels not sorted: {_quote(key)} comes after {_quote(last)} "
                f"series {series_text(labels)}",
            )
        last = key
    return None


def _longest_utf8(texts: Sequence[str]) -> int:
    if not texts:
        return 0
    if all(map(str.isascii, texts)):
        return max(map(len, texts))
    return max(map(_utf8_len, texts))


def labelset_from_columns(
    names: list[str],
    values: list[str],
    *,
    utf8_problem: str | None = None,
    canonical: bool = True,
) -> LabelSet:
    """Build a :class:`LabelSet` from decoded label names and values, in wire order.

    ``utf8_problem`` describes a name or value that was not valid UTF-8 (decoded with
    replacement characters); such a set is always rejected. ``canonical`` is False when the
    cache key of this set is not the only encoding of these labels. (Mostly C-level passes over
    the labels: this runs for every series a process has not seen yet.)
    """
    dropped = "" in values
    if dropped:
        kept = [i for i, value in enumerate(values) if value]
        names = [names[i] for i in kept]
        values = [values[i] for i in kept]
    # interned: label sets share their strings and (name, value) pairs, which halves the memory
    # of a cache of similar series; equal metric names are then also the same object
    labels = tuple(map(shared_pair, names, values))
    metric_name = next((value for name, value in labels if name == METRIC_NAME), "")
    problem: tuple[str, str] | None = None
    if utf8_problem is not None:
        problem = ("invalid_utf8", f"{utf8_problem}, series {series_text(labels)}")
    elif not (
        metric_name in _METRIC_NAME_SYNTAX.valid
        and all(map(_LABEL_NAME_SYNTAX.valid.get, names))
        and all(map(operator.lt, names, names[1:]))  # sorted and unique
        and "\x00" not in "".join(values)
    ):
        problem = _check(labels, _NO_LIMITS)
    longest_name = _longest_utf8(names)
    longest_value = _longest_utf8(values)
    flags = 0
    if problem is not None:
        flags |= HAS_PROBLEM
    if exceeds_limits(len(labels), longest_name, longest_value, DEFAULT_LIMITS):
        flags |= EXCEEDS_DEFAULT_LIMITS
    if dropped or not canonical:
        flags |= NON_CANONICAL
    return LabelSet(
        labels=labels,
        problem=problem,
        n_labels=len(labels),
        longest_name=longest_name,
        longest_value=longest_value,
        metric_name=metric_name,
        flags=flags,
    )


def shared_pair(name: str, value: str) -> tuple[str, str]:
    """The (name, value) tuple that cached label sets share for these strings (interned)."""
    pair = (sys.intern(name), sys.intern(value))
    if len(_PAIRS) > _MAX_PAIRS:
        _PAIRS.clear()
    return _PAIRS.setdefault(pair, pair)


_PAIR_NAME = operator.itemgetter(0)
_PAIR_VALUE = operator.itemgetter(1)


def labelsets_from_pairs(pairs: list[tuple[str, str]], counts: np.ndarray) -> list[LabelSet | None]:
    """Label sets of many series at once: series ``i`` is the next ``counts[i]`` of ``pairs``
    (from :func:`shared_pair`, in wire order).

    The checks of :func:`labelset_from_columns` run over all series together (numpy and
    C-level maps instead of Python code per label); this is the path of a request full of
    series the process has not seen yet. A series that is not plainly valid (no or an invalid
    metric name, invalid, unsorted or duplicate label names, an empty value) gets None: the
    caller builds it with :func:`labelset_from_columns`, which says what is wrong.
    """
    n = len(counts)
    total = len(pairs)
    ends = np.cumsum(counts)
    starts = ends - counts
    names = list(map(_PAIR_NAME, pairs))
    values = list(map(_PAIR_VALUE, pairs))
    series_of = np.repeat(np.arange(n), counts)
    bad = counts == 0
    # label names: syntax, and sorted and unique within each series (by rank among the names
    # of the request: strictly increasing)
    distinct = sorted(set(names))
    rank_of = {name: rank for rank, name in enumerate(distinct)}
    rank = np.fromiter(map(rank_of.__getitem__, names), np.int64, total)
    invalid = [rank_of[name] for name in distinct if not _LABEL_NAME_SYNTAX.ok(name)]
    if invalid:
        bad[series_of[np.isin(rank, invalid)]] = True
    if total > 1:
        steps_down = np.flatnonzero(np.diff(rank) <= 0) + 1  # label j is not above label j - 1
        bad[series_of[steps_down[series_of[steps_down] == series_of[steps_down - 1]]]] = True
    # lengths are UTF-8 bytes, like Cortex's limits
    value_len = np.fromiter(
        map(len if all(map(str.isascii, values)) else _utf8_len, values), np.int64, total
    )
    name_len_of = np.array([_utf8_len(name) for name in distinct], np.int64)
    name_len = name_len_of[rank]
    bad[series_of[value_len == 0]] = True
    if "\x00" in "".join(values):
        bad[series_of[np.fromiter(("\x00" in v for v in values), bool, total)]] = True
    # exactly one __name__ per series (duplicates were caught above), with a valid value
    metric_rank = rank_of.get(METRIC_NAME, -1)
    at_name = np.flatnonzero(rank == metric_rank)
    has_name = np.zeros(n, bool)
    has_name[series_of[at_name]] = True
    bad |= ~has_name
    metric_names = [""] * n
    for i, at in zip(series_of[at_name].tolist(), at_name.tolist(), strict=True):
        metric_names[i] = values[at]
    for name in set(metric_names):
        if name and not _METRIC_NAME_SYNTAX.ok(name):
            bad |= np.array([m == name for m in metric_names], bool)
    nonempty = np.flatnonzero(counts > 0)
    longest_name = np.zeros(n, np.int64)
    longest_value = np.zeros(n, np.int64)
    if len(nonempty):
        longest_name[nonempty] = np.maximum.reduceat(name_len, starts[nonempty])
        longest_value[nonempty] = np.maximum.reduceat(value_len, starts[nonempty])
    flags = np.where(
        (counts > DEFAULT_LIMITS.max_label_names_per_series)
        | (longest_name > DEFAULT_LIMITS.max_label_name_length)
        | (longest_value > DEFAULT_LIMITS.max_label_value_length),
        EXCEEDS_DEFAULT_LIMITS,
        0,
    )
    labels = map(tuple, map(pairs.__getitem__, map(slice, starts.tolist(), ends.tolist())))
    return [
        None if is_bad else LabelSet(labels_, None, count_, name_, value_, metric_, flag_)
        for is_bad, labels_, count_, name_, value_, metric_, flag_ in zip(
            bad.tolist(),
            labels,
            counts.tolist(),
            longest_name.tolist(),
            longest_value.tolist(),
            metric_names,
            flags.tolist(),
            strict=True,
        )
    ]


def exceeds_limits(
    n_labels: int, longest_name: int, longest_value: int, limits: LabelLimits
) -> bool:
    """Whether a set of this shape exceeds one of ``limits``."""
    return (
        n_labels > limits.max_label_names_per_series
        or longest_name > limits.max_label_name_length
        or longest_value > limits.max_label_value_length
    )


def labelset_from_wire(names: list[bytes], values: list[bytes], *, canonical: bool) -> LabelSet:
    """A :class:`LabelSet` from raw label names and values as found on the wire."""
    try:
        return labelset_from_columns(
            list(map(bytes.decode, names)), list(map(bytes.decode, values)), canonical=canonical
        )
    except UnicodeDecodeError:
        pass
    utf8_problem = None
    for name, value in zip(names, values, strict=True):
        if not (_is_utf8(name) and _is_utf8(value)):
            text = _quote(name.decode(errors="replace"))
            utf8_problem = f"{'value of label' if _is_utf8(name) else 'label name'} {text}"
            utf8_problem += " is not valid UTF-8"
            break
    return labelset_from_columns(
        [name.decode(errors="replace") for name in names],
        [value.decode(errors="replace") for value in values],
        utf8_problem=utf8_problem,
        canonical=canonical,
    )


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
    a random tenth of the entries is evicted. Not LRU on purpose: hits would have to reorder
    entries (a dict operation per series on the hot path), and senders cycle through their
    series in a fixed order, which makes LRU (and FIFO) miss on every series as soon as there
    are more than fit; random eviction keeps a proportional share of hits instead.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: dict[bytes, LabelSet] = {}
        self._lock = threading.Lock()
        # eviction only needs to be unpredictable enough to not follow the senders' order
        self._random = random.Random()  # noqa: S311
        self.get = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    def insert(self, key: bytes, labelset: LabelSet) -> LabelSet:
        with self._lock:
            entries = self._entries
            if len(entries) >= self.max_entries:
                drop = min(len(entries), max(1, self.max_entries // 10))
                for victim in self._random.sample(list(entries), drop):
                    del entries[victim]
            return entries.setdefault(key, labelset)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


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
