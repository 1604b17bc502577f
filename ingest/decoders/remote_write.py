"""Prometheus remote-write 1.0 and 2.0 requests: decoding and validation.

:func:`decode_remote_write` turns a request body into a :class:`WriteBatch`: the accepted series
(label tuples), their samples as numpy arrays, metadata, and what was rejected and why. It
validates like Cortex/Mimir's distributor (label names and values, limits, timestamps), rejecting
single series or samples and keeping the rest, so that the API can store the good part and still
answer 400 with a readable reason (remote-write senders never retry a 4xx).

How it stays fast (this is the ingest hot path: ~2,000 series per request): the protobuf runtime
only splits the request into per-series byte strings; numpy then reads all series at once
(:mod:`ingest.decoders.protowire`), and label sets are looked up by their exact bytes in a
process-wide cache of validated sets (:mod:`ingest.decoders.series_labels`), so that a request of
known series runs no Python code per series or per sample. Series the vectorized reader does not
recognise (exemplars, histograms, unusual encodings) are decoded by the protobuf runtime instead,
which also remains the judge of what is corrupt. ``series_reader="protobuf"`` sends every series
that way: the reference the vectorized reader is tested against.

``.venv/bin/python bench/decode_remote_write.py`` measures it on Istio-shaped requests.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Literal

import numpy as np
from google.protobuf.message import DecodeError as ProtobufDecodeError

from backend.metrics.labels import LabelPairs
from ingest.decoders import protowire, snappy_block
from ingest.decoders.errors import DecodeError, UnsupportedMediaType
from ingest.decoders.proto import remote_write_v1_pb2 as pb1
from ingest.decoders.proto import remote_write_v2_pb2 as pb2
from ingest.decoders.series_labels import (
    DEFAULT_LIMITS,
    LABEL_NAME_RE,
    NON_CANONICAL,
    LabelLimits,
    LabelSet,
    LabelSetCache,
    SymbolIds,
    first_problem,
    labelset_from_columns,
    labelset_from_wire,
    labelsets_from_pairs,
    series_text,
    shared_pair,
)

__all__ = [
    "Exemplar",
    "LabelLimits",
    "Rejection",
    "SampleColumns",
    "SeriesReader",
    "WriteBatch",
    "assemble_write_batch",
    "clear_caches",
    "configure_caches",
    "decode_remote_write",
    "remote_write_protocol",
]

V1_PROTO = "prometheus.WriteRequest"
V2_PROTO = "io.prometheus.write.v2.Request"

# Process-wide caches (see series_labels). Sizes are in entries: an entry for an Istio series
# (16 labels, ~560 bytes on the wire) takes ~0.9 KiB, so 50,000 take ~45 MiB per process. A miss
# costs ~30x a hit, so size them for the series one process sees; configure_caches() at startup.
V1_LABEL_SETS = LabelSetCache(max_entries=50_000)
V2_LABEL_SETS = LabelSetCache(max_entries=50_000)
V2_SYMBOL_IDS = SymbolIds(max_entries=200_000)

# Label pairs of 1.0 series by the bytes of their Label message (see _v1_labelsets).
_V1_PAIRS: dict[bytes, tuple[str, str]] = {}
_MAX_V1_PAIRS = 200_000
# Fewer new series than this are decoded one by one (numpy's fixed costs would dominate);
# series with more labels than _MAX_BULK_LABELS too.
_BULK_MIN_SERIES = 16
_MAX_BULK_LABELS = 40

# The vectorized readers give up on series with more samples/fields than this (one numpy pass
# each); the protobuf runtime decodes those.
_MAX_PEELED_SAMPLES = 32
_MAX_V2_FIELDS = 24
_MAX_V2_SAMPLE_FIELDS = 6
_MAX_V2_METADATA_FIELDS = 6

# How series are read: "vectorized" (numpy over all series at once, the protobuf runtime for the
# ones it does not recognise) or "protobuf" (the protobuf runtime one series at a time).
SeriesReader = Literal["vectorized", "protobuf"]

_METRIC_TYPES = (
    "unknown",
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
)

_NAME = attrgetter("name")
_VALUE = attrgetter("value")
# LabelSet fields, read over whole lists with map() (C speed)
_LABELS = itemgetter(0)
_METRIC_NAME = itemgetter(5)
_FLAGS = itemgetter(6)


@dataclass(slots=True)
class Rejection:
    """Samples rejected for one reason; ``message`` describes the first offending series."""

    reason: str  # short machine code, e.g. "invalid_metric_name", "too_old"
    message: str  # human readable, names the series (like Cortex's messages)
    samples: int  # samples rejected for this reason (0 for a series carrying none)


@dataclass(slots=True)
class Exemplar:
    """An exemplar of a series of the batch (``series`` indexes ``WriteBatch.series_labels``)."""

    series: int
    timestamp_ms: int
    value: float
    labels: tuple[tuple[str, str], ...]  # sorted by name: trace_id, span_id, ...


# Prometheus refuses exemplars whose label names and values together exceed 128 characters.
MAX_EXEMPLAR_LABEL_CHARS = 128


@dataclass(slots=True)
class WriteBatch:
    """What a remote-write request carried, validated.

    ``sample_series[i]`` is the index in ``series_labels`` of the series of sample ``i``; samples
    keep request order. Values are float64 bit patterns as sent (stale markers included).
    """

    series_labels: list[LabelPairs]
    sample_series: np.ndarray  # int32
    timestamps_ms: np.ndarray  # int64
    values: np.ndarray  # float64
    metadata: list[tuple[str, str, str, str]]  # (metric_family_name, type, help, unit)
    histograms_received: int
    exemplars_received: int
    rejected: list[Rejection] = field(default_factory=list)
    exemplars: list[Exemplar] = field(default_factory=list)  # the valid ones of kept series

    @property
    def samples_rejected(self) -> int:
        return sum(r.samples for r in self.rejected)


def configure_caches(*, label_sets: int, symbols: int) -> None:
    """Size the process-wide caches (entries); call once at startup."""
    V1_LABEL_SETS.max_entries = label_sets
    V2_LABEL_SETS.max_entries = label_sets
    V2_SYMBOL_IDS.max_entries = symbols


def clear_caches() -> None:
    V1_LABEL_SETS.clear()
    _V1_PAIRS.clear()
    V2_LABEL_SETS.clear()
    V2_SYMBOL_IDS.clear()


def remote_write_protocol(content_type: str | None, content_encoding: str | None) -> int:
    """1 or 2: the remote-write version the headers announce; UnsupportedMediaType otherwise.

    A missing Content-Encoding is taken as snappy and a missing Content-Type as 1.0, like Cortex.
    """
    encoding = (content_encoding or "snappy").strip().lower()
    if encoding != "snappy":
        raise UnsupportedMediaType(
            f"unsupported Content-Encoding {content_encoding!r}: remote-write bodies must be "
            "snappy (block format) compressed"
        )
    if content_type is None or not content_type.strip():
        return 1
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != "application/x-protobuf":
        raise UnsupportedMediaType(
            f"unsupported Content-Type {content_type!r}: expected application/x-protobuf"
        )
    proto = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "proto":
            proto = value.strip().strip('"')
    if proto is None or proto == V1_PROTO:
        return 1
    if proto == V2_PROTO:
        return 2
    raise UnsupportedMediaType(
        f"unsupported remote-write message {proto!r}: expected {V1_PROTO} (1.0) or {V2_PROTO} (2.0)"
    )


def decode_remote_write(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    remote_write_version: str | None,
    max_size: int,
    limits: LabelLimits,
    now_ms: int,
    max_age_ms: int | None,
    future_grace_ms: int = 600_000,
    series_reader: SeriesReader = "vectorized",
) -> WriteBatch:
    """Decode and validate one remote-write request body.

    The message version comes from ``content_type`` (as the 2.0 specification requires);
    ``remote_write_version`` (the X-Prometheus-Remote-Write-Version header) is informational and
    only quoted in errors. ``max_size`` caps the decompressed size (checked before decompressing).
    Samples older than ``now_ms - max_age_ms`` (when given) or newer than
    ``now_ms + future_grace_ms`` are rejected, as are out-of-order samples and different values for
    one timestamp within a series of this request.

    ``series_reader="protobuf"`` reads every series with the protobuf runtime, as the vectorized
    reader does for the series it does not recognise: slower, with the same result (the tests
    hold the vectorized reader to it).

    Raises a :class:`DecodeError` subclass for anything wrong with the request as a whole
    (PayloadTooLarge, UnsupportedMediaType, corrupt snappy or protobuf).
    """
    version = remote_write_protocol(content_type, content_encoding)
    raw = snappy_block.decompress(body, max_size=max_size)
    try:
        vectorized = series_reader == "vectorized"
        decoded = (
            _decode_v1(raw, vectorized=vectorized)
            if version == 1
            else _decode_v2(raw, vectorized=vectorized)
        )
        return _assemble(
            decoded,
            limits=limits,
            now_ms=now_ms,
            max_age_ms=max_age_ms,
            future_grace_ms=future_grace_ms,
        )
    except DecodeError:
        raise
    except (ProtobufDecodeError, ValueError, IndexError, OverflowError) as exc:
        # Input-dependent failures only; anything else is a bug and must surface as one (5xx).
        header = f" (version header {remote_write_version!r})" if remote_write_version else ""
        raise DecodeError(f"malformed remote-write {version}.0 request{header}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SampleColumns:
    """Samples of another protocol's request: ``sample_series[i]`` indexes the label sets."""

    sample_series: np.ndarray  # int64
    timestamps: np.ndarray  # int64, ms
    values: np.ndarray  # float64


