"""Series ids for label sets: typed refusals by limit, and the process cache only where asked."""

from __future__ import annotations

import numpy as np
import pytest

from backend.metrics import series
from backend.metrics.series import SeriesRefusal, series_ids_resolve

pytestmark = pytest.mark.django_db


def labels(name: str, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"__name__": name, **more}.items()))


def resolve(org, label_sets, *, per_user=100, per_metric=100, cache=True):
    return series_ids_resolve(
        org_id=org.pk,
        label_sets=label_sets,
        max_per_user=per_user,
        max_per_metric=per_metric,
        cache=cache,
    )


def test_new_series_over_the_limits_are_refused_by_limit(tenants):
    sets = [labels("up", job="a"), labels("up", job="b"), labels("other"), labels("third")]
    result = resolve(tenants.org, sets, per_user=2, per_metric=1)
    assert result.admitted.tolist() == [True, False, True, False]
    assert (result.ids > 0).tolist() == [True, False, True, False]
    assert result.ids[~result.admitted].tolist() == [0, 0]
    assert {k: v.tolist() for k, v in result.refused.items()} == {
        SeriesRefusal.PER_USER: [3],
        SeriesRefusal.PER_METRIC: [1],
    }
    assert list(result.refused) == [SeriesRefusal.PER_USER, SeriesRefusal.PER_METRIC]


def test_known_series_keep_their_ids_and_nothing_is_refused(tenants):
    sets = [labels("up", job="a"), labels("up", job="b")]
    first = resolve(tenants.org, sets)
    again = resolve(tenants.org, sets, per_user=0, per_metric=0)  # existing series keep flowing
    assert again.ids.tolist() == first.ids.tolist()
    assert again.admitted.all() and again.refused == {}
    assert resolve(tenants.org, []).ids.dtype == np.int64


def test_only_cached_resolution_fills_the_process_cache(tenants, monkeypatch):
    sets = [labels("up", job="a")]
    resolve(tenants.org, sets, cache=False)
    assert not series._cache
    resolve(tenants.org, sets, per_user=0, cache=True)  # a refused series is not cached
    resolve(tenants.org, [labels("new")], per_user=0, cache=True)
    assert list(series._cache.values()) == [resolve(tenants.org, sets, cache=False).ids[0]]

    def catalog_unreachable(**kwargs):
        raise AssertionError("asked the catalog")

    monkeypatch.setattr(series, "series_resolve", catalog_unreachable)
    assert resolve(tenants.org, sets, cache=True).admitted.all()


def test_series_labels_are_cached_per_series_and_rebuilt_when_its_label_ids_differ(tenants):
    from django.db import connection

    from backend.metrics.storage import catalog

    org_id = tenants.org.pk
    with connection.cursor() as cur:
        ids = catalog.label_pair_ids(
            cur, org_id, {("__name__", "up"), ("job", "a"), ("job", "b")}, create=True
        )
        name, job_a, job_b = ids[("__name__", "up")], ids[("job", "a")], ids[("job", "b")]
        [(sid, labels, key)] = catalog.series_labels(cur, org_id, [(987_654, [name, job_a])])
        assert (sid, labels) == (987_654, {"__name__": "up", "job": "a"})
        assert key == (("__name__", "up"), ("job", "a"))
        [(_, again, _)] = catalog.series_labels(cur, org_id, [(987_654, [name, job_a])])
        assert again is labels  # built once, then shared
        # the same id with other label ids (a restored database): rebuilt, never stale
        [(_, other, key)] = catalog.series_labels(cur, org_id, [(987_654, [name, job_b])])
        assert other == {"__name__": "up", "job": "b"}
        assert key == (("__name__", "up"), ("job", "b"))
