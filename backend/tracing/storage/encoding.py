"""Columnar, compressed span blocks: many spans of one org, sorted by (trace, start), column by
column.

Each column is transformed so that its bytes repeat, narrowed to the smallest integer type that
holds it (byte-shuffled when wider than a byte) and compressed with zstd on its own, so a read
decompresses only the columns it needs:

- traces: the distinct trace ids (16 bytes each), each one's span count and first start;
- spans: span ids (8 bytes), parents as a back-reference to a span of the block (the distance,
  small) or to an id kept aside (a parent outside the block), start as the offset from the
  trace's first start, duration, kind, status, flags;
- catalog ids (service, operation, resource) and rare texts (status message, scope, trace
  state) as indexes into small per-block dictionaries;
- attributes key-major: per key of the block's key dictionary, the spans that have it (delta
  of the span index) and their value (delta of the index into the block's value dictionary,
  whose values are numbered in order of first use, so a high-cardinality key's values count
  up by one); the value dictionary is one JSON array, kept with the byte offset of every
  value so a reader can decode only the values it needs;
- events and links: the JSON of the few spans that have them.

Everything but the attribute dictionary build is vectorised with numpy; decoding is bit-exact
(the tests round-trip random spans).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from itertools import chain, count
from typing import Any

import numpy as np

from backend.zstd_contexts import compressor, decompressor

_ZSTD_LEVEL = 3
_MAGIC = b"TSB1"

# Column names in payload order.
COLUMNS = (
    "trace_ids",
    "trace_counts",
    "trace_starts",
    "span_ids",
    "parents",
    "parent_ids",
    "start_offsets",
    "durations",
    "kinds",
    "statuses",
    "flags",
    "operations",
    "operation_dict",
    "services",
    "service_dict",
    "resources",
    "resource_dict",
    "texts",
    "text_dict",
    "attr_keys",
    "attr_key_counts",
    "attr_spans",
    "attr_values",
    "value_offsets",
    "value_dict",
    "extras_spans",
    "extras_offsets",
    "extras",
)


_DTYPES = (np.uint8, np.uint16, np.uint32, np.uint64)


def _zigzag(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.int64)
    return ((v << 1) ^ (v >> 63)).view(np.uint64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    # shift and mask in the narrow type, widen once
    one = u.dtype.type(1)
    return (u >> one).astype(np.int64) ^ -((u & one).astype(np.int64))


def pack_ints(values: np.ndarray) -> bytes:
    """Signed integers, zigzagged, narrowed to the smallest unsigned type, byte-shuffled."""
    u = _zigzag(np.asarray(values, dtype=np.int64))
    top = int(u.max()) if len(u) else 0
    code = next(i for i, t in enumerate(_DTYPES) if top <= np.iinfo(t).max)
    narrow = u.astype(_DTYPES[code])
    width = narrow.dtype.itemsize
    raw = narrow.view(np.uint8).reshape(-1, width).T.tobytes() if width > 1 else narrow.tobytes()
    return bytes([code]) + compressor(_ZSTD_LEVEL).compress(raw)


def unpack_ints(blob: bytes) -> np.ndarray:
    dtype = _DTYPES[blob[0]]
    width = np.dtype(dtype).itemsize
    data = np.frombuffer(decompressor().decompress(blob[1:]), dtype=np.uint8)
    if width > 1:
        data = np.ascontiguousarray(data.reshape(width, -1).T)
    return _unzigzag(data.view(dtype).reshape(-1))


def pack_bytes(data: bytes) -> bytes:
    return compressor(_ZSTD_LEVEL).compress(data)


def unpack_bytes(blob: bytes) -> bytes:
    return decompressor().decompress(blob) if blob else b""


def _delta(x: np.ndarray) -> np.ndarray:
    d = np.empty_like(x)
    if len(x):
        d[0] = x[0]
        np.subtract(x[1:], x[:-1], out=d[1:])
    return d


def _segmented_delta(x: np.ndarray, counts: np.ndarray) -> np.ndarray:
    d = _delta(x)
    starts = np.cumsum(counts) - counts
    d[starts[counts > 0]] = x[starts[counts > 0]]
    return d


def _segmented_cumsum(d: np.ndarray, counts: np.ndarray) -> np.ndarray:
    cs = np.cumsum(d)
    ends = np.cumsum(counts)
    base = np.zeros(len(counts), dtype=cs.dtype)
    base[1:] = np.where(ends[:-1] > 0, cs[np.maximum(ends[:-1] - 1, 0)], 0)
    return cs - np.repeat(base, counts)


def value_text(value: Any) -> str | None:
    """An attribute value as text, the way PostgreSQL's ``jsonb ->> key`` renders it."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def jsonb_key_order(key: str) -> tuple[int, bytes]:
    """The order in which PostgreSQL's jsonb keeps object keys (length, then bytes)."""
    raw = key.encode()
    return len(raw), raw