def assemble_write_batch(
    *,
    labels: list[tuple[tuple[str, str], ...]],
    columns: SampleColumns,
    metadata: list[tuple[str, str, str, str]],
    exemplars: list[tuple[int, int, float, tuple[tuple[str, str], ...]]],
    limits: LabelLimits,
    now_ms: int,
    max_age_ms: int | None,
    future_grace_ms: int = 600_000,
) -> WriteBatch:
    """A :class:`WriteBatch` of series and samples another protocol decoded (OTLP), validated
    exactly as a remote-write request's: label syntax and limits, timestamps, order.

    ``labels`` are distinct label sets (name, value) sorted by name; samples in request order;
    ``exemplars`` are (label set index, timestamp ms, value, exemplar labels).
    """
    decoded = _Decoded.unread(0)
    decoded.keys = list(labels)
    decoded.labelsets = [
        labelset_from_columns([n for n, _ in pairs], [v for _, v in pairs]) for pairs in labels
    ]
    decoded.sample_entry = columns.sample_series.astype(np.int64, copy=False)
    decoded.sample_position = np.arange(len(decoded.sample_entry), dtype=np.int64)
    decoded.timestamps = columns.timestamps
    decoded.values = columns.values
    decoded.metadata = metadata
    decoded.exemplars = len(exemplars)
    decoded.exemplar_rows = list(exemplars)
    return _assemble(
        decoded,
        limits=limits,
        now_ms=now_ms,
        max_age_ms=max_age_ms,
        future_grace_ms=future_grace_ms,
    )


