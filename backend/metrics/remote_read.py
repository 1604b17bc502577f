"""Prometheus remote read: a snappy ``ReadRequest`` in, the org's series out.

``POST /prometheus/api/v1/read`` (the view is in ``prometheus_api.py``) lets a Prometheus server
with ``remote_read`` pointed at Canopy evaluate its queries over Canopy's data. Each query of the
request is one ``select`` of the PromQL engine's querier (``storage/reader.PostgresQuerier``),
in one read-only transaction bounded by the org's query timeout, under the org's series and
sample limits.

Responses:

- ``SAMPLES`` (what Prometheus itself asks for): one snappy-compressed ``ReadResponse``. The
  samples are encoded with numpy (one pass over all samples), not one protobuf object each.
- ``STREAMED_XOR_CHUNKS`` (Thanos, newer clients): ``application/x-streamed-protobuf;
  proto=prometheus.ChunkedReadResponse``, frames of ``uvarint length, CRC-32C (big endian),
  ChunkedReadResponse`` holding one series each, its samples in Prometheus XOR chunks of at
  most 120 samples (:func:`xor_chunk`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import cramjam
import google_crc32c
import numpy as np
import re2
from google.protobuf.message import DecodeError as ProtobufDecodeError

from backend.metrics.labels import Matcher, anchored_regex
from backend.metrics.promql.querier import Querier, SeriesSet
from backend.metrics.proto import remote_read_pb2 as pb

SAMPLES = pb.ReadRequest.SAMPLES
STREAMED_XOR_CHUNKS = pb.ReadRequest.STREAMED_XOR_CHUNKS
SAMPLES_CONTENT_TYPE = "application/x-protobuf"
STREAMED_CONTENT_TYPE = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"

MAX_REQUEST_BYTES = 4 * 1024 * 1024  # compressed; a ReadRequest is a few matchers
MAX_DECODED_BYTES = 32 * 1024 * 1024
MAX_QUERIES = 100
MAX_MATCHERS = 100
SAMPLES_PER_CHUNK = 120  # as Prometheus cuts its chunks

_OPS = {
    pb.LabelMatcher.EQ: "=",
    pb.LabelMatcher.NEQ: "!=",
    pb.LabelMatcher.RE: "=~",
    pb.LabelMatcher.NRE: "!~",
}


class BadReadRequest(ValueError):
    """The request is not a valid ReadRequest (HTTP 400, the message says why)."""


class SampleLimitExceeded(ValueError):
    """More samples than the org's query limit (HTTP 400, as Prometheus answers)."""


@dataclass(frozen=True, slots=True)
class ReadQuery:
    start_ms: int
    end_ms: int
    matchers: list[Matcher]


@dataclass(frozen=True, slots=True)
class ReadRequest:
    queries: list[ReadQuery]
    response_type: int  # SAMPLES or STREAMED_XOR_CHUNKS


def decode_read_request(body: bytes) -> ReadRequest:
    """A snappy-compressed ``ReadRequest``; :class:`BadReadRequest` for anything wrong."""
    declared = _snappy_length(body)
    if declared > MAX_DECODED_BYTES:
        raise BadReadRequest(
            f"snappy: decompressed body would be {declared} bytes, the limit is {MAX_DECODED_BYTES}"
        )
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body, output_len=declared))
        request = pb.ReadRequest.FromString(raw)
    except cramjam.DecompressionError as exc:
        raise BadReadRequest(f"snappy: corrupt block ({exc})") from None
    except ProtobufDecodeError as exc:
        raise BadReadRequest(f"body is not a valid protobuf ReadRequest ({exc})") from None
    if len(request.queries) > MAX_QUERIES:
        raise BadReadRequest(
            f"{len(request.queries)} queries in one request, at most {MAX_QUERIES}"
        )
    queries = []
    for query in request.queries:
        if len(query.matchers) > MAX_MATCHERS:
            raise BadReadRequest(f"a query has more than {MAX_MATCHERS} matchers")
        matchers = []
        for m in query.matchers:
            op = _OPS.get(m.type)
            if op is None:
                raise BadReadRequest(f"unknown matcher type {m.type}")
            if op in ("=~", "!~"):
                try:
                    anchored_regex(m.value)
                except re2.error as exc:
                    raise BadReadRequest(f"invalid regex {m.value!r}: {exc}") from None
            matchers.append(Matcher(m.name, op, m.value))
        if not matchers:
            raise BadReadRequest("a query needs at least one matcher")
        queries.append(ReadQuery(query.start_timestamp_ms, query.end_timestamp_ms, matchers))
    return ReadRequest(queries, _negotiate(list(request.accepted_response_types)))


