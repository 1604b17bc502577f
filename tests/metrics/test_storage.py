"""Outbox drain, compaction, the outbox sweep and retention, against real PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection

from backend.metrics.labels import Matcher
from backend.metrics.selectors import samples_for_series
from backend.metrics.storage import blocks, compaction, outbox, reader
from backend.metrics.storage.catalog import series_resolve
from backend.metrics.storage.reader import series_match
from backend.pipeline.drain import org_drain, orgs_with_pending_batches
from backend.pipeline.retention import retention_apply
from backend.tenancy.services import limits_update

pytestmark = pytest.mark.django_db
DAY = 24 * 3600 * 1000


def _series(org, n=3):
    return series_resolve(
        org_id=org.pk,
        label_sets=[(("__name__", "m"), ("i", str(i))) for i in range(n)],
        max_per_user=100,
        max_per_metric=100,
    )


def _write(org, ids, ts, values):
    outbox.batch_append(
        org_id=org.pk,
        series_ids=np.array(ids),
        timestamps=np.array(ts),
        values=np.array(values, dtype=float),
    )


def _read(org, start=0, end=2**62):
    series = series_match(org_id=org.pk, matchers=[Matcher("__name__", "=", "m")])
    return samples_for_series(org_id=org.pk, series=series, start_ms=start, end_ms=end)


def _block_rows(org):
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM metric_blocks WHERE org_id = %s", [org.pk])
        return cur.fetchone()[0]


def test_drain_splits_by_window_and_reads_merge_them(tenants):
    a, b, _ = _series(tenants.org)
    t = blocks.now_ms() // blocks.WINDOW_MS * blocks.WINDOW_MS
    _write(tenants.org, [a, a, b], [t - 1000, t + 1000, t + 2000], [1, 2, 3])
    assert outbox.batches_drain(org_id=tenants.org.pk) == 3
    assert _block_rows(tenants.org) == 2  # two windows
    data = _read(tenants.org)
    assert data[a][0].tolist() == [t - 1000, t + 1000]
    assert data[b][1].tolist() == [3.0]
    only_second = _read(tenants.org, start=t, end=t + 1500)
    assert list(only_second) == [a] and only_second[a][1].tolist() == [2.0]


def test_compaction_merges_a_window_and_a_later_write_wins(tenants):
    (a, *_) = _series(tenants.org)
    t = blocks.now_ms() // blocks.WINDOW_MS * blocks.WINDOW_MS + 10
    for value in (1.0, 2.0, 3.0):
        _write(tenants.org, [a, a], [t, t + 1], [value, value])
        outbox.batches_drain(org_id=tenants.org.pk)
    assert _block_rows(tenants.org) == 3
    assert _read(tenants.org)[a][1].tolist() == [3.0, 3.0]
    assert compaction.blocks_compact(min_age_seconds=0) == 1
    assert _block_rows(tenants.org) == 1
    assert _read(tenants.org)[a][1].tolist() == [3.0, 3.0]
    assert compaction.blocks_compact(min_age_seconds=0) == 0  # nothing left to merge


def test_recent_groups_wait_before_compaction(tenants):
    (a, *_) = _series(tenants.org)
    t = blocks.now_ms()
    for i in range(2):
        _write(tenants.org, [a], [t + i], [1.0])
        outbox.batches_drain(org_id=tenants.org.pk)
    assert compaction.blocks_compact(min_age_seconds=3600) == 0
    assert _block_rows(tenants.org) == 2


def test_sweep_finds_orgs_whose_batches_nobody_drained(tenants):
    (a, *_) = _series(tenants.org)
    _write(tenants.org, [a], [blocks.now_ms()], [1.0])
    assert orgs_with_pending_batches(signal="metrics") == [tenants.org.pk]
    assert orgs_with_pending_batches(signal="metrics", older_than_seconds=3600) == []
    org_drain(signal="metrics", org_id=tenants.org.pk)
    assert orgs_with_pending_batches(signal="metrics") == []


def test_retention_drops_old_partitions_and_trims_shorter_retention(tenants):
    a, *_ = _series(tenants.org)
    (b, *_) = _series(tenants.other_org)
    now = blocks.now_ms()
    old, recent = now - 40 * DAY, now - 5 * DAY
    _write(tenants.org, [a, a], [old, recent], [1.0, 2.0])
    _write(tenants.other_org, [b, b], [old, recent], [1.0, 2.0])
    outbox.batches_drain(org_id=tenants.org.pk)
    outbox.batches_drain(org_id=tenants.other_org.pk)
    limits_update(org=tenants.other_org, changes={"retention_days": 3})
    result = retention_apply(signal="metrics", now_ms=now)
    assert any(name.startswith("metric_blocks_") for name in result["dropped_partitions"])
    assert _read(tenants.org)[a][0].tolist() == [recent]  # default 30 days: the old one went
    other = series_match(org_id=tenants.other_org.pk, matchers=[Matcher("__name__", "=", "m")])
    assert (
        samples_for_series(org_id=tenants.other_org.pk, series=other, start_ms=0, end_ms=2**62)
        == {}
    )  # 3 days: both went


def test_rows_read_in_row_order_across_windows_and_uncompacted_blocks(tenants):
    ids = _series(tenants.org, 3)
    window = blocks.WINDOW_MS
    for series, ts, values in [
        ([ids[0], ids[1]], [10, 20], [1.0, 2.0]),
        ([ids[0], ids[0]], [10, window + 5], [9.0, 3.0]),  # 10 again: the later write wins
        ([ids[2]], [window + 1], [4.0]),
    ]:
        _write(tenants.org, series, ts, values)
        outbox.batches_drain(org_id=tenants.org.pk)  # one block per write: not compacted
    assert _block_rows(tenants.org) == 4
    rows = {ids[2]: 0, ids[0]: 1}  # ids[1] not asked for
    ts, values, offsets = reader.samples_fetch_rows(
        org_id=tenants.org.pk,
        series=dict.fromkeys(ids, "m"),
        rows=rows,
        start_ms=0,
        end_ms=2 * window,
    )
    assert offsets.tolist() == [0, 1, 3]
    assert ts.tolist() == [window + 1, 10, window + 5]
    assert values.tolist() == [4.0, 9.0, 3.0]
    clipped = reader.samples_fetch_rows(
        org_id=tenants.org.pk,
        series=dict.fromkeys(ids, "m"),
        rows=rows,
        start_ms=11,
        end_ms=2 * window,
    )
    assert clipped[2].tolist() == [0, 1, 2] and clipped[0].tolist() == [window + 1, window + 5]