# --- decoding -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Decoded:
    """Per-TimeSeries and per-sample results of the series readers, before validation."""

    # per TimeSeries: the bytes that keyed its label set (equal keys = same series), or a unique
    # int for a series rejected before its labels were decoded (see ``early_problems``)
    keys: list[bytes | int] | list[tuple[tuple[str, str], ...]]
    labelsets: list[LabelSet | None]
    early_problems: dict[int, tuple[str, str]]
    # per sample: its TimeSeries, its position there (any increasing numbers), its timestamp
    # and value; in request order, i.e. sorted by (entry, position), when ``samples_in_order``
    sample_entry: np.ndarray
    sample_position: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray
    samples_in_order: bool
    histograms: int = 0
    exemplars: int = 0
    # (entry, timestamp, value, labels as sent) of each exemplar read; invalid ones as
    # (entry, reason, message)
    exemplar_rows: list[tuple[int, int, float, tuple[tuple[str, str], ...]]] = field(
        default_factory=list
    )
    exemplar_problems: list[tuple[int, str, str]] = field(default_factory=list)
    metadata: list[tuple[str, str, str, str]] = field(default_factory=list)
    metadata_problems: list[tuple[str, str]] = field(default_factory=list)
    # 2.0: per TimeSeries (type, help_ref, unit_ref), and the symbols they index
    series_metadata: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    symbols: list[str | None] | None = None

    @classmethod
    def unread(cls, count: int, *, symbols: list[str | None] | None = None) -> _Decoded:
        """Room for ``count`` TimeSeries, none read yet (``symbols``: of a 2.0 request)."""
        none = np.zeros(0, np.int64)
        return cls(
            keys=list(range(count)),
            labelsets=[None] * count,
            early_problems={},
            sample_entry=none,
            sample_position=none,
            timestamps=none,
            values=np.zeros(0, np.float64),
            samples_in_order=True,
            series_metadata=None
            if symbols is None
            else (np.zeros(count, np.int64), np.zeros(count, np.int64), np.zeros(count, np.int64)),
            symbols=symbols,
        )

    def add_samples(
        self, entry: list[int], position: list[int], timestamps: list[int], values: list[float]
    ) -> None:
        self.sample_entry = np.concatenate((self.sample_entry, np.array(entry, np.int64)))
        self.sample_position = np.concatenate((self.sample_position, np.array(position, np.int64)))
        self.timestamps = np.concatenate((self.timestamps, np.array(timestamps, np.int64)))
        self.values = np.concatenate((self.values, np.array(values, np.float64)))
        self.samples_in_order = False

    def put_samples_in_request_order(self) -> None:
        if self.samples_in_order:
            return
        order = np.lexsort((self.sample_position, self.sample_entry))
        self.sample_entry = self.sample_entry[order]
        self.sample_position = self.sample_position[order]
        self.timestamps = self.timestamps[order]
        self.values = self.values[order]
        self.samples_in_order = True


def _decode_v1(raw: bytes, *, vectorized: bool) -> _Decoded:
    try:
        request = pb1.WriteRequestRawView.FromString(raw)
    except ProtobufDecodeError:
        raise DecodeError("request body is not a valid protobuf prometheus.WriteRequest") from None
    metadata, metadata_problems = _v1_metadata(request.metadata)
    series = list(request.timeseries)
    if vectorized:
        decoded, left = _v1_vectorized(series)
    else:
        decoded, left = _Decoded.unread(len(series)), np.ones(len(series), bool)
    if left.any():
        _v1_by_runtime(series, np.flatnonzero(left).tolist(), decoded)
    decoded.put_samples_in_request_order()
    decoded.metadata = metadata
    decoded.metadata_problems = metadata_problems
    return decoded


def _v1_vectorized(series: list[bytes]) -> tuple[_Decoded, np.ndarray]:
    """The 1.0 TimeSeries read with numpy, and the mask of those left to the protobuf runtime."""
    wire, starts, ends = protowire.concat_messages(series)
    peeled = protowire.peel_trailing_samples(wire, starts, ends, max_samples=_MAX_PEELED_SAMPLES)
    data = wire.data
    keys: list[bytes | int] = [
        data[start:end]
        for start, end in zip(starts.tolist(), peeled.remaining_end.tolist(), strict=True)
    ]
    labelsets: list[LabelSet | None] = list(map(V1_LABEL_SETS.get, keys))
    left = peeled.exhausted
    if None in labelsets:
        misses = [i for i, found in enumerate(labelsets) if found is None and not left[i]]
        # A miss: the bytes in front of the peeled samples must be labels and nothing else
        # (see peel_trailing_samples); otherwise the protobuf runtime reads this series.
        found = _v1_labelsets(
            wire, starts[misses], peeled.remaining_end[misses], [keys[i] for i in misses]
        )
        for i, labelset in zip(misses, found, strict=True):
            if labelset is None:
                left[i] = True
            else:
                labelsets[i] = V1_LABEL_SETS.insert(keys[i], labelset)
    read = ~left[peeled.msg] if left.any() else slice(None)
    return _Decoded(
        keys=keys,
        labelsets=labelsets,
        early_problems={},
        sample_entry=peeled.msg[read],
        sample_position=-peeled.rank[read],
        timestamps=peeled.timestamps[read],
        values=peeled.values[read],
        samples_in_order=not (len(peeled.rank) and peeled.rank.max() > 0),
    ), left


def _v1_by_runtime(series: list[bytes], indices: list[int], decoded: _Decoded) -> None:
    """Read the 1.0 TimeSeries at ``indices`` with the protobuf runtime, into ``decoded``."""
    entry: list[int] = []
    position: list[int] = []
    timestamps: list[int] = []
    values: list[float] = []
    for i in indices:
        try:
            one = pb1.TimeSeriesView.FromString(series[i])
        except ProtobufDecodeError:
            raise DecodeError(f"timeseries #{i} is not a valid protobuf TimeSeries") from None
        decoded.keys[i] = key = protowire.encode_len_fields(0x0A, list(one.labels))
        labelset = V1_LABEL_SETS.get(key) or _v1_labelset(key)
        if labelset is None:
            raise DecodeError(f"timeseries #{i} has a label that is not a valid protobuf Label")
        decoded.labelsets[i] = V1_LABEL_SETS.insert(key, labelset)
        for j, sample in enumerate(one.samples):
            entry.append(i)
            position.append(j)
            timestamps.append(sample.timestamp)
            values.append(sample.value)
        decoded.histograms += len(one.histograms)
        decoded.exemplars += len(one.exemplars)
        for raw in one.exemplars:
            _v1_exemplar(i, raw, decoded)
    decoded.add_samples(entry, position, timestamps, values)


def _v1_exemplar(i: int, raw: bytes, decoded: _Decoded) -> None:
    try:
        exemplar = pb1.Exemplar.FromString(raw)
    except ProtobufDecodeError:
        decoded.exemplar_problems.append(
            (i, "invalid_exemplar", f"timeseries #{i} has an exemplar that is not valid protobuf")
        )
        return
    labels = tuple((label.name, label.value) for label in exemplar.labels)
    decoded.exemplar_rows.append((i, exemplar.timestamp, exemplar.value, labels))


