"""Exemplar storage: idempotent per series and timestamp, the org's newest N kept, reads scoped
to the org."""

from __future__ import annotations

import time

import pytest

from backend.metrics.services import exemplars_write
from backend.metrics.storage.exemplars import exemplars_for_series

pytestmark = pytest.mark.django_db
TRACE = "0af7651916cd43dd8448eb211c80319c"


def write(org, series_id, stamps, keep=100, labels=None):
    return exemplars_write(
        org_id=org.pk,
        series_ids=[series_id] * len(stamps),
        timestamps=stamps,
        values=[float(t) for t in stamps],
        labels=[labels or (("span_id", "b7ad6b7169203331"), ("trace_id", TRACE))] * len(stamps),
        max_per_org=keep,
    )


def read(org, series_ids=(1, 2), start=0, end=10**6):
    return exemplars_for_series(
        org_id=org.pk, series_ids=list(series_ids), start_ms=start, end_ms=end, limit=1000
    )


def test_retries_store_nothing_twice_and_ids_come_back_as_hex(tenants):
    assert write(tenants.org, 1, [10, 20]) == 2
    write(tenants.org, 1, [10, 20])
    found = read(tenants.org)
    assert [(e.series_id, e.timestamp_ms, e.value) for e in found] == [(1, 10, 10.0), (1, 20, 20.0)]
    assert found[0].labels == {"trace_id": TRACE, "span_id": "b7ad6b7169203331"}


def test_ids_that_are_not_hex_and_other_labels_are_kept_as_sent(tenants):
    write(tenants.org, 1, [5], labels=(("trace_id", "not-hex"), ("user", "ann")))
    (found,) = read(tenants.org)
    assert found.labels == {"trace_id": "not-hex", "user": "ann"}


def test_the_org_keeps_its_newest_exemplars(tenants):
    write(tenants.org, 1, [10, 20, 30], keep=3)
    write(tenants.org, 2, [40, 50], keep=3)
    assert [e.timestamp_ms for e in read(tenants.org)] == [30, 40, 50]
    # another org's exemplars are neither trimmed nor visible
    write(tenants.other_org, 1, [1, 2], keep=3)
    assert [e.timestamp_ms for e in read(tenants.other_org)] == [1, 2]
    assert [e.timestamp_ms for e in read(tenants.org, start=35)] == [40, 50]
    assert write(tenants.org, 1, [60], keep=0) == 0  # 0 keeps none


def test_reads_are_bounded_by_series_and_time(tenants):
    write(tenants.org, 1, [10, 20, 30])
    write(tenants.org, 2, [15])
    assert [e.timestamp_ms for e in read(tenants.org, series_ids=[2])] == [15]
    # by series, then time
    assert [e.timestamp_ms for e in read(tenants.org, start=15, end=25)] == [20, 15]
    assert read(tenants.org, series_ids=[]) == []


def test_exemplars_older_than_the_retention_go_when_new_ones_arrive(tenants):
    now = int(time.time() * 1000)
    day = 86_400_000
    write(tenants.org, 1, [now - 40 * day, now - 10 * day])
    exemplars_write(
        org_id=tenants.org.pk,
        series_ids=[1],
        timestamps=[now],
        values=[1.0],
        labels=[(("trace_id", TRACE),)],
        max_per_org=100,
        retention_days=30,
    )
    found = read(tenants.org, end=now + 1)
    assert [e.timestamp_ms for e in found] == [now - 10 * day, now]