@dataclass(slots=True)
class SpanRows:
    """Spans as columns, in any order (``encode`` sorts them). Attributes, events and links are
    parsed JSON (``None`` when absent)."""

    trace_ids: list[bytes]
    span_ids: list[bytes]
    parent_ids: list[bytes | None]
    service_ids: np.ndarray
    operation_ids: np.ndarray
    kinds: np.ndarray
    starts: np.ndarray
    durations: np.ndarray
    statuses: np.ndarray
    status_messages: list[str | None]
    resource_ids: np.ndarray
    scopes: list[str | None]
    attributes: list[dict | None] | AttrColumns
    events: list[list | None]
    links: list[list | None]
    flags: np.ndarray
    trace_states: list[str | None]

    def __len__(self) -> int:
        return len(self.span_ids)


@dataclass(slots=True)
class Summary:
    n_spans: int
    n_traces: int
    min_start_ns: int
    max_start_ns: int
    min_duration_ns: int
    max_duration_ns: int
    has_error: bool
    service_ids: list[int]
    operation_ids: list[int]
    attribute_keys: list[str]
    trace_keys: list[int]  # the trace index: see ``trace_key``
    service_counts: list[int]  # spans of each of ``service_ids``, in that order
    prefix_tokens: list[int]  # the short-id index: see ``prefix_tokens``


_encode_str = json.encoder.encode_basestring  # (the C one: json.dumps(str) for ensure_ascii=False)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def value_tokens(values: list) -> list:
    """Attribute values as the columns' tokens: a string as it is, any other value as (its
    type's name, its JSON). Raises TypeError for a value JSON cannot hold (bytes)."""
    if not set(map(type, values)) - {str}:
        return values
    return [v if type(v) is str else (type(v).__name__, _json_text(v)) for v in values]


def trace_key(trace_id: bytes) -> int:
    """The trace index's 64-bit key of a trace id: the low half (64-bit B3 trace ids are
    left-padded with zeros, so the high half would collide)."""
    return int.from_bytes(trace_id[8:16], "big", signed=True)


# The short-id index: per block, one token per (trace, length) for the leading digits of each
# trace id as displayed, at these lengths (hex digits), so a lookup of a prefix decodes only the
# blocks holding a trace with the same leading digits. Several lengths: ids are often random
# (6 digits already pick ~1 trace in 16 million), but some generators put a clock or a
# constant in front (X-Ray ids start with the epoch second; the bench's ids with a salt), where
# only longer digits tell traces apart; 16 digits is a whole 64-bit id or half a 128-bit one.
# Tokens are 32-bit (6 digits as themselves, the others hashed): a token shared by chance
# only makes a block a candidate, whose ids are then compared.
PREFIX_TOKEN_DIGITS = (6, 16, 30)


