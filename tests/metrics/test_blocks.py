"""Block encoding round-trips bit-exactly, whatever the values."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.metrics.storage import encoding

finite_or_special = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-(2**60), 2**60).map(float),
    st.sampled_from(
        [
            0.0,
            -0.0,
            float("nan"),
            np.frombuffer(np.uint64(0x7FF0000000000002).tobytes(), dtype=np.float64)[0],
        ]
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 20), st.integers(-(2**50), 2**50), finite_or_special),
        min_size=1,
        max_size=300,
    )
)
def test_round_trip_is_bit_exact(samples):
    series = np.array([s for s, _, _ in samples], dtype=np.int64)
    ts = np.array([t for _, t, _ in samples], dtype=np.int64)
    values = np.array([v for _, _, v in samples], dtype=np.float64)
    normal = encoding.normalize(series, ts, values)
    block = encoding.encode(normal)
    back = encoding.decode(
        n_series=block.n_series,
        value_mode=block.value_mode,
        series=block.series,
        timestamps=block.timestamps,
        values=block.values,
    )
    assert np.array_equal(back.series, normal.series)
    assert np.array_equal(back.timestamps, normal.timestamps)
    assert np.array_equal(back.values.view(np.uint64), normal.values.view(np.uint64))
    assert block.min_ts == normal.timestamps.min() and block.max_ts == normal.timestamps.max()
    # Decoding only some series gives exactly their samples.
    wanted = np.unique(normal.series)[::2]
    ids, counts, part_ts, part_values = encoding.decode_segments(
        n_series=block.n_series,
        value_mode=block.value_mode,
        series=block.series,
        timestamps=block.timestamps,
        values=block.values,
        wanted=np.append(wanted, 10**9),  # a wanted series the block does not hold
    )
    keep = np.isin(normal.series, wanted)
    assert np.array_equal(np.repeat(ids, counts), normal.series[keep])
    assert np.array_equal(part_ts, normal.timestamps[keep])
    assert np.array_equal(part_values.view(np.uint64), normal.values[keep].view(np.uint64))


def test_normalize_sorts_and_keeps_the_last_write_of_a_timestamp():
    out = encoding.normalize(
        np.array([2, 1, 2, 1]), np.array([5, 9, 5, 3]), np.array([1.0, 2.0, 3.0, 4.0])
    )
    assert out.series.tolist() == [1, 1, 2]
    assert out.timestamps.tolist() == [3, 9, 5]
    assert out.values.tolist() == [4.0, 2.0, 3.0]


def test_integer_counters_compress_below_a_byte_per_sample():
    n_series, per = 2000, 120
    rng = np.random.default_rng(7)
    series = np.repeat(np.arange(n_series), per)
    ts = np.tile(1_700_000_000_000 + np.arange(per) * 15_000, n_series)
    values = np.cumsum(rng.integers(0, 50, n_series * per)).astype(float)
    block = encoding.encode(encoding.normalize(series, ts, values))
    assert block.value_mode == encoding.VALUE_MODE_INT_DELTA
    size = len(block.series) + len(block.timestamps) + len(block.values)
    assert size / (n_series * per) < 1.0


def _encoded(samples):
    series = np.array([s for s, _, _ in samples], dtype=np.int64)
    ts = np.array([t for _, t, _ in samples], dtype=np.int64)
    values = np.array([v for _, _, v in samples], dtype=np.float64)
    normal = encoding.normalize(series, ts, values)
    return normal, encoding.encode(normal)


block_samples = st.lists(
    st.tuples(st.integers(1, 12), st.integers(-(2**40), 2**40), finite_or_special),
    min_size=1,
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(block_samples, min_size=1, max_size=6), st.sets(st.integers(0, 13)))
def test_decoding_many_blocks_together_is_decoding_each(blocks, wanted):
    """``decode_many`` (one pass over many blocks, integer and XOR blocks mixed) gives, per
    block, exactly the wanted series' samples that ``decode_segments`` gives."""
    encoded = [_encoded(b) for b in blocks]
    wanted = np.array(sorted(wanted), dtype=np.int64)
    got = encoding.decode_many(
        [
            (tag, e.n_series, e.value_mode, e.series, e.timestamps, e.values)
            for tag, (_, e) in enumerate(encoded)
        ],
        wanted,
    )
    for tag, (normal, _) in enumerate(encoded):
        keep = np.isin(normal.series, wanted)
        mine = np.flatnonzero(got.tags == tag)
        assert np.array_equal(got.ids[mine], np.unique(normal.series[keep]))
        at = np.concatenate(
            [np.arange(got.starts[k], got.starts[k] + got.counts[k]) for k in mine]
            or [np.empty(0, np.int64)]
        ).astype(np.int64)
        assert np.array_equal(np.repeat(got.ids[mine], got.counts[mine]), normal.series[keep])
        assert np.array_equal(got.timestamps[at], normal.timestamps[keep])
        assert np.array_equal(got.values[at].view(np.uint64), normal.values[keep].view(np.uint64))