def _negotiate(accepted: list[int]) -> int:
    """Prometheus's rule: no preference means SAMPLES, else the first type we speak."""
    if not accepted:
        return SAMPLES
    for wanted in accepted:
        if wanted in (SAMPLES, STREAMED_XOR_CHUNKS):
            return wanted
    raise BadReadRequest(f"server does not support any of the requested response types: {accepted}")


def _snappy_length(body: bytes) -> int:
    length = 0
    for i, byte in enumerate(body[:5]):
        length |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            return length
    raise BadReadRequest("snappy: invalid block header" if body else "empty body")


def read_series(
    querier: Querier,
    request: ReadRequest,
    *,
    max_series: int,
    max_samples: int,
    timeout_seconds: float,
) -> list[SeriesSet]:
    """Each query's series, in one read (raises the querier's SeriesLimitExceeded/ReadTimeout
    and :class:`SampleLimitExceeded`)."""
    results = []
    samples = 0
    with querier.reading(timeout_seconds=timeout_seconds):
        for query in request.queries:
            found = querier.select(
                query.matchers,
                start_ms=query.start_ms,
                end_ms=query.end_ms,
                max_series=max_series,
            )
            samples += len(found.timestamps)
            if samples > max_samples:
                raise SampleLimitExceeded(f"exceeded sample limit ({max_samples})")
            results.append(found)
    return results


# --- SAMPLES ----------------------------------------------------------------------------------


def encode_samples_response(results: Sequence[SeriesSet]) -> bytes:
    """A snappy-compressed ``ReadResponse`` with one ``QueryResult`` per query."""
    parts = []
    for found in results:
        records = _sample_records(found.timestamps, found.values)
        offsets = _record_offsets(found)
        series = []
        for row, labels in enumerate(found.labels):
            body = _labels_bytes(labels) + records[offsets[row] : offsets[row + 1]]
            series.append(_field(1, body))
        parts.append(_field(1, b"".join(series)))
    return bytes(cramjam.snappy.compress_raw(b"".join(parts)))


def _record_offsets(found: SeriesSet) -> list[int]:
    """Byte offsets of each row's samples in :func:`_sample_records`' output."""
    lengths = _sample_record_lengths(found.timestamps)
    ends = np.concatenate(([0], np.cumsum(lengths)))
    return ends[found.offsets].tolist()


def _varint_lengths(values: np.ndarray) -> np.ndarray:
    u = values.astype(np.int64).view(np.uint64)
    n = np.ones(len(u), np.int64)
    for j in range(1, 10):
        n += (u >> np.uint64(7 * j)) != 0
    return n


def _sample_record_lengths(timestamps: np.ndarray) -> np.ndarray:
    # tag + length byte + (tag, 8-byte double) + (tag, varint timestamp)
    return 2 + 9 + 1 + _varint_lengths(timestamps)


def _sample_records(timestamps: np.ndarray, values: np.ndarray) -> bytes:
    """``Sample{value=1, timestamp=2}`` as field 2 of a TimeSeries, for every sample at once."""
    n = len(timestamps)
    if not n:
        return b""
    nbytes = _varint_lengths(timestamps)
    u = timestamps.astype(np.int64).view(np.uint64)
    width = 12 + 10
    rows = np.zeros((n, width), np.uint8)
    rows[:, 0] = 0x12  # field 2, length-delimited
    rows[:, 1] = 10 + nbytes  # < 128: one byte
    rows[:, 2] = 0x09  # field 1, fixed64
    rows[:, 3:11] = np.ascontiguousarray(values, dtype="<f8").view(np.uint8).reshape(n, 8)
    rows[:, 11] = 0x10  # field 2, varint
    for j in range(10):
        group = ((u >> np.uint64(7 * j)) & np.uint64(0x7F)).astype(np.uint8)
        more = j < nbytes - 1
        rows[:, 12 + j] = group | np.where(more, 0x80, 0).astype(np.uint8)
    keep = np.arange(width)[None, :] < (12 + nbytes)[:, None]
    return rows[keep].tobytes()


def _labels_bytes(labels: dict[str, str]) -> bytes:
    return b"".join(
        _field(1, _field(1, name.encode()) + _field(2, value.encode()))
        for name, value in sorted(labels.items())
    )


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


# --- STREAMED_XOR_CHUNKS ----------------------------------------------------------------------


