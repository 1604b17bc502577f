"""Columnar, compressed sample blocks: many series' samples of one metric in one time window.

A block holds samples sorted by (series id, timestamp). Each column is transformed so that its
bytes repeat, then byte-shuffled (the k-th byte of every 8-byte word together) and compressed
with zstd:

- series: the distinct series ids (delta-encoded) and each one's sample count;
- timestamps: delta-of-delta within each series (regular scrapes give runs of zeros);
- values: when every value is an integer below 2**53 (counters, histogram buckets), the
  delta within each series as int64; otherwise the XOR of each float's bits with the previous
  value's in the series (Gorilla's idea), which keeps NaN payloads such as the staleness
  marker bit-exact.

Everything is vectorised: a "segmented" delta restarts at every series boundary, and its
inverse is a cumulative sum (or XOR) minus the running total at each boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.zstd_contexts import compressor, decompressor

VALUE_MODE_INT_DELTA = 1
VALUE_MODE_XOR = 2
_MAX_EXACT_INT = 2.0**53
_ZSTD_LEVEL = 3


@dataclass(slots=True)
class Samples:
    """Samples sorted by (series, timestamp) with no duplicate (series, timestamp)."""

    series: np.ndarray  # int64
    timestamps: np.ndarray  # int64, ms
    values: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.series)


@dataclass(slots=True)
class EncodedBlock:
    n_series: int
    n_samples: int
    min_ts: int
    max_ts: int
    value_mode: int
    series: bytes
    timestamps: bytes
    values: bytes


def _shuffle(words: np.ndarray) -> bytes:
    return np.ascontiguousarray(words.view(np.uint8).reshape(-1, 8).T).tobytes()


def _unshuffle(raw: bytes, dtype) -> np.ndarray:
    data = np.frombuffer(raw, dtype=np.uint8)
    return np.ascontiguousarray(data.reshape(8, -1).T).view(dtype).reshape(-1)


def pack(words: np.ndarray) -> bytes:
    """An array of 8-byte words, byte-shuffled and zstd'ed."""
    return compressor(_ZSTD_LEVEL).compress(_shuffle(words))


def unpack(blob: bytes, dtype) -> np.ndarray:
    return _unshuffle(decompressor().decompress(blob), dtype)


def unpack_take(blob: bytes, dtype, idx: np.ndarray | None) -> np.ndarray:
    """``unpack(blob)[idx]``, un-shuffling only the words asked for."""
    if idx is None:
        return unpack(blob, dtype)
    planes = np.frombuffer(decompressor().decompress(blob), dtype=np.uint8).reshape(8, -1)
    return np.ascontiguousarray(planes[:, idx].T).view(dtype).reshape(-1)