def _mix(x: np.ndarray, seed: int) -> np.ndarray:
    """A 64-bit finalizer (splitmix64's), wrapping uint64 arithmetic."""
    x = x ^ np.uint64(seed)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _tokens(hi: np.ndarray, lo: np.ndarray, digits: int) -> np.ndarray:
    """The int32 tokens of the leading ``digits`` hex digits of shown ids split into their
    high and low 64 bits (big-endian): 6 digits as themselves, longer ones hashed."""
    if digits == 6:
        return (hi >> np.uint64(40)).astype(np.int32)
    if digits == 16:
        return (_mix(hi, 16) >> np.uint64(32)).astype(np.uint32).view(np.int32)
    # 30: all of the high half, the low half's first 14 digits
    mixed = _mix(_mix(hi, 30) ^ (lo >> np.uint64(8)), 31)
    return (mixed >> np.uint64(32)).astype(np.uint32).view(np.int32)


def _halves(shown: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    words = shown.reshape(-1, 16).view(">u8")
    return words[:, 0].astype(np.uint64), words[:, 1].astype(np.uint64)


def prefix_tokens(trace_ids: list[bytes]) -> list[int]:
    """The distinct short-id tokens of these traces, sorted (a block's summary)."""
    ids = np.frombuffer(b"".join(trace_ids), dtype=np.uint8).reshape(-1, 16)
    short = ~ids[:, :8].any(axis=1)  # 64-bit ids: shown as their low half, 16 digits
    shown = ids.copy()
    shown[short, :8] = ids[short, 8:]
    shown[short, 8:] = 0
    hi, lo = _halves(shown)
    parts = [_tokens(hi, lo, 6), _tokens(hi, lo, 16), _tokens(hi[~short], lo[~short], 30)]
    return np.unique(np.concatenate(parts)).tolist()


def prefix_token(prefix: str) -> int | None:
    """The token every trace whose shown id starts with the hex ``prefix`` has (of the
    longest indexed length the prefix covers), or None if the prefix is too short."""
    digits = [d for d in PREFIX_TOKEN_DIGITS if d <= len(prefix)]
    if not digits:
        return None
    padded = np.frombuffer(bytes.fromhex(prefix[: digits[-1]].ljust(32, "0")), dtype=np.uint8)
    hi, lo = _halves(padded.copy())
    return int(_tokens(hi, lo, digits[-1])[0])


def _dictionary(values: list) -> tuple[np.ndarray, list]:
    index: dict = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), np.int64, len(values))
    return codes, list(index)


