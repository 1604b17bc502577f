"""The step-aligned results cache for range queries: the same answers as without it (byte for
byte, on random ranges, steps and grid phases), never stale when samples arrive late or are
deleted, off for ``@`` and ``offset``, and one org's entries are never another's."""

from __future__ import annotations

import random

import pytest
from django.test import override_settings
from django_redis import get_redis_connection

from backend.metrics import promql, results_cache
from backend.metrics.storage.reader import PostgresQuerier
from backend.metrics.storage.retention import org_samples_delete_before
from backend.tenancy.models import Scope
from tests.helpers.credentials import bearer
from tests.metrics.samples import STALE, T0, counter, load

pytestmark = pytest.mark.django_db

HOUR = 3_600_000
WINDOW = HOUR  # the default out-of-order window
NOW = T0 + 6 * HOUR  # the tests' clock: T0's history is all older than the window
QUERIES = [
    "sum by (code) (rate(reqs[1m]))",
    "reqs",
    "histogram_quantile(0.9, sum by (le) (rate(lat_bucket[5m])))",
    "max_over_time(reqs[10m]) - min_over_time(reqs[10m]) > 0",
    "topk(1, reqs) or vector(time() / 1000)",
    "rate(reqs[5m])[15m:1m]",  # refused: a range vector (the error goes through the cache too)
    "sum_over_time(count(reqs)[20m:2m])",
]


