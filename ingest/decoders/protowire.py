"""Vectorized protobuf wire-format reading over many messages at once, with numpy.

The remote-write decoder lays every TimeSeries of a request end to end in one buffer
(:func:`concat_messages`) and reads all of them together with these helpers, instead of touching
one protobuf object per series or per sample from Python (microseconds each, which dominated the
decode time). Reads are gathers at arrays of offsets: single bytes, or little-endian 64-bit words
from a zero-copy view of every 8-byte window of the buffer.

The helpers only accept the plain encodings that real senders produce. Whatever they do not
recognise (groups, varints longer than 8 bytes, unexpected layouts, more fields than a cap) is
reported back so that the caller hands that one message to the protobuf runtime, which stays the
judge of what is valid. These helpers never decide that a message is corrupt.

Wire format reminder: a field is ``tag = field_number << 3 | wire_type`` as a varint, then the
value: wire type 0 a varint, 1 eight bytes, 2 a varint length and that many bytes, 5 four bytes.
A varint stores 7 bits per byte, least significant first; the high bit marks "more bytes follow".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Zero bytes kept before the first and after the last message (see concat_messages), so that
# fixed-width reads around any message never leave the buffer.
PADDING = 32
_PAD = bytes(PADDING)

_U64 = np.uint64
_HIGH_BITS = _U64(0x8080_8080_8080_8080)
_LOW7 = _U64(0x7F)
_U32_MASK = _U64(0xFFFF_FFFF)
_MAX_FIELD_NUMBER = (1 << 29) - 1
_GROUP_SHIFTS = [(_U64(j), _U64(0x7F << (7 * j))) for j in range(1, 8)]
_BYTE_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)


@dataclass(slots=True)
class WireBuffer:
    """Messages laid end to end: ``data`` and two numpy views of it.

    ``u8[i]`` is byte ``i``; ``u64[i]`` is the little-endian 64-bit word of bytes ``i..i+7``
    (an overlapping, unaligned, zero-copy view).
    """

    data: bytes
    u8: np.ndarray
    u64: np.ndarray


def concat_messages(messages: list[bytes]) -> tuple[WireBuffer, np.ndarray, np.ndarray]:
    """``(buffer, starts, ends)``: message ``i`` is ``buffer.data[starts[i]:ends[i]]``."""
    lengths = np.fromiter(map(len, messages), np.int64, len(messages))
    ends = np.cumsum(lengths) + PADDING
    data = b"".join([_PAD, *messages, _PAD])
    u8 = np.frombuffer(data, np.uint8)
    u64 = np.ndarray(shape=(len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    return WireBuffer(data, u8, u64), ends - lengths, ends


def _bit_length(values: np.ndarray) -> np.ndarray:
    """Position of the highest set bit plus one (0 for 0), for values with sparse set bits.

    Read from the exponent of the float64 conversion, which is exact here: callers only pass
    values whose set bits span fewer than 53 positions (high bits of a few bytes).
    """
    return np.maximum((values.astype(np.float64).view(np.int64) >> 52) - 1022, 0)


def _varint_bytes_of_word(words: np.ndarray) -> np.ndarray:
    """Length of the varint starting at the lowest byte of each word (0 if longer than 8)."""
    clear = ~words & _HIGH_BITS  # a byte whose high bit is clear ends the varint
    lowest = clear & (~clear + _U64(1))  # 0, or 2**(8n - 1) for an n-byte varint
    return _bit_length(lowest) // 8


def _varint_values(words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Values of the varints (``lengths``: 1 to 8 bytes) at the lowest bytes of ``words``."""
    masked = words & _BYTE_MASKS[lengths]
    values = masked & _LOW7
    longest = int(lengths.max()) if len(lengths) else 1
    for shift, group in _GROUP_SHIFTS[: longest - 1]:
        values |= (masked >> shift) & group
    return values