def first_use(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``codes`` renumbered by first use, and the old number of each new one."""
    distinct, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    ranked = np.argsort(first)
    renumber = np.empty(len(distinct), dtype=np.int64)
    renumber[ranked] = np.arange(len(distinct))
    return renumber[inverse.reshape(-1)], distinct[ranked]


def _parent_distances(
    parent_ids: list[bytes | None], order: np.ndarray, trace_no: np.ndarray, span_raw: np.ndarray
) -> tuple[np.ndarray, bytes]:
    """Per span of the block (``order`` of the rows; ``trace_no`` and the span ids
    ``span_raw``, (n, 8) uint8, in block order), how far back its parent's row is in the
    same trace (the first row with that id; negative, less ``1 << 40``, for a parent after
    its child), or ``-k`` for the ``k``-th parent id kept aside (not in the block's trace),
    0 for none; and the ids kept aside."""
    n = len(order)
    parents = np.zeros(n, dtype=np.int64)
    has = np.fromiter(map(bool, parent_ids), dtype=bool, count=n)[order]
    if not has.any():
        return parents, b""
    raw = np.frombuffer(b"".join([p or _NO_PARENT for p in parent_ids]), np.uint8)
    parent_raw = raw.reshape(-1, 8)[order]
    # (trace number, span id) as 16 bytes that sort as the pair; the first row of each
    # comes first among equals (a stable sort), and a parent finds it with a binary search
    trace_be = trace_no.astype(">u8").view(np.uint8).reshape(-1, 8)
    keys = np.hstack([trace_be, span_raw]).view("S16").reshape(-1)
    wanted = np.hstack([trace_be, parent_raw]).view("S16").reshape(-1)
    sorter = np.argsort(keys, kind="stable")
    at = np.minimum(np.searchsorted(keys[sorter], wanted), n - 1)
    rows = np.arange(n)
    j = sorter[at]
    inside = has & (keys[j] == wanted) & (j != rows)
    distance = rows - j
    parents[inside] = np.where(distance[inside] < 0, distance[inside] - (1 << 40), distance[inside])
    aside = has & ~inside
    parents[aside] = -np.arange(1, int(aside.sum()) + 1)
    return parents, parent_raw[aside].tobytes()


_NO_PARENT = bytes(8)


def _ints_dictionary(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    distinct, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), distinct.astype(np.int64)


@dataclass(slots=True)
class AttrColumns:
    """The attributes of ``n`` spans as flat entries: entry ``i`` is key ``key_names[keys[i]]``
    with value ``tokens[values[i]]`` on span ``spans[i]``; a span's entries keep its key order.
    A token is the value itself when it is a ``str``, else ``(type name, JSON text)`` (1, 1.0
    and True differ). The outbox keeps spans' attributes this way (no dict per span), and
    ``encode`` takes them as they are; ``attr_columns`` makes them from dicts."""

    spans: np.ndarray  # int64, span index of each entry
    keys: np.ndarray  # int64, index into key_names
    values: np.ndarray  # int64, index into tokens
    key_names: list[str]
    tokens: list

    def take(self, idx: np.ndarray, n: int) -> AttrColumns:
        """The entries of the spans ``idx`` (of ``n``), renumbered as their position in it."""
        where = np.full(n, -1, dtype=np.int64)
        where[idx] = np.arange(len(idx))
        spans = where[self.spans]
        keep = spans >= 0
        return AttrColumns(
            spans[keep], self.keys[keep], self.values[keep], self.key_names, self.tokens
        )

    def dicts(self, n: int) -> list[dict | None]:
        """Per span, its attributes as a dict (None when it has none)."""
        out: list[dict | None] = [None] * n
        names, tokens = self.key_names, self.tokens
        for s, k, v in zip(
            self.spans.tolist(), self.keys.tolist(), self.values.tolist(), strict=True
        ):
            t = tokens[v]
            d = out[s]
            if d is None:
                d = out[s] = {}
            d[names[k]] = t if type(t) is str else json.loads(t[1])
        return out

    def texts(self, key: str, n: int) -> list[str | None]:
        """Per span, the value of ``key`` as ``jsonb ->> key`` renders it (None: absent)."""
        out: list[str | None] = [None] * n
        try:
            k = self.key_names.index(key)
        except ValueError:
            return out
        mine = self.keys == k
        tokens = self.tokens
        for s, v in zip(self.spans[mine].tolist(), self.values[mine].tolist(), strict=True):
            t = tokens[v]
            out[s] = t if type(t) is str else value_text(json.loads(t[1]))
        return out


def attr_columns(attributes: list[dict | None]) -> AttrColumns:
    """Spans' attribute dicts as :class:`AttrColumns` (the loops over entries run in C: map,
    chain and dict.fromkeys). Raises TypeError for a value JSON cannot hold (bytes)."""
    dicts = [a or {} for a in attributes]
    lengths = np.fromiter(map(len, dicts), np.int64, len(dicts))
    total = int(lengths.sum())
    names = dict(zip(dict.fromkeys(chain.from_iterable(dicts)), count()))
    keys = np.fromiter(map(names.__getitem__, chain.from_iterable(dicts)), np.int64, total)
    values = value_tokens(list(chain.from_iterable(map(dict.values, dicts))))
    tokens = dict(zip(dict.fromkeys(values), count()))
    codes = np.fromiter(map(tokens.__getitem__, values), np.int64, total)
    spans = np.repeat(np.arange(len(dicts), dtype=np.int64), lengths)
    return AttrColumns(spans, keys, codes, list(names), list(tokens))


def attr_columns_concat(parts: list[tuple[AttrColumns, int]]) -> AttrColumns:
    """Several spans' :class:`AttrColumns` (each with its span count) as one, the spans of
    each part after those of the previous; equal keys and tokens share one number."""
    # every part's keys and tokens numbered by first appearance, in C (dict.fromkeys, map)
    names = dict(zip(dict.fromkeys(chain.from_iterable(c.key_names for c, _ in parts)), count()))
    tokens = dict(zip(dict.fromkeys(chain.from_iterable(c.tokens for c, _ in parts)), count()))
    spans, keys, values = [], [], []
    offset = 0
    for cols, n in parts:
        key_map = np.fromiter(map(names.__getitem__, cols.key_names), np.int64, len(cols.key_names))
        token_map = np.fromiter(map(tokens.__getitem__, cols.tokens), np.int64, len(cols.tokens))
        spans.append(cols.spans + offset)
        keys.append(key_map[cols.keys] if len(cols.keys) else cols.keys)
        values.append(token_map[cols.values] if len(cols.values) else cols.values)
        offset += n
    empty = np.zeros(0, dtype=np.int64)
    return AttrColumns(
        np.concatenate(spans) if spans else empty,
        np.concatenate(keys) if keys else empty,
        np.concatenate(values) if values else empty,
        list(names),
        list(tokens),
    )


def _narrow(values: np.ndarray, bound: int) -> np.ndarray:
    """``values`` (all in ``[0, bound)``) as int16 when they fit: numpy's stable sort (also
    ``unique``'s) of 16-bit integers is a radix sort, the same order in linear time."""
    return values.astype(np.int16) if bound <= 1 << 15 else values


def encode(rows: SpanRows) -> tuple[bytes, Summary]:
    """One block of spans: the payload and its summary for the block table."""
    n = len(rows)
    # (numpy's "S" scalars drop trailing NUL bytes: ids leave these arrays as raw buffers)
    tid = np.frombuffer(b"".join(rows.trace_ids), dtype="S16")
    order = np.lexsort((np.frombuffer(b"".join(rows.span_ids), dtype="S8"), rows.starts, tid))
    tid = tid[order]
    starts = rows.starts[order].astype(np.int64)
    span_raw = np.frombuffer(b"".join(rows.span_ids), dtype=np.uint8).reshape(-1, 8)[order]
    span_bytes = span_raw.tobytes()
    new_trace = np.ones(n, dtype=bool)
    new_trace[1:] = tid[1:] != tid[:-1]
    trace_first = np.flatnonzero(new_trace)
    counts = np.diff(np.append(trace_first, n))
    trace_starts = starts[trace_first]
    trace_no = np.cumsum(new_trace) - 1
    offsets = starts - trace_starts[trace_no]

    parents, outside = _parent_distances(rows.parent_ids, order, trace_no, span_raw)
    op_codes, op_dict = _ints_dictionary(rows.operation_ids[order])
    sv_codes, sv_dict = _ints_dictionary(rows.service_ids[order])
    rs_codes, rs_dict = _ints_dictionary(rows.resource_ids[order])
    # the (message, scope, trace state) triples numbered in any order, then by first use in
    # the block's (the triples made and hashed in C: zip, dict)
    triples = list(zip(rows.status_messages, rows.scopes, rows.trace_states, strict=True))
    numbers = dict(zip(dict.fromkeys(triples), count()))
    text_codes, first = first_use(
        np.fromiter(map(numbers.__getitem__, triples), np.int64, n)[order]
    )
    distinct_texts = list(numbers)
    text_dict = [distinct_texts[t] for t in first.tolist()]

    trace_bytes = tid[trace_first].tobytes()
    distinct_traces = [trace_bytes[16 * t : 16 * t + 16] for t in range(len(trace_first))]

    # attributes, key-major: the (span, key, value) entries in block order (by span, each
    # span's keys in its own order), keys numbered by first use in that order, then sorted by
    # key (stable, so by span within a key), values numbered by first use in that order
    cols = (
        rows.attributes
        if isinstance(rows.attributes, AttrColumns)
        else attr_columns([rows.attributes[r] for r in range(n)])
    )
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    entry_pos = position[cols.spans]
    by_span = np.argsort(_narrow(entry_pos, n), kind="stable")
    entry_pos = entry_pos[by_span]
    entry_keys = cols.keys[by_span]
    key_codes, key_ranked = first_use(_narrow(entry_keys, len(cols.key_names)))
    key_list = [cols.key_names[k] for k in key_ranked.tolist()]
    by_key = np.argsort(_narrow(key_codes, len(key_list)), kind="stable")
    attr_spans = entry_pos[by_key]
    value_codes, ranked = first_use(_narrow(cols.values[by_span][by_key], len(cols.tokens)))
    block_tokens = list(map(cols.tokens.__getitem__, ranked.tolist()))
    if all(map(str.__instancecheck__, block_tokens)):  # (the usual case: loops in C)
        value_texts = list(map(_encode_str, block_tokens))
    else:
        value_texts = [_encode_str(t) if type(t) is str else t[1] for t in block_tokens]
    key_counts = np.bincount(key_codes, minlength=len(key_list)).astype(np.int64)
    encoded_values = list(map(str.encode, value_texts))
    lengths = np.fromiter(map(len, encoded_values), np.int64, len(encoded_values)) + 1  # ","/"["
    value_offsets = np.cumsum(np.append(1, lengths))[:-1]  # each value's first byte
    value_blob = b"[" + b",".join(encoded_values) + b"]"

    with_extras = (
        np.fromiter(map(bool, rows.events), dtype=bool, count=n)
        | np.fromiter(map(bool, rows.links), dtype=bool, count=n)
    )[order]
    extras_rows = np.flatnonzero(with_extras).tolist()
    extras_texts = [
        json.dumps(
            [rows.events[row], rows.links[row]], ensure_ascii=False, separators=(",", ":")
        ).encode()
        for row in order[with_extras].tolist()
    ]
    extras_lengths = np.array([len(t) for t in extras_texts], dtype=np.int64)

    columns = {
        "trace_ids": pack_bytes(trace_bytes),
        "trace_counts": pack_ints(counts),
        "trace_starts": pack_ints(_delta(trace_starts - int(starts.min()))),
        "span_ids": pack_bytes(span_bytes),
        "parents": pack_ints(parents),
        "parent_ids": pack_bytes(outside),
        "start_offsets": pack_ints(offsets),
        "durations": pack_ints(rows.durations[order]),
        "kinds": pack_ints(rows.kinds[order]),
        "statuses": pack_ints(rows.statuses[order]),
        "flags": pack_ints(rows.flags[order]),
        "operations": pack_ints(op_codes),
        "operation_dict": pack_ints(op_dict),
        "services": pack_ints(sv_codes),
        "service_dict": pack_ints(sv_dict),
        "resources": pack_ints(rs_codes),
        "resource_dict": pack_ints(rs_dict),
        "texts": pack_ints(text_codes),
        "text_dict": pack_bytes(json.dumps(text_dict, ensure_ascii=False).encode()),
        "attr_keys": pack_bytes(json.dumps(key_list, ensure_ascii=False).encode()),
        "attr_key_counts": pack_ints(key_counts),
        "attr_spans": pack_ints(_segmented_delta(attr_spans, key_counts)),
        "attr_values": pack_ints(_segmented_delta(value_codes, key_counts)),
        "value_offsets": pack_ints(_delta(value_offsets)),
        "value_dict": pack_bytes(value_blob),
        "extras_spans": pack_ints(np.array(extras_rows, dtype=np.int64)),
        "extras_offsets": pack_ints(extras_lengths),
        "extras": pack_bytes(b"".join(extras_texts)),
    }
    header = _MAGIC + struct.pack(f"<{len(COLUMNS)}I", *(len(columns[c]) for c in COLUMNS))
    payload = header + b"".join(columns[c] for c in COLUMNS)
    durations = rows.durations
    summary = Summary(
        n_spans=n,
        n_traces=len(trace_first),
        min_start_ns=int(starts.min()),
        max_start_ns=int(starts.max()),
        min_duration_ns=int(durations.min()),
        max_duration_ns=int(durations.max()),
        has_error=bool((rows.statuses == 2).any() or "error" in key_list),
        service_ids=sv_dict.tolist(),
        operation_ids=op_dict.tolist(),
        attribute_keys=sorted(key_list),
        trace_keys=sorted({trace_key(t) for t in distinct_traces}),
        service_counts=np.bincount(sv_codes, minlength=len(sv_dict)).tolist(),
        prefix_tokens=prefix_tokens(distinct_traces),
    )
    return payload, summary


class Block:
    """A decoded block, column by column on demand."""

    def __init__(self, payload: bytes, base_start_ns: int):
        if payload[:4] != _MAGIC:
            raise ValueError("not a span block")
        sizes = struct.unpack_from(f"<{len(COLUMNS)}I", payload, 4)
        pos = 4 + 4 * len(COLUMNS)
        self._raw: dict[str, bytes] = {}
        for name, size in zip(COLUMNS, sizes, strict=True):
            self._raw[name] = payload[pos : pos + size]
            pos += size
        self._cache: dict[str, Any] = {}
        self.base_start_ns = base_start_ns

    def ints(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = unpack_ints(self._raw[name])
        return self._cache[name]

    def raw(self, name: str) -> bytes:
        key = "raw:" + name
        if key not in self._cache:
            self._cache[key] = unpack_bytes(self._raw[name])
        return self._cache[key]

    # --- ids and times -------------------------------------------------------------------

    @property
    def n_spans(self) -> int:
        return int(self.trace_counts.sum())

    @property
    def trace_counts(self) -> np.ndarray:
        return self.ints("trace_counts")

    def trace_ids(self) -> np.ndarray:
        """For comparisons only ("S" scalars drop trailing NULs): see ``trace_id``."""
        return np.frombuffer(self.raw("trace_ids"), dtype="S16")

    def span_trace_numbers(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.trace_counts)), self.trace_counts)

    def trace_id(self, number: int) -> bytes:
        return self.raw("trace_ids")[16 * number : 16 * number + 16]

    def span_ids(self) -> np.ndarray:
        """For comparisons only: see ``span_id``."""
        return np.frombuffer(self.raw("span_ids"), dtype="S8")

    def span_id(self, row: int) -> bytes:
        return self.raw("span_ids")[8 * row : 8 * row + 8]

    def starts(self) -> np.ndarray:
        if "starts" not in self._cache:
            trace_starts = np.cumsum(self.ints("trace_starts")) + self.base_start_ns
            self._cache["starts"] = np.repeat(trace_starts, self.trace_counts) + self.ints(
                "start_offsets"
            )
        return self._cache["starts"]

    def durations(self) -> np.ndarray:
        return self.ints("durations")

    def kinds(self) -> np.ndarray:
        return self.ints("kinds")

    def statuses(self) -> np.ndarray:
        return self.ints("statuses")

    def operation_ids(self) -> np.ndarray:
        return self.ints("operation_dict")[self.ints("operations")]

    def service_ids(self) -> np.ndarray:
        return self.ints("service_dict")[self.ints("services")]

    def resource_ids(self) -> np.ndarray:
        return self.ints("resource_dict")[self.ints("resources")]

    def parent_ids(self, rows: np.ndarray) -> list[bytes | None]:
        parents = self.ints("parents")[rows]
        outside = self.raw("parent_ids")
        out: list[bytes | None] = []
        for row, p in zip(rows.tolist(), parents.tolist(), strict=True):
            if p == 0:
                out.append(None)
            elif p < 0 and p > -(1 << 39):
                k = -p - 1
                out.append(outside[8 * k : 8 * k + 8])
            else:
                distance = p + (1 << 40) if p < 0 else p
                out.append(self.span_id(row - distance))
        return out

    # --- texts, attributes, events and links ----------------------------------------------

    def texts(self, rows: np.ndarray) -> list[tuple]:
        table = json.loads(self.raw("text_dict"))
        return [tuple(table[c]) for c in self.ints("texts")[rows].tolist()]

    def attribute_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every attribute entry of the block, key-major: (key index, row, value index)."""
        if "attrs" not in self._cache:
            counts = self.ints("attr_key_counts")
            keys = np.repeat(np.arange(len(counts)), counts)
            spans = _segmented_cumsum(self.ints("attr_spans"), counts)
            values = _segmented_cumsum(self.ints("attr_values"), counts)
            self._cache["attrs"] = (keys, spans, values)
        return self._cache["attrs"]

    def attribute_keys(self) -> list[str]:
        if "keys" not in self._cache:
            self._cache["keys"] = json.loads(self.raw("attr_keys"))
        return self._cache["keys"]

    def value_texts(self, codes: np.ndarray) -> list[str]:
        """The JSON texts of some entries of the value dictionary."""
        blob = self.raw("value_dict")
        offsets = np.cumsum(self.ints("value_offsets"))
        ends = np.append(offsets[1:] - 1, len(blob) - 1)
        return [blob[offsets[c] : ends[c]].decode() for c in codes.tolist()]

    def attributes(self, rows: np.ndarray) -> list[dict]:
        """The attributes of the spans at ``rows`` (in jsonb's key order, as rows read back).

        Entries are put in (span, key's jsonb rank) order with numpy, and each distinct value
        is parsed once, all of them in one ``json.loads`` (a value shared by many spans — a
        URL, a status code — is the rule); a list or object value is parsed anew for each
        span, so that no two spans share a mutable value."""
        keys, spans, values = self.attribute_columns()
        wanted = np.zeros(self.n_spans, dtype=bool)
        wanted[rows] = True
        take = wanted[spans]
        names = self.attribute_keys()
        k, s, v = keys[take], spans[take], values[take]
        order = np.lexsort((self._key_ranks()[k], s))
        k, s, v = k[order], s[order], v[order]
        distinct, inverse = np.unique(v, return_inverse=True)
        texts = self.value_texts(distinct)
        parsed = json.loads("[" + ",".join(texts) + "]") if texts else []
        per_span: dict[int, dict] = {r: {} for r in rows.tolist()}
        for key, span, i in zip(k.tolist(), s.tolist(), inverse.tolist(), strict=True):
            value = parsed[i]
            if isinstance(value, list | dict):
                value = json.loads(texts[i])
            per_span[span][names[key]] = value
        return [per_span[r] for r in rows.tolist()]

    def _key_ranks(self) -> np.ndarray:
        """Each attribute key's position in jsonb's key order (length, then bytes)."""
        if "key_ranks" not in self._cache:
            names = self.attribute_keys()
            ranks = np.empty(len(names), dtype=np.int64)
            by_order = sorted(range(len(names)), key=lambda i: jsonb_key_order(names[i]))
            ranks[by_order] = np.arange(len(names))
            self._cache["key_ranks"] = ranks
        return self._cache["key_ranks"]

    def extras(self, rows: np.ndarray) -> list[tuple[list, list]]:
        spans = self.ints("extras_spans")
        out: list[tuple[list, list]] = [([], []) for _ in range(len(rows))]
        if not len(spans):
            return out
        lengths = self.ints("extras_offsets")
        ends = np.cumsum(lengths)
        blob = self.raw("extras")
        where = {int(s): i for i, s in enumerate(spans.tolist())}
        for n, row in enumerate(rows.tolist()):
            i = where.get(row)
            if i is not None:
                events, links = json.loads(blob[ends[i] - lengths[i] : ends[i]])
                out[n] = (events or [], links or [])
        return out
