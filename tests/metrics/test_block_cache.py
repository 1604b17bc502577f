"""The process's cache of decoded blocks: reads answer alike whether the blocks come from
PostgreSQL or from the cache, cold or warm, whole or only the wanted series (over the cache's
budget for one query), across later writes and compaction; entries serve only the org and the
very block they were decoded from; the cache stays within its size."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connections

from backend.metrics.storage import block_cache, blocks, compaction, outbox, reader
from backend.metrics.storage.catalog import series_resolve

pytestmark = pytest.mark.django_db
WINDOW = blocks.WINDOW_MS


def _series(org, n):
    ids = series_resolve(
        org_id=org.pk,
        label_sets=[(("__name__", "m"), ("i", str(i))) for i in range(n)],
        max_per_user=1000,
        max_per_metric=1000,
    )
    return [int(i) for i in ids]


def _write(org, writes, truth, series, ts, values):
    outbox.batch_append(
        org_id=org.pk,
        series_ids=np.array(series),
        timestamps=np.array(ts),
        values=np.array(values, dtype=float),
    )
    outbox.batches_drain(org_id=org.pk)  # one block per (write, window): not compacted
    for s, t, v in zip(series, ts, values, strict=True):
        truth[(s, t)] = v  # a later write wins
    writes.append(1)


def _expected(truth, rows, start, end):
    per_row: list[list[tuple[int, float]]] = [[] for _ in range(len(rows))]
    for (s, t), v in truth.items():
        if s in rows and start <= t <= end:
            per_row[rows[s]].append((t, v))
    ts, values, offsets = [], [], [0]
    for samples in per_row:
        samples.sort()
        ts += [t for t, _ in samples]
        values += [v for _, v in samples]
        offsets.append(len(ts))
    return ts, values, offsets


def _fetch(org, ids, rows, start, end):
    ts, values, offsets = reader.samples_fetch_rows(
        org_id=org.pk, series=dict.fromkeys(ids, "m"), rows=rows, start_ms=start, end_ms=end
    )
    return ts.tolist(), values.tolist(), offsets.tolist()


def _random_data(org, rng, n_series=12, n_writes=6):
    ids = _series(org, n_series)
    truth: dict[tuple[int, int], float] = {}
    writes: list[int] = []
    for _ in range(n_writes):
        k = int(rng.integers(1, n_series + 1))
        series = rng.choice(ids, size=k, replace=False).tolist()
        ts = rng.integers(0, 3 * WINDOW, size=k).tolist()
        values = rng.integers(0, 50, size=k).astype(float).tolist()
        _write(org, writes, truth, series, ts, values)
    return ids, truth


def _selections(ids, rng):
    for _ in range(8):
        wanted = rng.choice(ids, size=int(rng.integers(1, len(ids) + 1)), replace=False)
        rows = {int(s): r for r, s in enumerate(rng.permutation(wanted).tolist())}
        start = int(rng.integers(-1000, 2 * WINDOW))
        end = start + int(rng.integers(1, 2 * WINDOW))
        yield rows, start, end


@pytest.mark.parametrize("cache_bytes", [0, 64 * 1024 * 1024, 4096])
def test_reads_answer_as_stored_cold_warm_and_over_budget(tenants, settings, cache_bytes):
    """0: no cache (only the wanted series decoded); 64 MB: blocks decoded whole, kept, then
    served from the cache; 4 kB: a budget (a quarter) smaller than most blocks, which are
    then decoded for the wanted series only and not kept."""
    settings.PROMQL_BLOCK_CACHE_BYTES = cache_bytes
    rng = np.random.default_rng(cache_bytes + 7)
    ids, truth = _random_data(tenants.org, rng)
    assert _block_count(tenants.org) > 3  # several blocks per window: the merge is exercised
    for rows, start, end in _selections(ids, rng):
        want = _expected(truth, rows, start, end)
        assert _fetch(tenants.org, ids, rows, start, end) == want  # cold
        assert _fetch(tenants.org, ids, rows, start, end) == want  # warm
    entries, size = block_cache.stats()
    assert size <= cache_bytes
    n_blocks = _block_count(tenants.org)
    if cache_bytes == 0:
        assert entries == 0
    elif cache_bytes == 4096:
        assert entries < n_blocks  # some blocks read for the wanted series only
    else:
        assert entries == n_blocks


def test_later_writes_and_compaction_are_read_after_the_cache_warmed(tenants):
    rng = np.random.default_rng(3)
    ids, truth = _random_data(tenants.org, rng)
    rows = {s: r for r, s in enumerate(ids)}
    assert _fetch(tenants.org, ids, rows, 0, 3 * WINDOW) == _expected(truth, rows, 0, 3 * WINDOW)
    assert block_cache.stats()[0] > 0
    writes: list[int] = []
    # overwrite samples already read (a later write wins) and add new ones
    old = list(truth)[:4]
    _write(tenants.org, writes, truth, [s for s, _ in old], [t for _, t in old], [99.0] * 4)
    _write(tenants.org, writes, truth, [ids[0]], [3 * WINDOW - 1], [7.0])
    assert _fetch(tenants.org, ids, rows, 0, 3 * WINDOW) == _expected(truth, rows, 0, 3 * WINDOW)
    assert compaction.blocks_compact(min_age_seconds=0) > 0  # new blocks, new ids
    assert _fetch(tenants.org, ids, rows, 0, 3 * WINDOW) == _expected(truth, rows, 0, 3 * WINDOW)


def test_entries_serve_only_their_org_and_their_very_block(tenants):
    rng = np.random.default_rng(5)
    ids, _ = _random_data(tenants.org, rng, n_writes=2)
    rows = {s: r for r, s in enumerate(ids)}
    _fetch(tenants.org, ids, rows, 0, 3 * WINDOW)
    headers = reader._headers_for(tenants.org.pk, ["m"], 0, 3 * WINDOW)
    assert headers and all(d is not None for d in block_cache.get_many(tenants.org.pk, headers))
    # another org naming the same block ids gets nothing
    assert block_cache.get_many(tenants.other_org.pk, headers) == [None] * len(headers)
    # a block id that came to name another block (a restored database) is not answered
    changed = [blocks.BlockHeader(**{**_fields(h), "n_samples": h.n_samples + 1}) for h in headers]
    assert block_cache.get_many(tenants.org.pk, changed) == [None] * len(headers)
    # and the other org, querying the same metric with the cache warm, sees none of it
    other_ids = _series(tenants.other_org, 2)
    assert (
        _fetch(tenants.other_org, other_ids, {other_ids[0]: 0, other_ids[1]: 1}, 0, 10**9)[0] == []
    )


def test_the_cache_keeps_within_its_size_least_recently_used_out(tenants, settings):
    rng = np.random.default_rng(11)
    ids, _ = _random_data(tenants.org, rng, n_series=40, n_writes=8)
    headers = reader._headers_for(tenants.org.pk, ["m"], 0, 3 * WINDOW)
    decoded = reader._decoded(tenants.org.pk, headers, np.array(sorted(ids)))
    sizes = [d.nbytes for d in decoded]
    settings.PROMQL_BLOCK_CACHE_BYTES = sum(sizes) // 2
    block_cache.clear()
    for h, d in zip(headers, decoded, strict=True):
        block_cache.put(tenants.org.pk, h, d)
    entries, size = block_cache.stats()
    assert 0 < entries < len(headers) and size <= sum(sizes) // 2
    held = block_cache.get_many(tenants.org.pk, headers)
    assert held[-1] is decoded[-1] and held[0] is None  # the first ones put went first


def _block_count(org):
    return len(reader._headers_for(org.pk, ["m"], -(10**12), 10**12))


def _fields(header):
    return {f: getattr(header, f) for f in blocks.BlockHeader.__dataclass_fields__}


def test_blocks_replaced_after_their_headers_were_read_are_read_again(tenants):
    """A reading scope that read headers before a compaction (in a caller's transaction, which
    sees each statement's snapshot) finds the blocks gone and reads the new ones' headers."""
    rng = np.random.default_rng(13)
    ids, truth = _random_data(tenants.org, rng)
    rows = {s: r for r, s in enumerate(ids)}
    key = (("m",), 0, 3 * WINDOW)
    seen = {key: reader._headers_for(tenants.org.pk, ["m"], 0, 3 * WINDOW)}
    stale = list(seen[key])
    assert compaction.blocks_compact(min_age_seconds=0) > 0
    assert reader._decoded(tenants.org.pk, stale, np.array(sorted(ids))) is None
    ts, values, offsets = reader.samples_fetch_rows(
        org_id=tenants.org.pk,
        series=dict.fromkeys(ids, "m"),
        rows=rows,
        start_ms=0,
        end_ms=3 * WINDOW,
        blocks_seen=seen,
    )
    assert (ts.tolist(), values.tolist(), offsets.tolist()) == _expected(truth, rows, 0, 3 * WINDOW)
    assert seen[key] != stale


@pytest.mark.django_db(transaction=True)
def test_a_web_requests_reading_scope_sees_one_snapshot(tenants):
    """Outside a transaction (a web request) the scope is REPEATABLE READ: blocks compacted
    by another connection after the scope's first statement are still read as they were."""
    rng = np.random.default_rng(17)
    ids, _ = _random_data(tenants.org, rng)
    querier = reader.PostgresQuerier(org_id=tenants.org.pk)
    other = connections.create_connection("default")
    try:
        with querier.reading(timeout_seconds=10):
            headers = reader._headers_for(tenants.org.pk, ["m"], 0, 3 * WINDOW)
            with other.cursor() as cur:  # compaction elsewhere, committed
                cur.execute(
                    "DELETE FROM metric_blocks WHERE org_id = %s AND id = %s",
                    [tenants.org.pk, headers[0].id],
                )
            decoded = reader._decoded(tenants.org.pk, headers, np.array(sorted(ids)))
        assert decoded is not None
    finally:
        other.close()