def _v1_labelsets(
    wire: protowire.WireBuffer, starts: np.ndarray, ends: np.ndarray, keys: list[bytes]
) -> list[LabelSet | None]:
    """:func:`_v1_labelset` of many keys (``keys[i]`` is ``wire.data[starts[i]:ends[i]]``).

    Keys in the one encoding senders write (see :func:`protowire.read_plain_labels`) are split
    with numpy, and each label is found in a cache of the pairs seen before by its exact bytes;
    the label sets are then built and checked together. Other keys go through
    :func:`_v1_labelset`.
    """
    if len(keys) < _BULK_MIN_SERIES:
        return list(map(_v1_labelset, keys))
    found = protowire.read_plain_labels(wire, starts, ends, max_labels=_MAX_BULK_LABELS)
    data = wire.data
    label_bytes = list(
        map(data.__getitem__, map(slice, found.label_start.tolist(), found.label_end.tolist()))
    )
    pairs = list(map(_V1_PAIRS.get, label_bytes))
    plain = found.complete
    if None in pairs:
        # pairs not seen before, each decoded once (most recur across the series of a request)
        missing = {label_bytes[j]: j for j, pair in enumerate(pairs) if pair is None}
        at = np.fromiter(missing.values(), np.int64, len(missing))
        if len(_V1_PAIRS) + len(missing) > _MAX_V1_PAIRS:
            _V1_PAIRS.clear()
        for raw, a, b, c, d in zip(
            missing,
            found.name_start[at].tolist(),
            found.name_end[at].tolist(),
            found.value_start[at].tolist(),
            found.label_end[at].tolist(),
            strict=True,
        ):
            # (a pair that is not valid UTF-8 stays out: _v1_labelset says which label it is)
            with contextlib.suppress(UnicodeDecodeError):
                _V1_PAIRS[raw] = shared_pair(data[a:b].decode(), data[c:d].decode())
        pairs = list(map(_V1_PAIRS.get, label_bytes))
        if None in pairs:
            decoded = np.fromiter(map(bool, pairs), bool, len(pairs))
            plain[found.msg[~decoded]] = False
            keep = plain[found.msg]
            found.msg = found.msg[keep]
            pairs = list(map(pairs.__getitem__, np.flatnonzero(keep).tolist()))
    bulk = np.flatnonzero(plain)
    out: list[LabelSet | None] = [None] * len(keys)
    counts = np.bincount(found.msg, minlength=len(keys))[bulk]
    for i, labelset in zip(bulk.tolist(), labelsets_from_pairs(pairs, counts), strict=True):
        out[i] = labelset
    return [
        labelset if labelset is not None else _v1_labelset(key)
        for key, labelset in zip(keys, out, strict=True)
    ]


def _v1_labelset(key: bytes) -> LabelSet | None:
    """The label set encoded by ``key``, or None if ``key`` holds more than complete labels."""
    try:
        view = pb1.LabelsView.FromString(key)
    except ProtobufDecodeError:
        return None
    if view.samples or view.exemplars or view.histograms:
        return None
    names = list(map(_NAME, view.labels))
    values = list(map(_VALUE, view.labels))
    # Is the key the one encoding of these labels? (Equal label sets under different keys are
    # merged per request, see _assemble.)
    view.DiscardUnknownFields()
    return labelset_from_wire(names, values, canonical=view.SerializeToString() == key)


def _v1_metadata(
    items: list[pb1.MetricMetadataView],
) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str]]]:
    found: dict[tuple[str, str, str, str], None] = {}
    problems = []
    for item in items:
        name = item.metric_family_name.decode(errors="replace")
        if not name:
            problems.append(("metadata_missing_metric_name", "metadata missing metric name"))
            continue
        kind = _METRIC_TYPES[item.type] if 0 <= item.type < len(_METRIC_TYPES) else "unknown"
        help_text = item.help.decode(errors="replace")
        found[(name, kind, help_text, item.unit.decode(errors="replace"))] = None
    return list(found), problems


def _decode_v2(raw: bytes, *, vectorized: bool) -> _Decoded:
    symbols: list[str | None]
    try:
        request = pb2.RequestRawView.FromString(raw)
        symbols = list(request.symbols)
    except ProtobufDecodeError:
        # Either corrupt, or a symbol is not valid UTF-8: read symbols as bytes to tell.
        try:
            request = pb2.RequestRawBytesView.FromString(raw)
        except ProtobufDecodeError:
            raise DecodeError(
                "request body is not a valid protobuf io.prometheus.write.v2.Request"
            ) from None
        symbols = [_utf8_or_none(s) for s in request.symbols]
    series = list(request.timeseries)
    symbol_ids = V2_SYMBOL_IDS.ids(symbols)
    if vectorized:
        decoded, left = _v2_vectorized(series, symbols, symbol_ids)
    else:
        decoded = _Decoded.unread(len(series), symbols=symbols)
        left = np.ones(len(series), bool)
    if left.any():
        _v2_by_runtime(series, np.flatnonzero(left).tolist(), decoded, symbol_ids)
    decoded.put_samples_in_request_order()
    return decoded