def history(seed: int) -> dict:
    rng = random.Random(seed)
    data = {}
    for code in ("200", "500"):
        for pod in ("a", "b", "c"):
            total, points = 0.0, []
            for t in range(0, 4 * 3600, 30):
                if rng.random() < 0.05:
                    continue  # a missed scrape
                total += rng.randint(0, 20)
                if rng.random() < 0.005:
                    total = 0.0  # a restart
                points.append((t, STALE if rng.random() < 0.003 else total))
            if pod == "c":
                points = points[: len(points) // 3]  # a series that stops
            data[counter("reqs", code=code, pod=pod)] = points
    for le in ("10", "100", "+Inf"):
        data[counter("lat_bucket", le=le)] = [
            (t, float(t // 30 * (1 + ["10", "100", "+Inf"].index(le)))) for t in range(0, 14400, 30)
        ]
    return data


def plain(org, query, start, end, step):
    return promql.range_query_json(
        querier=PostgresQuerier(org_id=org.pk),
        query=query,
        start_ms=start,
        end_ms=end,
        step_ms=step,
        limits=promql.QueryLimits(),
    )


def cached(org, query, start, end, step, now=NOW):
    return results_cache.range_query_json(
        org_id=org.pk,
        querier=PostgresQuerier(org_id=org.pk),
        query=query,
        start_ms=start,
        end_ms=end,
        step_ms=step,
        limits=promql.QueryLimits(),
        out_of_order_window_ms=WINDOW,
        now_ms=now,
    )


def answer(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except promql.PromQLError as exc:
        return f"{type(exc).__name__}: {exc}"


def entries(org) -> list[bytes]:
    return list(get_redis_connection("default").scan_iter(f"promql:rc:{org.pk}:*:*:*:*"))


def test_cached_answers_are_the_uncached_ones_on_random_ranges(tenants):
    load(tenants.org, history(1))
    rng = random.Random(7)
    for _ in range(60):
        query = rng.choice(QUERIES)
        step = rng.choice([15_000, 30_000, 60_000, 45_000])
        start = T0 + rng.randrange(-600_000, 4 * HOUR, 5_000)
        end = start + rng.randrange(0, 2 * HOUR, step)
        # "now" moves too: sometimes part of the range is within the out-of-order window
        now = rng.choice([NOW, start + WINDOW + results_cache.GRACE_MS + rng.randrange(0, HOUR)])
        want = answer(plain, tenants.org, query, start, end, step)
        assert answer(cached, tenants.org, query, start, end, step, now) == want
        assert answer(cached, tenants.org, query, start, end, step, now) == want  # from cache
    assert entries(tenants.org)  # the cache was used


def test_a_cached_extent_grows_and_serves_only_what_it_holds(tenants):
    load(tenants.org, history(2))
    query, step = "sum by (code) (rate(reqs[1m]))", 60_000
    windows = [(T0 + HOUR, T0 + 2 * HOUR), (T0 + 90 * 60_000, T0 + 3 * HOUR), (T0, T0 + HOUR)]
    for start, end in windows:
        assert cached(tenants.org, query, start, end, step) == plain(
            tenants.org, query, start, end, step
        )
    (key,) = entries(tenants.org)  # one extent per (query, step, phase), joined
    extent = results_cache.Extent.loads(get_redis_connection("default").get(key))
    assert (extent.first, extent.last) == (T0, T0 + 3 * HOUR)
    # another phase of the same step grid is another extent
    cached(tenants.org, query, T0 + 30_000, T0 + HOUR + 30_000, step)
    assert len(entries(tenants.org)) == 2


def test_late_samples_are_never_hidden_by_the_cache(tenants):
    load(tenants.org, history(3))
    query, start, end, step = "sum(reqs)", T0 + HOUR, T0 + 2 * HOUR, 60_000
    before = cached(tenants.org, query, start, end, step)
    assert before == plain(tenants.org, query, start, end, step)
    # a late sample inside the cached steps (as a raised out-of-order window lets in)
    load(tenants.org, {counter("reqs", code="200", pod="late"): [(5400, 1000.0)]})
    after = cached(tenants.org, query, start, end, step)
    assert after == plain(tenants.org, query, start, end, step)
    assert after != before


def test_recent_steps_are_not_cached_and_see_samples_within_the_window(tenants):
    load(tenants.org, history(4))
    query, start, end, step = "sum(reqs)", T0 + 3 * HOUR, T0 + 4 * HOUR, 60_000
    now = end + 30 * 60_000  # the last 40 minutes of the range are within window + grace
    before = cached(tenants.org, query, start, end, step, now)
    (key,) = entries(tenants.org)
    extent = results_cache.Extent.loads(get_redis_connection("default").get(key))
    assert extent.last <= now - WINDOW - results_cache.GRACE_MS
    assert extent.last == start + 20 * step
    # a sample within the window, at a step the cache does not hold
    load(tenants.org, {counter("reqs", code="200", pod="new"): [(4 * 3600 - 60, 5.0)]})
    after = cached(tenants.org, query, start, end, step, now)
    assert after == plain(tenants.org, query, start, end, step) != before


def test_deleted_samples_are_not_served_from_the_cache(tenants):
    load(tenants.org, history(5))
    query, start, end, step = "count(reqs)", T0, T0 + HOUR, 60_000
    before = cached(tenants.org, query, start, end, step)
    assert org_samples_delete_before(org_id=tenants.org.pk, cutoff_ms=T0 + 4 * HOUR)
    after = cached(tenants.org, query, start, end, step)
    assert after == plain(tenants.org, query, start, end, step) != before


@pytest.mark.parametrize(
    "query", ["sum(reqs offset 5m)", "sum(reqs @ 1700003600)", "rate(reqs[5m] offset 1m)"]
)
def test_at_and_offset_queries_bypass_the_cache(tenants, query):
    load(tenants.org, history(6))
    start, end, step = T0 + HOUR, T0 + 2 * HOUR, 60_000
    assert cached(tenants.org, query, start, end, step) == plain(
        tenants.org, query, start, end, step
    )
    assert entries(tenants.org) == []


def test_switched_off_it_stores_nothing(tenants):
    load(tenants.org, history(8))
    with override_settings(PROMQL_RESULTS_CACHE=False):
        got = cached(tenants.org, "sum(reqs)", T0, T0 + HOUR, 60_000)
    assert got == plain(tenants.org, "sum(reqs)", T0, T0 + HOUR, 60_000)
    assert entries(tenants.org) == []


def test_an_outsider_never_gets_another_orgs_cached_result(api, tenants):
    """Same query, same range, same step: each org gets its own data, through the API."""
    load(tenants.org, {counter("reqs", code="200"): [(t, 1.0) for t in range(0, 3600, 30)]})
    load(tenants.other_org, {counter("reqs", code="500"): [(t, 9.0) for t in range(0, 3600, 30)]})
    params = {"query": "sum by (code) (reqs)", "start": T0 // 1000, "end": T0 // 1000 + 3000}
    params["step"] = "60"
    mine = bearer(tenants.token([Scope.METRICS_READ]))
    theirs = bearer(tenants.token([Scope.METRICS_READ], org=tenants.other_org))
    for _ in range(2):  # the second time from the cache
        got = api.post("/prometheus/api/v1/query_range", params, **mine).json()
        assert [r["metric"] for r in got["data"]["result"]] == [{"code": "200"}]
        other = api.post("/prometheus/api/v1/query_range", params, **theirs).json()
        assert [r["metric"] for r in other["data"]["result"]] == [{"code": "500"}]
        assert {v for _, v in other["data"]["result"][0]["values"]} == {"9"}
    assert entries(tenants.org) and entries(tenants.other_org)