def read_varints(
    wire: WireBuffer, pos: np.ndarray, limit: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read one varint at each ``pos``, which must end by ``limit``.

    Returns ``(values as uint64, byte lengths, ok)``; ``ok`` is False where the varint runs past
    ``limit`` or is longer than 8 bytes (values of 2**56 and above, negative int64s).
    """
    first = wire.u8[pos]
    if not (first & 0x80).any():
        return first.astype(_U64), np.ones(len(pos), np.int64), pos < limit
    words = wire.u64[pos]
    lengths = _varint_bytes_of_word(words)
    return _varint_values(words, lengths), lengths, (lengths > 0) & (pos + lengths <= limit)


def read_doubles(wire: WireBuffer, at: np.ndarray) -> np.ndarray:
    """The little-endian float64 at each offset, bit patterns (NaN payloads) kept."""
    return wire.u64[at].view(np.float64)


def truncate_uint32(values: np.ndarray) -> np.ndarray:
    """What a protobuf runtime keeps of a varint read into a 32-bit field."""
    return (values & _U32_MASK).astype(np.uint32)


def read_samples(
    wire: WireBuffer, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``Sample{double value = 1; int64 timestamp = 2}`` messages in their usual layouts.

    Each message ``[starts[i], ends[i])`` is recognised when it is ``[0x09 <8 bytes>]
    [0x10 <varint>]`` (either field left out when 0) and nothing else. Returns
    ``(values, timestamps, recognised)``; the caller reads the others some other way.
    """
    size = ends - starts
    has_value = (wire.u8[starts] == 0x09) & (size >= 9)
    ts_tag = np.where(has_value, starts + 9, starts)
    has_ts = (ts_tag < ends) & (wire.u8[ts_tag] == 0x10)
    stamp, stamp_len, stamp_ok = read_varints(wire, ts_tag + 1, ends)
    has_ts &= stamp_ok & (ts_tag + 1 + stamp_len == ends)
    recognised = has_ts | (ts_tag == ends)  # (ts_tag == ends: no timestamp field, nothing more)
    values = np.where(has_value, read_doubles(wire, starts + 1), 0.0)
    timestamps = np.where(has_ts, stamp.view(np.int64), 0)
    return values, timestamps, recognised


@dataclass(slots=True)
class FieldTable:
    """Every field of a set of messages, one row per field, in wire order within a message.

    ``msg`` indexes the ``starts``/``ends`` given to :func:`scan_fields`; ``step`` is the field's
    position within its message. For wire type 2, ``data_start``/``data_end`` delimit the bytes;
    for wire type 0, ``varint`` holds the value; for types 1 and 5, ``data_start`` is where the
    8 or 4 bytes start. ``unparsed[m]`` is True for messages the scan gave up on (their rows are
    left out): the caller must decode those with the protobuf runtime.
    """

    msg: np.ndarray
    step: np.ndarray
    field: np.ndarray
    wire_type: np.ndarray
    data_start: np.ndarray
    data_end: np.ndarray
    varint: np.ndarray
    unparsed: np.ndarray


def scan_fields(
    wire: WireBuffer, starts: np.ndarray, ends: np.ndarray, *, max_fields: int
) -> FieldTable:
    """Split each message ``[starts[i], ends[i])`` into its fields, all messages at once.

    One numpy pass per field position, so the cost grows with the number of fields of the
    longest message; messages with more than ``max_fields`` fields are marked unparsed.
    """
    unparsed = np.zeros(len(starts), bool)
    msg = np.flatnonzero(starts < ends)
    pos = starts[msg]
    end = ends[msg]
    rows: list[tuple[np.ndarray, ...]] = []
    for step in range(max_fields):
        if not len(msg):
            break
        tag, tag_len, tag_ok = read_varints(wire, pos, end)
        field = (tag >> _U64(3)).astype(np.int64)
        wire_type = (tag & _U64(7)).astype(np.int64)
        after_tag = pos + tag_len
        value, value_len, value_ok = read_varints(wire, after_tag, end)
        is_varint = wire_type == 0
        is_len = wire_type == 2
        is_fixed64 = wire_type == 1
        is_fixed32 = wire_type == 5
        data_start = np.where(is_len, after_tag + value_len, after_tag)
        room = np.maximum(end - data_start, 0)
        len_ok = is_len & value_ok & (value <= room.astype(_U64))
        length = np.where(len_ok, value, _U64(0)).astype(np.int64)
        size = np.where(
            is_varint, value_len, np.where(is_fixed64, 8, np.where(is_fixed32, 4, length))
        )
        data_end = data_start + size
        good = (
            tag_ok
            & (field > 0)
            & (field <= _MAX_FIELD_NUMBER)
            & ((is_varint & value_ok) | len_ok | ((is_fixed64 | is_fixed32) & (data_end <= end)))
        )
        if not good.all():
            unparsed[msg[~good]] = True
            msg, end, field, wire_type = msg[good], end[good], field[good], wire_type[good]
            data_start, data_end, value = data_start[good], data_end[good], value[good]
        rows.append((msg, np.full(len(msg), step), field, wire_type, data_start, data_end, value))
        more = data_end < end
        msg, pos, end = msg[more], data_end[more], end[more]
    if len(msg):
        unparsed[msg] = True
    if rows:
        cols = [np.concatenate(col) for col in zip(*rows, strict=True)]
    else:
        cols = [np.zeros(0, np.int64)] * 6 + [np.zeros(0, _U64)]
    keep = ~unparsed[cols[0]]
    if not keep.all():
        cols = [col[keep] for col in cols]
    return FieldTable(*cols, unparsed=unparsed)


def decode_packed_uint32(
    wire: WireBuffer, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode packed ``repeated uint32`` regions ``[starts[i], ends[i])``.

    Returns ``(values as uint32, count per region, ok per region)``: values of region ``i`` are
    ``values[offsets[i]:offsets[i + 1]]`` with ``offsets = concat([0], cumsum(counts))``. Like a
    protobuf runtime, varints are truncated to 32 bits. A region is not ok (its values are then
    meaningless) when its last varint is unterminated or one is longer than 5 bytes.
    """
    regions = len(starts)
    ok = np.ones(regions, bool)
    lengths = ends - starts
    region_end = np.cumsum(lengths)
    region_start = region_end - lengths
    total = int(region_end[-1]) if regions else 0
    if not total:
        return np.zeros(0, np.uint32), np.zeros(regions, np.int64), ok
    # the regions' bytes side by side
    data = wire.u8[np.arange(total) + np.repeat(starts - region_start, lengths)]
    more = data >= 0x80  # a varint continues after this byte
    if not more.any():  # every value below 128: one byte each
        return data.astype(np.uint32), lengths, ok
    nonempty = lengths > 0
    ok[nonempty] = ~more[region_end[nonempty] - 1]
    if not ok.all():
        # An unterminated varint would run into the next region: read those regions as empty.
        keep = np.repeat(ok, lengths)
        data, more = data[keep], more[keep]
        lengths = np.where(ok, lengths, 0)
        region_end = np.cumsum(lengths)
        region_start = region_end - lengths
    last = np.flatnonzero(~more)  # the last byte of each varint
    first = np.empty_like(last)
    first[:1] = 0
    first[1:] = last[:-1] + 1
    size = last - first + 1
    too_long = size > 5
    if too_long.any():
        ok[np.searchsorted(region_end, last[too_long], side="right")] = False
        size = np.minimum(size, 5)
    # 7 bits per byte, least significant first; uint32 arithmetic truncates like protobuf does
    low = (data & 0x7F).astype(np.uint32)
    values = low[first]
    for j in range(1, int(size.max())):
        longer = np.flatnonzero(size > j)
        values[longer] |= low[first[longer] + j] << np.uint32(7 * j)
    counts = np.searchsorted(last, region_end) - np.searchsorted(last, region_start)
    return values, counts, ok


@dataclass(slots=True)
class PeeledSamples:
    """Samples read from the end of each TimeSeries by :func:`peel_trailing_samples`."""

    msg: np.ndarray  # which series
    rank: np.ndarray  # 0 for the series' last sample, 1 for the one before, ...
    values: np.ndarray  # float64
    timestamps: np.ndarray  # int64
    remaining_end: np.ndarray  # per series: where the bytes before its trailing samples end
    exhausted: np.ndarray  # per series: more than max_samples samples were peeled


def peel_trailing_samples(
    wire: WireBuffer, starts: np.ndarray, ends: np.ndarray, *, max_samples: int
) -> PeeledSamples:
    """Read the ``Sample`` fields (field 2) at the end of each TimeSeries, last one first.

    Encoders write a TimeSeries' labels first and its samples after them, each sample as
    ``0x12 len [0x09 <8-byte double>] 0x10 <varint timestamp>`` (the value is left out when it
    is 0). This recognises that layout backwards from the end of each series, one sample per
    numpy pass, until it no longer matches. What is left in front, ``remaining_end``, is only
    *assumed* to hold the labels: the caller must check that it parses as complete fields with
    no samples, exemplars or histograms among them (a cache hit on those exact bytes proves it).
    When it does, the split is the protobuf parse of the series, because parsing runs left to
    right through complete fields. Samples with timestamp 0 or beyond 2**56, exemplars,
    histograms and unusual layouts stop the peeling early; the prefix check then fails and the
    caller uses the protobuf runtime.
    """
    u8, u64 = wire.u8, wire.u64
    remaining_end = ends.copy()
    exhausted = np.zeros(len(starts), bool)
    msg = np.flatnonzero(ends - starts >= 4)  # the shortest sample field is 4 bytes
    found: list[tuple[np.ndarray, ...]] = []
    for rank in range(max_samples + 1):
        if not len(msg):
            break
        if rank == max_samples:
            exhausted[msg] = True
            break
        end = remaining_end[msg]
        # The timestamp varint ends the series: its last byte is the top byte of this word.
        last_word = u64[end - 8]
        # bytes of the varint: the top one, plus those below it whose high bit is set
        clear = ~last_word & _HIGH_BITS
        clear &= ~(_U64(0x80) << _U64(56))  # the top byte itself must end the varint
        top_clear_below = _bit_length(clear) // 8  # 0 if none
        k = 8 - top_clear_below  # varint length: 1..8
        tag_at = end - k - 1
        candidate = (last_word < (_U64(0x80) << _U64(56))) & (u8[tag_at] == 0x10)
        if not candidate.any():
            break
        rows = np.flatnonzero(candidate)
        end, k, tag_at, last_word = end[rows], k[rows], tag_at[rows], last_word[rows]
        room = end - starts[msg[rows]]
        # "0x12 <len> 0x09" before the 8 value bytes, or "0x12 <len>" right before the tag: three
        # or two bytes compared at once in the low bytes of a word
        head = k.astype(_U64) << _U64(8)
        full = ((u64[tag_at - 11] & _U64(0xFF_FFFF)) == (head + _U64(0x09_0A12))) & (room >= k + 12)
        zero_value = (
            ~full & ((u64[tag_at - 2] & _U64(0xFFFF)) == (head + _U64(0x0112))) & (room >= k + 3)
        )
        matched = full | zero_value
        if not matched.any():
            break
        if not matched.all():
            rows, end, k, tag_at, last_word = (
                a[matched] for a in (rows, end, k, tag_at, last_word)
            )
            full = full[matched]
        values = np.where(full, u64[np.where(full, tag_at - 8, 0)].view(np.float64), 0.0)
        # move the varint down to the low bytes of the word, then decode it
        varint_word = last_word >> (8 * (8 - k)).astype(_U64)
        timestamps = _varint_values(varint_word, k).view(np.int64)
        series = msg[rows]
        found.append((series, np.full(len(series), rank), values, timestamps))
        remaining_end[series] -= np.where(full, k + 12, k + 3)
        msg = series[remaining_end[series] - starts[series] >= 4]
    if found:
        m, r, v, t = (np.concatenate(col) for col in zip(*found, strict=True))
    else:
        m, r = np.zeros(0, np.int64), np.zeros(0, np.int64)
        v, t = np.zeros(0), np.zeros(0, np.int64)
    return PeeledSamples(m, r, v, t, remaining_end, exhausted)


@dataclass(slots=True)
class PlainLabels:
    """What :func:`read_plain_labels` found: one row per label, the labels of a message
    consecutive and in wire order; ``complete[m]`` says message ``m`` was read to its end."""

    msg: np.ndarray
    label_start: np.ndarray  # the Label message's bytes
    label_end: np.ndarray  # (the value's bytes end here too)
    name_start: np.ndarray
    name_end: np.ndarray
    value_start: np.ndarray
    complete: np.ndarray


def read_plain_labels(
    wire: WireBuffer, starts: np.ndarray, ends: np.ndarray, *, max_labels: int
) -> PlainLabels:
    """Read messages that hold nothing but ``repeated Label labels = 1`` (a remote-write 1.0
    TimeSeries' labels) in the encoding every protobuf encoder writes for short labels:
    ``0x0A len [0x0A len name 0x12 len value]`` with a 1..127-byte name and value and a Label
    under 128 bytes (every length one byte).

    One numpy pass per label position. A message with anything else (another field, an empty
    or left-out string, a longer label, more than ``max_labels`` labels) is not ``complete``
    and has no rows; the caller reads it some other way.
    """
    u8 = wire.u8
    complete = np.zeros(len(starts), bool)
    msg = np.flatnonzero(starts < ends)
    pos, end = starts[msg], ends[msg]
    rows: list[tuple[np.ndarray, ...]] = []
    for _ in range(max_labels):
        if not len(msg):
            break
        # (every read stays inside the buffer: at most 3 bytes past a message's end)
        size, name_len = u8[pos + 1], u8[pos + 3]
        name_end = np.minimum(pos + 4 + name_len, end)
        value_len = u8[name_end + 1]
        label_end = pos + 2 + size
        ok = (u8[pos] == 0x0A) & (u8[pos + 2] == 0x0A) & (u8[name_end] == 0x12)
        # lengths 1..127 (as uint8, 0 - 1 wraps to 255)
        ok &= (size < 0x80) & (name_len - 1 < 0x7F) & (value_len - 1 < 0x7F)
        ok &= (label_end <= end) & (name_end + 2 + value_len == label_end)
        if not ok.all():
            msg, pos, end, name_end, label_end = (
                a[ok] for a in (msg, pos, end, name_end, label_end)
            )
        rows.append((msg, pos + 2, label_end, pos + 4, name_end))
        done = label_end == end
        complete[msg[done]] = True
        msg, pos, end = msg[~done], label_end[~done], end[~done]
    if not rows:
        empty = np.zeros(0, np.int64)
        return PlainLabels(empty, empty, empty, empty, empty, empty, complete)
    cols = [np.concatenate(col) for col in zip(*rows, strict=True)]
    order = np.lexsort((cols[1], cols[0]))  # by message, then by position in it
    order = order[complete[cols[0][order]]]
    msg, label_start, label_end, name_start, name_end = (col[order] for col in cols)
    return PlainLabels(msg, label_start, label_end, name_start, name_end, name_end + 2, complete)


def encode_len_fields(tag: int, payloads: list[bytes]) -> bytes:
    """Length-delimited fields with this (one-byte) tag, in canonical (shortest) encoding."""
    head = bytes((tag,))
    return b"".join(head + encode_varint(len(p)) + p for p in payloads)


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