def _starts(series: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a new series begins."""
    mask = np.empty(len(series), dtype=bool)
    if len(series):
        mask[0] = True
        np.not_equal(series[1:], series[:-1], out=mask[1:])
    return mask


def _segmented_delta(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    d = np.empty_like(x)
    d[0:1] = x[0:1]
    np.subtract(x[1:], x[:-1], out=d[1:])
    d[starts] = x[starts]
    return d


def _segmented_cumsum(d: np.ndarray, starts_idx: np.ndarray, counts: np.ndarray) -> np.ndarray:
    # int64 wraps on overflow, and wrapping cancels out in the subtraction: exact for any input.
    cs = np.cumsum(d)
    base = np.zeros(len(starts_idx), dtype=d.dtype)
    base[1:] = cs[starts_idx[1:] - 1]
    return cs - np.repeat(base, counts)


def _segmented_xor(bits: np.ndarray, starts: np.ndarray) -> np.ndarray:
    x = np.empty_like(bits)
    x[0:1] = bits[0:1]
    np.bitwise_xor(bits[1:], bits[:-1], out=x[1:])
    x[starts] = bits[starts]
    return x


def _segmented_unxor(x: np.ndarray, starts_idx: np.ndarray, counts: np.ndarray) -> np.ndarray:
    cx = np.bitwise_xor.accumulate(x)
    base = np.zeros(len(starts_idx), dtype=x.dtype)
    base[1:] = cx[starts_idx[1:] - 1]
    return cx ^ np.repeat(base, counts)


def _zigzag(v: np.ndarray) -> np.ndarray:
    return ((v << 1) ^ (v >> 63)).view(np.uint64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    return ((u >> np.uint64(1)).view(np.int64)) ^ -((u & np.uint64(1)).view(np.int64))


def encode(samples: Samples) -> EncodedBlock:
    if len(samples) == 0:
        raise ValueError("an empty block")
    series = samples.series.astype(np.int64, copy=False)
    ts = samples.timestamps.astype(np.int64, copy=False)
    values = samples.values.astype(np.float64, copy=False)
    starts = _starts(series)
    ids = series[starts]
    counts = np.diff(np.append(np.flatnonzero(starts), len(series))).astype(np.int64)

    ids_delta = np.diff(ids, prepend=0)
    series_blob = pack(np.concatenate([ids_delta, counts]))

    dd = _segmented_delta(_segmented_delta(ts, starts), starts)
    ts_blob = pack(_zigzag(dd))

    integral = np.isfinite(values).all() and bool(
        (np.abs(values) < _MAX_EXACT_INT).all() and (values == np.floor(values)).all()
    )
    # -0.0 is an integer value but not one int64 can carry: keep it bit-exact in XOR mode.
    if integral and not np.signbit(values[values == 0]).any():
        mode = VALUE_MODE_INT_DELTA
        values_blob = pack(_zigzag(_segmented_delta(values.astype(np.int64), starts)))
    else:
        mode = VALUE_MODE_XOR
        values_blob = pack(_segmented_xor(values.view(np.uint64), starts))

    return EncodedBlock(
        n_series=len(ids),
        n_samples=len(series),
        min_ts=int(ts.min()),
        max_ts=int(ts.max()),
        value_mode=mode,
        series=series_blob,
        timestamps=ts_blob,
        values=values_blob,
    )


def decode_segments(
    *,
    n_series: int,
    value_mode: int,
    series: bytes,
    timestamps: bytes,
    values: bytes,
    wanted: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(series ids, sample count per series, timestamps, values): the block's samples, series
    after series (ids ascending), each series' samples in time order. With ``wanted`` (sorted
    series ids), only those series are decoded: past decompression, the work is in
    proportion to what is asked for."""
    meta = unpack(series, np.int64)
    ids = np.cumsum(meta[:n_series])
    counts = meta[n_series:]
    idx = None
    if wanted is not None and len(wanted):
        at = np.minimum(np.searchsorted(wanted, ids), len(wanted) - 1)
        hit = wanted[at] == ids
        if not hit.all():
            starts = np.cumsum(counts) - counts
            ids, counts, starts = ids[hit], counts[hit], starts[hit]
            out_starts = np.cumsum(counts) - counts
            idx = np.arange(int(counts.sum())) + np.repeat(starts - out_starts, counts)
    if len(ids) == 0:
        return ids, counts, np.empty(0, np.int64), np.empty(0)
    starts_idx = np.zeros(len(ids), dtype=np.int64)
    starts_idx[1:] = np.cumsum(counts)[:-1]

    dd = _unzigzag(unpack_take(timestamps, np.uint64, idx))
    ts = _segmented_cumsum(_segmented_cumsum(dd, starts_idx, counts), starts_idx, counts)

    raw = unpack_take(values, np.uint64, idx)
    if value_mode == VALUE_MODE_INT_DELTA:
        vals = _segmented_cumsum(_unzigzag(raw), starts_idx, counts).astype(np.float64)
    elif value_mode == VALUE_MODE_XOR:
        vals = _segmented_unxor(raw, starts_idx, counts).view(np.float64)
    else:
        raise ValueError(f"unknown value mode {value_mode}")
    return ids, counts, ts, vals


def decode(
    *, n_series: int, value_mode: int, series: bytes, timestamps: bytes, values: bytes
) -> Samples:
    ids, counts, ts, vals = decode_segments(
        n_series=n_series,
        value_mode=value_mode,
        series=series,
        timestamps=timestamps,
        values=values,
    )
    return Samples(series=np.repeat(ids, counts), timestamps=ts, values=vals)


def normalize(series: np.ndarray, timestamps: np.ndarray, values: np.ndarray) -> Samples:
    """Sort by (series, timestamp); of samples with the same (series, timestamp) keep the one
    that came last in the input (a later write wins, and exact retries collapse to one)."""
    order = np.lexsort((np.arange(len(series)), timestamps, series))
    s, t, v = series[order], timestamps[order], values[order]
    if len(s) > 1:
        keep = np.ones(len(s), dtype=bool)
        keep[:-1] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
        s, t, v = s[keep], t[keep], v[keep]
    return Samples(series=s, timestamps=t, values=v)


@dataclass(slots=True)
class Segments:
    """Samples of many blocks decoded together, series segment after segment: segment k is
    series ``ids[k]`` of the ``tags[k]``-th block, its samples at ``starts[k]`` (``counts[k]``
    of them) in ``timestamps``/``values``, in time order."""

    ids: np.ndarray
    tags: np.ndarray
    counts: np.ndarray
    starts: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray


def decode_many(blocks, wanted: np.ndarray | None = None) -> Segments:
    """``decode_segments`` of many blocks at once: ``blocks`` is a sequence of (tag, n_series,
    value_mode, series, timestamps, values). The series lists of all blocks are read first and
    matched against ``wanted`` in one pass; then each block holding a wanted series is
    decompressed and un-shuffled on its own (only the wanted words kept), and the zig-zag and
    cumulative-sum passes run once over every block's words together: a query over hundreds
    of small blocks pays numpy's per-call cost a few times per block rather than dozens."""
    dec = decompressor()
    blocks = list(blocks)
    if not blocks:
        return _no_segments()
    n_series = np.fromiter((b[1] for b in blocks), np.int64, len(blocks))
    metas = [_unshuffle(dec.decompress(b[3]), np.int64) for b in blocks]
    meta = np.concatenate(metas)
    # each block's meta is its n id deltas then its n counts
    block_of = np.repeat(np.arange(len(blocks)), n_series)
    meta_at = np.zeros(len(blocks), dtype=np.int64)
    np.cumsum(2 * n_series[:-1], out=meta_at[1:])
    within = np.arange(len(block_of)) - np.repeat(np.cumsum(n_series) - n_series, n_series)
    id_pos = meta_at[block_of] + within
    starts_idx = np.cumsum(n_series) - n_series
    ids = _segmented_cumsum(meta[id_pos], starts_idx, n_series)
    counts = meta[id_pos + n_series[block_of]]
    if wanted is None:
        hit = np.ones(len(ids), dtype=bool)
    elif len(wanted):
        at = np.minimum(np.searchsorted(wanted, ids), len(wanted) - 1)
        hit = wanted[at] == ids
    else:
        return _no_segments()
    sample_hit = np.repeat(hit, counts)
    hits_per_block = np.bincount(block_of[hit], minlength=len(blocks)).tolist()
    samples_per_block = np.bincount(block_of, weights=counts, minlength=len(blocks))
    sample_at = np.zeros(len(blocks) + 1, dtype=np.int64)
    np.cumsum(samples_per_block.astype(np.int64), out=sample_at[1:])
    sample_at = sample_at.tolist()
    seg_at = np.zeros(len(blocks) + 1, dtype=np.int64)
    np.cumsum(n_series, out=seg_at[1:])
    seg_at = seg_at.tolist()
    n_list = n_series.tolist()
    out: list[tuple] = []
    pending: dict[int, tuple[list, list, list, list, list]] = {}
    pending_words: dict[int, int] = {}
    for i, b in enumerate(blocks):
        if not hits_per_block[i]:
            continue
        mode = b[2]
        if mode not in (VALUE_MODE_INT_DELTA, VALUE_MODE_XOR):
            raise ValueError(f"unknown value mode {mode}")
        lo, hi = seg_at[i], seg_at[i + 1]
        b_ids, b_counts, keep = ids[lo:hi], counts[lo:hi], None
        if hits_per_block[i] < n_list[i]:
            b_hit = hit[lo:hi]
            b_ids, b_counts = b_ids[b_hit], b_counts[b_hit]
            keep = sample_hit[sample_at[i] : sample_at[i + 1]]
        parts = pending.setdefault(mode, ([], [], [], [], []))
        parts[0].append(b_ids)
        parts[1].append(np.full(len(b_ids), b[0], dtype=np.int64))
        parts[2].append(b_counts)
        raw_t = _take_words(dec.decompress(b[4]), keep)
        parts[3].append(raw_t)
        parts[4].append(_take_words(dec.decompress(b[5]), keep))
        pending_words[mode] = pending_words.get(mode, 0) + len(raw_t)
        if pending_words[mode] >= _CHUNK_WORDS:
            out.append(_decode_chunk(mode, pending.pop(mode)))
            pending_words[mode] = 0
    out.extend(_decode_chunk(mode, parts) for mode, parts in pending.items())
    if not out:
        return _no_segments()
    counts = np.concatenate([o[2] for o in out])
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return Segments(
        ids=np.concatenate([o[0] for o in out]),
        tags=np.concatenate([o[1] for o in out]),
        counts=counts,
        starts=starts,
        timestamps=np.concatenate([o[3] for o in out]),
        values=np.concatenate([o[4] for o in out]),
    )


@dataclass(slots=True)
class Decoded:
    """One block's samples decoded: series ``ids`` ascending, series k's samples at
    ``starts[k]`` (``counts[k]`` of them) in ``timestamps``/``values``, in time order."""

    ids: np.ndarray
    counts: np.ndarray
    starts: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        arrays = (self.ids, self.counts, self.starts, self.timestamps, self.values)
        return sum(a.nbytes for a in arrays) + 512  # and the objects around them

    @classmethod
    def of(cls, samples: Samples) -> Decoded:
        ids, first, counts = np.unique(samples.series, return_index=True, return_counts=True)
        return cls(ids, counts, first, samples.timestamps, samples.values)


def decode_blocks(blocks, wanted: np.ndarray | None = None) -> list[Decoded]:
    """``decode_many`` of (n_series, value_mode, series, timestamps, values) blocks, one
    ``Decoded`` per block in their order (with ``wanted``: its series only, maybe none), each
    in arrays of its own."""
    blocks = list(blocks)
    segs = decode_many(((i, *b) for i, b in enumerate(blocks)), wanted)
    out = [_EMPTY] * len(blocks)
    # decode_many keeps each block's segments, and their samples, together
    tags, first, n_segs = np.unique(segs.tags, return_index=True, return_counts=True)
    for tag, a, n in zip(tags.tolist(), first.tolist(), n_segs.tolist(), strict=True):
        b = a + n
        lo = int(segs.starts[a])
        hi = int(segs.starts[b - 1] + segs.counts[b - 1])
        out[tag] = Decoded(
            segs.ids[a:b].copy(),
            segs.counts[a:b].copy(),
            segs.starts[a:b] - lo,
            segs.timestamps[lo:hi].copy(),
            segs.values[lo:hi].copy(),
        )
    return out


def merge_decoded(parts: Sequence[Decoded]) -> Decoded:
    """Several decoded blocks of one window (not yet compacted) as one, a later block's sample
    winning over an earlier one's at the same (series, timestamp), as compaction merges them."""
    merged = normalize(
        np.concatenate([np.repeat(p.ids, p.counts) for p in parts]),
        np.concatenate([p.timestamps for p in parts]),
        np.concatenate([p.values for p in parts]),
    )
    return Decoded.of(merged)


def gather(blocks: Sequence[tuple[int, Decoded]], wanted: np.ndarray) -> Segments:
    """The ``wanted`` series (sorted ids) of (tag, decoded block) pairs, in ``decode_many``'s
    layout: one segment per (block, wanted series it holds). The segments are found for all
    blocks at once; then each block gives its samples in one take per column."""
    blocks = [(tag, d) for tag, d in blocks if len(d.ids)]
    if not blocks or not len(wanted):
        return _no_segments()
    all_ids = np.concatenate([d.ids for _, d in blocks])
    at = np.minimum(np.searchsorted(wanted, all_ids), len(wanted) - 1)
    hit = wanted[at] == all_ids
    if not hit.any():
        return _no_segments()
    n_ids = np.fromiter((len(d.ids) for _, d in blocks), np.int64, len(blocks))
    block_of = np.repeat(np.arange(len(blocks)), n_ids)[hit]
    counts = np.concatenate([d.counts for _, d in blocks])[hit]
    local = np.concatenate([d.starts for _, d in blocks])[hit]
    # each hit segment's samples, by index within its own block's arrays
    out_at = np.cumsum(counts) - counts
    take = np.arange(int(counts.sum())) + np.repeat(local - out_at, counts)
    per_block = np.bincount(block_of, weights=counts, minlength=len(blocks)).astype(np.int64)
    ends = np.cumsum(per_block).tolist()
    ts, vals = [], []
    lo = 0
    for i, (_, d) in enumerate(blocks):
        hi = ends[i]
        if hi == lo:
            continue
        if hi - lo == len(d.timestamps):  # every series of the block
            ts.append(d.timestamps)
            vals.append(d.values)
        else:
            ts.append(d.timestamps[take[lo:hi]])
            vals.append(d.values[take[lo:hi]])
        lo = hi
    tags = np.fromiter((tag for tag, _ in blocks), np.int64, len(blocks))[block_of]
    return Segments(all_ids[hit], tags, counts, out_at, np.concatenate(ts), np.concatenate(vals))


# Blocks are decoded together in runs of about this many words: enough to pay numpy's
# per-call cost rarely, few enough that the passes over them stay in the CPU's cache.
_CHUNK_WORDS = 1 << 15


def _decode_chunk(mode: int, parts) -> tuple:
    ids, tags, counts, raw_t, raw_v = (np.concatenate(p) for p in parts)
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    dd = _unzigzag_inplace(raw_t)
    ts = _segmented_cumsum(_segmented_cumsum(dd, starts, counts), starts, counts)
    if mode == VALUE_MODE_INT_DELTA:
        vals = _segmented_cumsum(_unzigzag_inplace(raw_v), starts, counts).astype(np.float64)
    else:
        vals = _segmented_unxor(raw_v, starts, counts).view(np.float64)
    return ids, tags, counts, ts, vals


def _no_segments() -> Segments:
    empty = np.empty(0, np.int64)
    return Segments(empty, empty, empty, empty, empty, np.empty(0))


_EMPTY = Decoded(*(np.empty(0, np.int64),) * 4, np.empty(0))


def _take_words(raw: bytes, keep: np.ndarray | None) -> np.ndarray:
    """Un-shuffle a decompressed column: all its 8-byte words, or those where ``keep``."""
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(8, -1)
    if keep is not None:
        planes = planes[:, keep]
    return np.ascontiguousarray(planes.T).view(np.uint64).reshape(-1)


def _unzigzag_inplace(u: np.ndarray) -> np.ndarray:
    """``_unzigzag`` reusing ``u``'s memory (the caller's own array)."""
    sign = (u & np.uint64(1)).view(np.int64)
    np.negative(sign, out=sign)
    u >>= np.uint64(1)
    out = u.view(np.int64)
    np.bitwise_xor(out, sign, out=out)
    return out