def _v2_vectorized(
    series: list[bytes], symbols: list[str | None], symbol_ids: np.ndarray
) -> tuple[_Decoded, np.ndarray]:
    """The 2.0 TimeSeries read with numpy, and the mask of those left to the protobuf runtime."""
    count = len(series)
    n_symbols = len(symbols)
    wire, starts, ends = protowire.concat_messages(series)
    table = protowire.scan_fields(wire, starts, ends, max_fields=_MAX_V2_FIELDS)
    left = table.unparsed.copy()
    msg, fld, wt = table.msg, table.field, table.wire_type
    # Known fields with another wire type, labels_refs in several chunks (or unpacked), repeated
    # metadata: legal but unusual, left to the protobuf runtime.
    odd_type = (((fld >= 1) & (fld <= 5)) & (wt != 2)) | ((fld == 6) & (wt != 0))
    left[msg[odd_type]] = True
    is_refs = (fld == 1) & (wt == 2)
    is_metadata = (fld == 5) & (wt == 2)
    left[np.bincount(msg[is_refs], minlength=count) > 1] = True
    left[np.bincount(msg[is_metadata], minlength=count) > 1] = True
    left[msg[(fld == 4) & (wt == 2)]] = True  # exemplars: read by the protobuf runtime

    # samples: the usual layouts at once, a generic scan for the others
    is_sample = (fld == 2) & (wt == 2)
    sample_msg = msg[is_sample]
    sample_step = table.step[is_sample]
    sample_start, sample_end = table.data_start[is_sample], table.data_end[is_sample]
    values, timestamps, plain = protowire.read_samples(wire, sample_start, sample_end)
    if not plain.all():
        odd = np.flatnonzero(~plain)
        samples = protowire.scan_fields(
            wire, sample_start[odd], sample_end[odd], max_fields=_MAX_V2_SAMPLE_FIELDS
        )
        bad = ((samples.field == 1) & (samples.wire_type != 1)) | (
            (samples.field == 2) & (samples.wire_type != 0)
        )
        left[sample_msg[odd[samples.unparsed]]] = True
        left[sample_msg[odd[samples.msg[bad]]]] = True
        for step in range(_MAX_V2_SAMPLE_FIELDS):  # in field order, so that the last one wins
            at = samples.step == step
            if not at.any():
                break
            is_value = at & (samples.field == 1) & (samples.wire_type == 1)
            values[odd[samples.msg[is_value]]] = protowire.read_doubles(
                wire, samples.data_start[is_value]
            )
            is_ts = at & (samples.field == 2) & (samples.wire_type == 0)
            timestamps[odd[samples.msg[is_ts]]] = samples.varint[is_ts].view(np.int64)

    # metadata: a scan over the Metadata messages
    md_msg = msg[is_metadata]
    meta = protowire.scan_fields(
        wire,
        table.data_start[is_metadata],
        table.data_end[is_metadata],
        max_fields=_MAX_V2_METADATA_FIELDS,
    )
    left[md_msg[meta.unparsed]] = True
    known = (meta.field == 1) | (meta.field == 3) | (meta.field == 4)
    left[md_msg[meta.msg[known & (meta.wire_type != 0)]]] = True
    md_type = np.zeros(count, np.int64)
    md_help = np.zeros(count, np.int64)
    md_unit = np.zeros(count, np.int64)
    for step in range(_MAX_V2_METADATA_FIELDS):
        at = (meta.step == step) & (meta.wire_type == 0)
        if not at.any():
            continue
        for number, target, convert in (
            (1, md_type, _enum_value),
            (3, md_help, protowire.truncate_uint32),
            (4, md_unit, protowire.truncate_uint32),
        ):
            rows = at & (meta.field == number)
            target[md_msg[meta.msg[rows]]] = convert(meta.varint[rows]).astype(np.int64)

    # labels_refs: decode all packed regions at once
    region_start = np.zeros(count, np.int64)
    region_end = np.zeros(count, np.int64)
    region_start[msg[is_refs]] = table.data_start[is_refs]
    region_end[msg[is_refs]] = table.data_end[is_refs]
    region_start[left] = region_end[left] = 0
    refs, ref_counts, refs_ok = protowire.decode_packed_uint32(wire, region_start, region_end)
    left |= ~refs_ok
    offsets = np.concatenate(([0], np.cumsum(ref_counts)))
    ref_msg = np.repeat(np.arange(count), ref_counts)
    out_of_range = refs >= n_symbols
    if not out_of_range.any():
        ids = symbol_ids[refs]
    elif n_symbols:
        ids = symbol_ids[np.where(out_of_range, 0, refs)]
    else:
        ids = np.full(len(refs), SymbolIds.INVALID, np.uint64)
    # series the bulk path cannot key: odd ref count, bad refs, invalid UTF-8, bad metadata refs
    special = left | (ref_counts % 2 == 1)
    special[ref_msg[out_of_range]] = True
    special[ref_msg[ids == SymbolIds.INVALID]] = True
    special |= ((md_help != 0) & (md_help >= n_symbols)) | ((md_unit != 0) & (md_unit >= n_symbols))
    key_bytes = ids.tobytes()
    key_slices = map(slice, (8 * offsets[:-1]).tolist(), (8 * offsets[1:]).tolist())
    keys: list[bytes | int] = list(map(key_bytes.__getitem__, key_slices))
    labelsets: list[LabelSet | None] = list(map(V2_LABEL_SETS.get, keys))
    if None in labelsets:
        misses = [i for i, found in enumerate(labelsets) if found is None and not special[i]]
        for i, labelset in zip(misses, _v2_labelsets(refs, offsets, misses, symbols), strict=True):
            labelsets[i] = V2_LABEL_SETS.insert(keys[i], labelset)
    # (the keys of special series may be meaningless: their lookups above are overridden here)
    early: dict[int, tuple[str, str]] = {}
    for i in np.flatnonzero(special & ~left).tolist():
        series_refs = refs[offsets[i] : offsets[i + 1]].tolist()
        keys[i], labelsets[i], early_problem = _v2_series(
            i, series_refs, md_help[i], md_unit[i], symbols, symbol_ids
        )
        if early_problem:
            early[i] = early_problem

    read_rows = ~left[msg]
    keep = ~left[sample_msg]
    entry = sample_msg[keep]
    return _Decoded(
        keys=keys,
        labelsets=labelsets,
        early_problems=early,
        sample_entry=entry,
        sample_position=sample_step[keep],
        timestamps=timestamps[keep],
        values=values[keep],
        samples_in_order=len(entry) < 2 or not (np.diff(entry) <= 0).any(),
        histograms=int(np.count_nonzero(read_rows & (fld == 3))),
        exemplars=int(np.count_nonzero(read_rows & (fld == 4))),
        series_metadata=(md_type, md_help, md_unit),
        symbols=symbols,
    ), left