def encode_chunked_frames(results: Sequence[SeriesSet]):
    """Frames of the streamed response: one ``ChunkedReadResponse`` per series (a generator,
    so that the HTTP response streams)."""
    for index, found in enumerate(results):
        for row, labels in enumerate(found.labels):
            lo, hi = int(found.offsets[row]), int(found.offsets[row + 1])
            ts, vs = found.timestamps[lo:hi], found.values[lo:hi]
            message = pb.ChunkedReadResponse(query_index=index)
            series = message.chunked_series.add()
            for name, value in sorted(labels.items()):
                series.labels.add(name=name, value=value)
            for at in range(0, len(ts), SAMPLES_PER_CHUNK):
                t = ts[at : at + SAMPLES_PER_CHUNK]
                series.chunks.add(
                    min_time_ms=int(t[0]),
                    max_time_ms=int(t[-1]),
                    type=pb.Chunk.XOR,
                    data=xor_chunk(t.tolist(), vs[at : at + SAMPLES_PER_CHUNK].tolist()),
                )
            data = message.SerializeToString()
            yield _varint(len(data)) + struct.pack(">I", google_crc32c.value(data)) + data


class _Bits:
    """A big-endian bit stream, as Prometheus's ``bstream``."""

    __slots__ = ("bits", "value")

    def __init__(self) -> None:
        self.value = 0
        self.bits = 0

    def write(self, value: int, nbits: int) -> None:
        self.value = (self.value << nbits) | (value & ((1 << nbits) - 1))
        self.bits += nbits

    def to_bytes(self) -> bytes:
        pad = -self.bits % 8
        return (self.value << pad).to_bytes((self.bits + pad) // 8, "big")


def _put_uvarint(out: _Bits, value: int) -> None:
    for byte in _varint(value):
        out.write(byte, 8)


def _put_varint(out: _Bits, value: int) -> None:
    _put_uvarint(out, (value << 1) ^ (value >> 63) if value < 0 else value << 1)


def xor_chunk(timestamps: list[int], values: list[float]) -> bytes:
    """Prometheus's XOR chunk (``tsdb/chunkenc/xor.go``) of up to 65535 samples: a 2-byte
    sample count, the first timestamp (varint) and value (64 bits), the second timestamp's delta
    (uvarint) and value XOR, then delta-of-deltas in buckets and XORed values with leading and
    trailing zero counts."""
    out = _Bits()
    out.write(len(timestamps), 16)
    prev_t = prev_delta = 0
    prev_bits = 0
    leading = 0xFF
    trailing = 0
    for i, (t, v) in enumerate(zip(timestamps, values, strict=True)):
        bits = struct.unpack(">Q", struct.pack(">d", v))[0]
        if i == 0:
            _put_varint(out, t)
            out.write(bits, 64)
        elif i == 1:
            delta = t - prev_t
            _put_uvarint(out, delta)
            leading, trailing = _write_xor(out, bits, prev_bits, leading, trailing)
            prev_delta = delta
        else:
            delta = t - prev_t
            dod = delta - prev_delta
            if dod == 0:
                out.write(0, 1)
            elif -(1 << 13) + 1 <= dod <= 1 << 13:
                out.write(0b10, 2)
                out.write(dod, 14)
            elif -(1 << 16) + 1 <= dod <= 1 << 16:
                out.write(0b110, 3)
                out.write(dod, 17)
            elif -(1 << 19) + 1 <= dod <= 1 << 19:
                out.write(0b1110, 4)
                out.write(dod, 20)
            else:
                out.write(0b1111, 4)
                out.write(dod, 64)
            leading, trailing = _write_xor(out, bits, prev_bits, leading, trailing)
            prev_delta = delta
        prev_t = t
        prev_bits = bits
    return out.to_bytes()


def _write_xor(out: _Bits, bits: int, prev: int, leading: int, trailing: int) -> tuple[int, int]:
    delta = bits ^ prev
    if delta == 0:
        out.write(0, 1)
        return leading, trailing
    out.write(1, 1)
    new_leading = 64 - delta.bit_length()
    new_trailing = (delta & -delta).bit_length() - 1
    new_leading = min(new_leading, 31)  # 5 bits
    if leading != 0xFF and new_leading >= leading and new_trailing >= trailing:
        out.write(0, 1)
        out.write(delta >> trailing, 64 - leading - trailing)
        return leading, trailing
    sigbits = 64 - new_leading - new_trailing
    out.write(1, 1)
    out.write(new_leading, 5)
    out.write(sigbits & 0x3F, 6)  # 64 significant bits are written as 0
    out.write(delta >> new_trailing, sigbits)
    return new_leading, new_trailing