def _v2_by_runtime(
    series: list[bytes], indices: list[int], decoded: _Decoded, symbol_ids: np.ndarray
) -> None:
    """Read the 2.0 TimeSeries at ``indices`` with the protobuf runtime, into ``decoded``."""
    assert decoded.series_metadata is not None and decoded.symbols is not None  # 2.0
    md_type, md_help, md_unit = decoded.series_metadata
    entry: list[int] = []
    position: list[int] = []
    timestamps: list[int] = []
    values: list[float] = []
    for i in indices:
        try:
            one = pb2.TimeSeriesView.FromString(series[i])
        except ProtobufDecodeError:
            raise DecodeError(f"timeseries #{i} is not a valid protobuf TimeSeries") from None
        md_type[i] = one.metadata.type
        md_help[i] = one.metadata.help_ref
        md_unit[i] = one.metadata.unit_ref
        decoded.keys[i], decoded.labelsets[i], early_problem = _v2_series(
            i, list(one.labels_refs), md_help[i], md_unit[i], decoded.symbols, symbol_ids
        )
        if early_problem:
            decoded.early_problems[i] = early_problem
        for j, sample in enumerate(one.samples):
            entry.append(i)
            position.append(j)
            timestamps.append(sample.timestamp)
            values.append(sample.value)
        decoded.histograms += len(one.histograms)
        decoded.exemplars += len(one.exemplars)
        for raw in one.exemplars:
            _v2_exemplar(i, raw, decoded)
    decoded.add_samples(entry, position, timestamps, values)


def _v2_exemplar(i: int, raw: bytes, decoded: _Decoded) -> None:
    symbols = decoded.symbols or []
    try:
        exemplar = pb2.Exemplar.FromString(raw)
    except ProtobufDecodeError:
        exemplar = None
    refs = list(exemplar.labels_refs) if exemplar is not None else []
    texts = [symbols[r] if r < len(symbols) else None for r in refs]
    if exemplar is None or len(refs) % 2 or None in texts:
        decoded.exemplar_problems.append(
            (i, "invalid_exemplar", f"timeseries #{i} has an exemplar with invalid label refs")
        )
        return
    labels = tuple(zip(texts[0::2], texts[1::2], strict=True))
    decoded.exemplar_rows.append((i, exemplar.timestamp, exemplar.value, labels))


def _utf8_or_none(data: bytes) -> str | None:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def _enum_value(raw: np.ndarray) -> np.ndarray:
    """What a protobuf runtime keeps of a varint read into an enum (int32) field."""
    return protowire.truncate_uint32(raw).view(np.int32)


def _v2_series(
    i: int,
    refs: list[int],
    help_ref: int,
    unit_ref: int,
    symbols: list[str | None],
    symbol_ids: np.ndarray,
) -> tuple[bytes | int, LabelSet | None, tuple[str, str] | None]:
    """(key, label set, early problem) of a 2.0 series that needs individual attention."""
    n_symbols = len(symbols)
    if len(refs) % 2:
        return (
            i,
            None,
            (
                "invalid_label_refs",
                f"timeseries #{i} has an odd number of label references ({len(refs)})",
            ),
        )
    bad = next((r for r in refs if r >= n_symbols), None)
    if bad is not None:
        return (
            i,
            None,
            (
                "invalid_label_refs",
                f"timeseries #{i} references symbol {bad} but the request has {n_symbols} symbols",
            ),
        )
    labelset = _v2_labelset(refs, symbols)
    for what, ref in (("help", help_ref), ("unit", unit_ref)):
        if ref != 0 and ref >= n_symbols:
            return (
                i,
                labelset,
                (
                    "invalid_metadata_refs",
                    f"metadata {what} references symbol {ref} but the request has {n_symbols} "
                    f"symbols, series {series_text(labelset.labels)}",
                ),
            )
    ids = symbol_ids[refs] if refs else np.zeros(0, np.uint64)
    if (ids == SymbolIds.INVALID).any():
        return i, labelset, None  # not cached: the key cannot tell invalid symbols apart
    key = ids.astype("<u8").tobytes()
    return key, V2_LABEL_SETS.get(key) or V2_LABEL_SETS.insert(key, labelset), None


def _v2_labelsets(
    refs: np.ndarray, offsets: np.ndarray, series: list[int], symbols: list[str]
) -> list[LabelSet]:
    """:func:`_v2_labelset` of many series (``refs[offsets[i]:offsets[i + 1]]`` each: an even
    number of in-range references to valid symbols), built and checked together."""
    if len(series) < _BULK_MIN_SERIES:
        return [_v2_labelset(refs[offsets[i] : offsets[i + 1]].tolist(), symbols) for i in series]
    at = np.asarray(series, np.int64)
    starts, counts = offsets[at], offsets[at + 1] - offsets[at]
    before = np.cumsum(counts) - counts
    chosen = refs[np.arange(counts.sum()) + np.repeat(starts - before, counts)].astype(np.uint64)
    # one pair per distinct (name, value) reference, shared by every label that uses it
    keys, inverse = np.unique((chosen[0::2] << np.uint64(32)) | chosen[1::2], return_inverse=True)
    distinct = [
        shared_pair(symbols[key >> 32], symbols[key & 0xFFFF_FFFF]) for key in keys.tolist()
    ]
    pairs = list(map(distinct.__getitem__, inverse.tolist()))
    return [
        labelset or _v2_labelset(refs[offsets[i] : offsets[i + 1]].tolist(), symbols)
        for i, labelset in zip(series, labelsets_from_pairs(pairs, counts // 2), strict=True)
    ]


def _v2_labelset(refs: list[int], symbols: list[str | None]) -> LabelSet:
    names = list(map(symbols.__getitem__, refs[::2]))
    values = list(map(symbols.__getitem__, refs[1::2]))
    if None not in names and None not in values:
        return labelset_from_columns(names, values)
    name = next((n for n, v in zip(names, values, strict=True) if n is None or v is None), None)
    return labelset_from_columns(
        ["\ufffd" if n is None else n for n in names],
        ["\ufffd" if v is None else v for v in values],
        utf8_problem=f"{'label name' if name is None else f'value of label {name!r}'} is not "
        "valid UTF-8",
    )


# --- validation ------------------------------------------------------------------------------


class _RejectionLog:
    """One :class:`Rejection` per reason, with the message of its first occurrence."""

    def __init__(self) -> None:
        self._by_reason: dict[str, Rejection] = {}

    def add(self, reason: str, message: str, samples: int) -> None:
        known = self._by_reason.get(reason)
        if known is None:
            self._by_reason[reason] = Rejection(reason, message, int(samples))
        else:
            known.samples += int(samples)

    def rejections(self) -> list[Rejection]:
        return list(self._by_reason.values())


def _at_least(limits: LabelLimits, reference: LabelLimits) -> bool:
    return (
        limits.max_label_names_per_series >= reference.max_label_names_per_series
        and limits.max_label_name_length >= reference.max_label_name_length
        and limits.max_label_value_length >= reference.max_label_value_length
    )


def _assemble(
    decoded: _Decoded,
    *,
    limits: LabelLimits,
    now_ms: int,
    max_age_ms: int | None,
    future_grace_ms: int,
) -> WriteBatch:
    log = _RejectionLog()
    for reason, message in decoded.metadata_problems:
        log.add(reason, message, 0)
    keys = decoded.keys
    count = len(keys)

    # One "unique series" per distinct key, numbered by first appearance. (The keys' hashes are
    # cached by now: the set is cheap, and usually tells that every key is distinct.)
    if len(set(keys)) == count:
        unique_list = list(range(count))
        unique_sets = decoded.labelsets
        unique_of_entry = np.arange(count)
    else:
        first_seen: dict[bytes | int, int] = {}
        first = np.fromiter(map(first_seen.setdefault, keys, range(count)), np.int64, count)
        unique = np.flatnonzero(first == np.arange(count))
        unique_list = unique.tolist()
        unique_sets = list(map(decoded.labelsets.__getitem__, unique_list))
        unique_of_entry = np.empty(count, np.int64)
        unique_of_entry[unique] = np.arange(len(unique_list))
        unique_of_entry = unique_of_entry[first]
    n_unique = len(unique_list)

    # Verdicts. Usually one C-level pass over the flags says every series is fine.
    accepted = np.ones(n_unique, bool)
    problems: dict[int, tuple[str, str]] = {}
    merge = False
    if (
        decoded.early_problems
        or any(map(_FLAGS, unique_sets))
        or not _at_least(limits, DEFAULT_LIMITS)
    ):
        for j, i in enumerate(unique_list):
            labelset = unique_sets[j]
            problem = decoded.early_problems.get(i)
            if problem is None and labelset is not None:
                problem = first_problem(labelset, limits)
                merge = merge or bool(labelset.flags & NON_CANONICAL)
            if problem is not None:
                accepted[j] = False
                problems[j] = problem
    if problems:
        kept = np.flatnonzero(accepted)
        kept_sets = list(map(unique_sets.__getitem__, kept.tolist()))
        series_of_unique = np.full(n_unique, -1, np.int64)
        series_of_unique[kept] = np.arange(len(kept))
    else:
        kept_sets = unique_sets
        series_of_unique = np.arange(n_unique)
    series_labels: list[LabelPairs] = list(map(_LABELS, kept_sets))
    # (metric names: for 2.0 metadata only)
    series_names: list[str] = (
        list(map(_METRIC_NAME, kept_sets)) if decoded.series_metadata is not None else []
    )
    if merge:
        # Equal label sets reached through different bytes (e.g. one also sent an empty-valued
        # label): merge them into one series.
        series_labels, series_names, series_of_unique = _merge_equal_series(
            series_labels, series_names, series_of_unique
        )
    series_of_entry = series_of_unique[unique_of_entry]

    sample_unique = unique_of_entry[decoded.sample_entry]
    sample_series = series_of_unique[sample_unique]
    if problems:
        rejected_samples = np.bincount(sample_unique[sample_series < 0], minlength=n_unique)
        for j, (reason, message) in problems.items():
            log.add(reason, message, rejected_samples[j])
    keep = sample_series >= 0
    timestamps = decoded.timestamps
    values = decoded.values
    if not keep.all():
        sample_series, timestamps, values = sample_series[keep], timestamps[keep], values[keep]

    too_old = timestamps < now_ms - max_age_ms if max_age_ms is not None else np.zeros(0, bool)
    too_new = timestamps > now_ms + future_grace_ms
    drop = too_new.copy()
    if too_old.any():
        i = int(np.argmax(too_old))
        log.add(
            "too_old",
            f"sample timestamp too old: {timestamps[i]} is more than {max_age_ms} ms before "
            f"now ({now_ms}), series {series_text(series_labels[sample_series[i]])}",
            np.count_nonzero(too_old),
        )
        drop |= too_old
    if too_new.any():
        i = int(np.argmax(too_new))
        log.add(
            "too_far_in_future",
            f"sample timestamp too far in the future: {timestamps[i]} is more than "
            f"{future_grace_ms} ms after now ({now_ms}), "
            f"series {series_text(series_labels[sample_series[i]])}",
            np.count_nonzero(too_new),
        )
    if drop.any():
        sample_series, timestamps, values = (
            sample_series[~drop],
            timestamps[~drop],
            values[~drop],
        )

    if len(sample_series) > 1 and np.bincount(sample_series).max() > 1:
        keep = _check_sample_order(sample_series, timestamps, values, series_labels, log)
        sample_series, timestamps, values = sample_series[keep], timestamps[keep], values[keep]

    metadata = decoded.metadata
    if decoded.series_metadata is not None and decoded.symbols is not None:
        metadata = _v2_metadata(
            decoded.series_metadata, decoded.symbols, series_of_entry, series_names
        )

    exemplars = _exemplars(decoded, series_of_entry, series_labels, log)
    return WriteBatch(
        series_labels=series_labels,
        sample_series=sample_series.astype(np.int32),
        timestamps_ms=np.ascontiguousarray(timestamps, dtype=np.int64),
        values=np.ascontiguousarray(values, dtype=np.float64),
        metadata=metadata,
        histograms_received=decoded.histograms,
        exemplars_received=decoded.exemplars,
        rejected=log.rejections(),
        exemplars=exemplars,
    )


def _exemplars(
    decoded: _Decoded,
    series_of_entry: np.ndarray,
    series_labels: list[LabelPairs],
    log: _RejectionLog,
) -> list[Exemplar]:
    """The exemplars of kept series, validated as Prometheus validates them (labels valid and
    at most 128 characters in all, a timestamp); the others are rejected (0 samples)."""
    for _entry, reason, message in decoded.exemplar_problems:
        log.add(reason, message, 0)
    out = []
    for entry, ts, value, labels in decoded.exemplar_rows:
        series = int(series_of_entry[entry])
        if series < 0:
            continue
        pairs = tuple(sorted((name, text) for name, text in labels if text))
        problem = None
        if sum(len(name) + len(text) for name, text in pairs) > MAX_EXEMPLAR_LABEL_CHARS:
            problem = (
                "exemplar_labels_too_long",
                f"exemplar labels exceed {MAX_EXEMPLAR_LABEL_CHARS} characters",
            )
        elif any(LABEL_NAME_RE.fullmatch(name) is None for name, _ in pairs):
            problem = ("exemplar_invalid_label", "exemplar has an invalid label name")
        elif ts == 0:
            problem = ("exemplar_missing_timestamp", "exemplar missing timestamp")
        elif len({name for name, _ in pairs}) != len(pairs):
            problem = ("exemplar_duplicate_label", "exemplar has duplicate label names")
        if problem is not None:
            reason, message = problem
            log.add(reason, f"{message}, series {series_text(series_labels[series])}", 0)
            continue
        out.append(Exemplar(series, int(ts), float(value), pairs))
    return out


def _merge_equal_series(
    series_labels: list[LabelPairs], series_names: list[str], series_of_unique: np.ndarray
) -> tuple[list[LabelPairs], list[str], np.ndarray]:
    index: dict[LabelPairs, int] = {}
    remap = np.array([index.setdefault(labels, len(index)) for labels in series_labels], np.int64)
    names = dict(zip(remap.tolist(), series_names, strict=False))  # (names may be left empty)
    merged = series_of_unique.copy()
    valid = merged >= 0
    merged[valid] = remap[merged[valid]]
    return list(index), [names[j] for j in range(len(names))], merged


def _check_sample_order(
    series: np.ndarray,
    timestamps: np.ndarray,
    values: np.ndarray,
    series_labels: list[LabelPairs],
    log: _RejectionLog,
) -> np.ndarray:
    """Keep-mask after rejecting out-of-order samples and conflicting duplicates per series.

    Like an ingester appending the request in order: a sample older than the newest one already
    kept for its series is out of order; one at the same timestamp is dropped silently when it
    carries the same value (bit for bit) and rejected otherwise.
    """
    order = np.argsort(series, kind="stable")
    group = series[order]
    distinct_ts, rank = np.unique(timestamps[order], return_inverse=True)
    width = int(rank.max()) + 1
    # per-series running maximum in one pass: series * width + rank grows across series
    key = group.astype(np.int64) * width + rank
    newest = np.maximum.accumulate(key)
    before = np.empty_like(newest)
    before[0] = -1
    before[1:] = newest[:-1]
    out_of_order = key < before
    same_time = key == before
    conflicting = np.zeros_like(same_time)
    if same_time.any():
        # the first sample with this series and timestamp is the one that was kept
        _, first_index, which = np.unique(key, return_index=True, return_inverse=True)
        bits = values[order].view(np.int64)
        conflicting = same_time & (bits != bits[first_index[which]])
    keep = np.ones(len(series), bool)
    keep[order[out_of_order | same_time]] = False
    for mask, reason, text in (
        (
            out_of_order,
            "out_of_order",
            "out of order sample: timestamp {ts} is older than {newest}, the newest timestamp "
            "of its series in this request",
        ),
        (
            conflicting,
            "duplicate_timestamp",
            "duplicate sample for timestamp {ts} with a different value",
        ),
    ):
        if mask.any():
            at = int(np.argmax(mask))
            i = order[at]
            newest_ts = distinct_ts[before[at] - group[at] * width]
            log.add(
                reason,
                text.format(ts=timestamps[i], newest=newest_ts)
                + f", series {series_text(series_labels[series[i]])}",
                np.count_nonzero(mask),
            )
    return keep


def _v2_metadata(
    series_metadata: tuple[np.ndarray, np.ndarray, np.ndarray],
    symbols: list[str | None],
    series_of_entry: np.ndarray,
    series_names: list[str],
) -> list[tuple[str, str, str, str]]:
    kinds, helps, units = series_metadata
    rows = np.flatnonzero((series_of_entry >= 0) & ((kinds != 0) | (helps != 0) | (units != 0)))
    if not len(rows):
        return []
    # Every series of a metric repeats its metadata: de-duplicate numerically first. Metric names
    # are interned (series_labels.labelset_from_columns), so equal names are the same object.
    names = list(map(series_names.__getitem__, series_of_entry[rows].tolist()))
    columns = (
        np.fromiter(map(id, names), np.int64, len(names)),
        kinds[rows],
        helps[rows],
        units[rows],
    )
    order = np.lexsort(columns[::-1])  # stable: the first row of each group comes first
    starts_group = np.zeros(len(order), bool)
    starts_group[0] = True
    for column in columns:
        ordered = column[order]
        starts_group[1:] |= ordered[1:] != ordered[:-1]
    out = {}
    for row in np.sort(order[starts_group]).tolist():
        kind, help_ref, unit_ref = int(kinds[rows[row]]), helps[rows[row]], units[rows[row]]
        kind_text = _METRIC_TYPES[kind] if 0 <= kind < len(_METRIC_TYPES) else "unknown"
        help_text = (symbols[help_ref] or "") if help_ref < len(symbols) else ""
        unit_text = (symbols[unit_ref] or "") if unit_ref < len(symbols) else ""
        out[(names[row], kind_text, help_text, unit_text)] = None
    return list(out)
