"""The PromQL engine on small hand-made series, with results worked out by hand.

The exhaustive comparison against a real Prometheus lives in tests/compat; these pin the
semantics that matter most (lookback, staleness, extrapolation, matching) and run without it.
"""

from __future__ import annotations

import math

import pytest

from backend.metrics.promql import BadData, ExecutionError, instant_query, range_query
from backend.metrics.promql.values import format_value
from tests.metrics.samples import STALE, T0, counter, in_memory


def vector(querier, query, at_s):
    data = instant_query(querier=querier, query=query, time_ms=T0 + at_s * 1000)
    assert data["resultType"] == "vector", data
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in data["result"]}


def scalar(querier, query, at_s):
    data = instant_query(querier=querier, query=query, time_ms=T0 + at_s * 1000)
    assert data["resultType"] == "scalar", data
    return float(data["result"][1])


def key(**labels):
    return tuple(sorted(labels.items()))


def test_instant_selector_looks_back_five_minutes_and_stops_at_a_staleness_marker():
    q = in_memory({counter("g", i="a"): [(0, 1.0)], counter("g", i="b"): [(0, 2.0), (60, STALE)]})
    assert vector(q, "g", 59) == {key(__name__="g", i="a"): 1.0, key(__name__="g", i="b"): 2.0}
    assert vector(q, "g", 60) == {key(__name__="g", i="a"): 1.0}  # b went stale
    assert vector(q, "g", 300) == {key(__name__="g", i="a"): 1.0}  # [t-5m, t] is closed
    assert vector(q, "g", 301) == {}
    # range selectors skip the marker
    assert vector(q, "count_over_time(g[2m])", 90) == {key(i="a"): 1.0, key(i="b"): 1.0}


def test_rate_extrapolates_like_prometheus():
    q = in_memory({counter(): [(i * 15, 100.0 + 10 * i) for i in range(41)]})
    # window [-30s, 30s] holds 100, 110, 120: 20 over 30 s; the start is 30 s away (more
    # than 1.1 x the 15 s interval), so half an interval is added: 20 x 37.5 / 30 = 25.
    assert vector(q, "increase(reqs[1m])", 30) == {(): 25.0}
    assert vector(q, "rate(reqs[1m])", 600) == {(): pytest.approx(10 / 15)}
    assert vector(q, "delta(reqs[1m])", 600) == {(): pytest.approx(40.0)}
    assert vector(q, "irate(reqs[1m])", 600) == {(): pytest.approx(10 / 15)}
    assert vector(q, "idelta(reqs[1m])", 600) == {(): 10.0}


def test_counter_resets_are_corrected():
    q = in_memory({counter(): [(0, 0.0), (15, 10.0), (30, 20.0), (45, 5.0), (60, 15.0)]})
    assert vector(q, "increase(reqs[1m])", 60) == {(): 35.0}
    assert vector(q, "resets(reqs[1m])", 60) == {(): 1.0}
    assert vector(q, "changes(reqs[1m])", 60) == {(): 4.0}
    assert vector(q, "irate(reqs[1m])", 60) == {(): pytest.approx(10 / 15)}
    assert vector(q, "irate(reqs[1m])", 45) == {(): pytest.approx(5 / 15)}  # reset: 5/15 s


def test_over_time_functions():
    q = in_memory({counter("g"): [(0, 1.0), (15, 5.0), (30, 2.0), (45, math_nan()), (60, 4.0)]})
    got = {
        f: vector(q, f"{f}(g[1m])", 60)[()]
        for f in ("sum_over_time", "count_over_time", "max_over_time", "min_over_time")
    }
    assert got["count_over_time"] == 5
    assert math_isnan(got["sum_over_time"])
    assert got["max_over_time"] == 5.0  # NaN ignored unless all are NaN
    assert got["min_over_time"] == 1.0
    assert vector(q, "last_over_time(g[1m])", 60) == {key(__name__="g"): 4.0}
    assert vector(q, "quantile_over_time(0.5, g[1m] offset 15s)", 75) == {(): 2.0}
    assert vector(q, "stddev_over_time(g[30s])", 30) == {(): pytest.approx(1.6996731711975948)}
    assert vector(q, "deriv(g[30s])", 30) == {(): pytest.approx(1 / 30)}
    assert vector(q, "predict_linear(g[30s], 60)", 30) == {(): pytest.approx(19 / 6 + 2)}


def math_nan():
    return float("nan")


def math_isnan(x):
    return x != x


def test_offset_at_and_subqueries():
    q = in_memory({counter("g"): [(i * 60, float(i)) for i in range(11)]})
    assert vector(q, "g offset 2m", 600) == {key(__name__="g"): 8.0}
    at = (T0 + 180_000) / 1000
    assert vector(q, f"g @ {at}", 600) == {key(__name__="g"): 3.0}
    data = range_query(
        querier=q,
        query="g @ start()",
        start_ms=T0 + 60_000,
        end_ms=T0 + 180_000,
        step_ms=60_000,
    )
    assert [v for _, v in data["result"][0]["values"]] == ["1", "1", "1"]
    # the subquery steps are aligned to multiples of 60 s: 4 points in [t-4m, t]
    assert vector(q, "count_over_time(g[4m:1m])", 600) == {(): 5.0}
    assert vector(q, "max_over_time(deriv(g[2m])[5m:1m])", 600) == {(): pytest.approx(1 / 60)}


def test_aggregations():
    q = in_memory(
        {
            counter("m", job="a", i="1"): [(0, 1.0)],
            counter("m", job="a", i="2"): [(0, 3.0)],
            counter("m", job="b", i="3"): [(0, 3.0)],
            counter("m", job="b", i="4"): [(0, 10.0)],
        },
    )
    assert vector(q, "sum by (job) (m)", 0) == {key(job="a"): 4.0, key(job="b"): 13.0}
    assert vector(q, "avg without (i) (m)", 0) == {key(job="a"): 2.0, key(job="b"): 6.5}
    assert vector(q, "count(m)", 0) == {(): 4.0}
    assert vector(q, "max(m)", 0) == {(): 10.0}
    assert vector(q, "stdvar by (job) (m)", 0) == {key(job="a"): 1.0, key(job="b"): 12.25}
    assert vector(q, "quantile(0.5, m)", 0) == {(): 3.0}
    assert vector(q, 'count_values("v", m)', 0) == {
        key(v="1"): 1.0,
        key(v="3"): 2.0,
        key(v="10"): 1.0,
    }
    top = instant_query(querier=q, query="topk(1, m) by (job)", time_ms=T0)["result"]
    assert {r["metric"]["i"] for r in top} == {"2", "4"}
    bottom = instant_query(querier=q, query="bottomk(2, m)", time_ms=T0)["result"]
    assert [r["metric"]["i"] for r in bottom] == ["1", "2"]  # ties keep the input order


def test_sum_adds_in_series_order_like_prometheus():
    """Prometheus adds one series after another (label order); the last bit of such a sum
    can move a histogram_quantile across a bucket, so Canopy adds in the same order."""
    q = in_memory({counter("x", i=str(i)): [(0, v)] for i, v in enumerate([0.1, 0.2, 0.3])})
    assert vector(q, "sum(x)", 0) == {(): 0.1 + 0.2 + 0.3}  # 0.6000000000000001, not 0.6
    assert 0.1 + 0.2 + 0.3 != 0.6


def test_vector_matching():
    q = in_memory(
        {
            counter("errors", svc="a", code="500"): [(0, 2.0)],
            counter("errors", svc="a", code="503"): [(0, 1.0)],
            counter("total", svc="a", team="x"): [(0, 10.0)],
            counter("retries", svc="a", code="500"): [(0, 1.0)],
        },
    )
    got = vector(q, "errors / ignoring(code, team) group_left(team) total", 0)
    assert got == {key(svc="a", code="500", team="x"): 0.2, key(svc="a", code="503", team="x"): 0.1}
    assert vector(q, "sum(errors) by (svc) / on(svc) total", 0) == {key(svc="a"): 0.3}
    assert vector(q, "errors > bool 1", 0) == {
        key(svc="a", code="500"): 1.0,
        key(svc="a", code="503"): 0.0,
    }
    assert vector(q, "errors > 1", 0) == {key(__name__="errors", svc="a", code="500"): 2.0}
    assert vector(q, "total and on(svc) errors", 0) == {
        key(__name__="total", svc="a", team="x"): 10.0
    }
    assert vector(q, 'errors unless on(code) errors{code="500"}', 0) == {
        key(__name__="errors", svc="a", code="503"): 1.0
    }
    with pytest.raises(ExecutionError, match="many-to-many"):
        instant_query(querier=q, query="total / on(svc) errors", time_ms=T0)
    with pytest.raises(ExecutionError, match="same labelset"):
        instant_query(querier=q, query='-{code="500"}', time_ms=T0)


def test_functions_on_labels_and_histograms():
    q = in_memory(
        {
            counter("h_bucket", le="1"): [(0, 10.0)],
            counter("h_bucket", le="2"): [(0, 20.0)],
            counter("h_bucket", le="+Inf"): [(0, 20.0)],
            counter("up", instance="host-1:9090"): [(0, 1.0)],
        },
    )
    assert vector(q, "histogram_quantile(0.5, h_bucket)", 0) == {(): 1.0}
    assert vector(q, "histogram_quantile(0.75, h_bucket)", 0) == {(): 1.5}
    assert vector(q, "histogram_quantile(1, h_bucket)", 0) == {(): 2.0}
    got = vector(q, 'label_replace(up, "host", "$1", "instance", "(.*):.*")', 0)
    assert got == {key(__name__="up", instance="host-1:9090", host="host-1"): 1.0}
    got = vector(q, 'label_join(up, "both", "/", "__name__", "instance")', 0)
    assert got == {key(__name__="up", instance="host-1:9090", both="up/host-1:9090"): 1.0}
    assert vector(q, 'absent(nope{job="x", a=~"b"})', 0) == {key(job="x"): 1.0}
    assert vector(q, "absent(up)", 0) == {}
    assert scalar(q, "scalar(up) * 2", 0) == 2.0
    assert vector(q, "clamp(up * 5, 0, 3)", 0) == {key(instance="host-1:9090"): 3.0}
    assert vector(q, "round(up / 3, 0.1)", 0) == {key(instance="host-1:9090"): pytest.approx(0.3)}
    assert vector(q, "year(vector(0))", 0) == {(): 1970.0}
    assert vector(q, "day_of_week(vector(86400 * 3))", 0) == {(): 0.0}  # a Sunday
    assert vector(q, "days_in_month(vector(86400 * 40))", 0) == {(): 28.0}


def test_range_query_shape_and_scalars():
    q = in_memory({counter("g"): [(0, 1.0), (60, 2.0)]})
    data = range_query(querier=q, query="g", start_ms=T0, end_ms=T0 + 120_000, step_ms=30_000)
    (series,) = data["result"]
    assert series["metric"] == {"__name__": "g"}
    assert [v for _, v in series["values"]] == ["1", "1", "2", "2", "2"]
    assert series["values"][0][0] == T0 // 1000
    data = range_query(querier=q, query="time()", start_ms=T0, end_ms=T0 + 60_000, step_ms=60_000)
    assert data["result"] == [
        {
            "metric": {},
            "values": [[T0 // 1000, str(T0 // 1000)], [T0 // 1000 + 60, str(T0 // 1000 + 60)]],
        }
    ]
    with pytest.raises(BadData, match="range vector"):
        range_query(querier=q, query="g[1m]", start_ms=T0, end_ms=T0, step_ms=1000)
    instant = instant_query(querier=q, query="g[1m]", time_ms=T0 + 60_000)
    assert instant["resultType"] == "matrix"
    assert instant["result"][0]["values"] == [[T0 // 1000, "1"], [T0 // 1000 + 60, "2"]]


@pytest.mark.parametrize(
    "query",
    ["sum(", "rate(x)", "foo(x)", "1 + foo[5m]", 'x{a=~"("}', "", "holt_winters(x, 0.5)"],
)
def test_parse_errors_are_bad_data(query):
    with pytest.raises(BadData):
        instant_query(querier=in_memory({}), query=query, time_ms=T0)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (1e21, "1000000000000000000000"),
        (-2.5e-7, "-0.00000025"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
        (123456.0, "123456"),
    ],
)
def test_values_are_formatted_like_go(value, text):
    assert format_value(value) == text


def last_of_range(querier, query, start_s, end_s, step_s=15):
    """Each series' value at the last step of a range query (the whole history is loaded
    once for all steps, where a prefix sum would carry one window's values to the next)."""
    data = range_query(
        querier=querier,
        query=query,
        start_ms=T0 + start_s * 1000,
        end_ms=T0 + end_s * 1000,
        step_ms=step_s * 1000,
    )
    return {tuple(sorted(r["metric"].items())): float(r["values"][-1][1]) for r in data["result"]}


def test_a_non_finite_value_only_affects_the_windows_that_hold_it():
    # +Inf then a reset in one counter; a later window of it and another counter (later in
    # label order) must stay finite, as in Prometheus
    inf_then_reset = [(0, 0.0), (15, math.inf), (30, 1.0), (45, 2.0)]
    inf_then_reset += [(60 + 15 * i, 3.0 + i) for i in range(20)] + [(360, 0.0), (375, 1.0)]
    q = in_memory(
        {
            counter("c", case="a"): inf_then_reset,
            counter("c", case="b"): [(15 * i, float(i % 5)) for i in range(26)],
        }
    )
    assert vector(q, "increase(c[1m])", 40)[key(case="a")] == math.inf
    late = last_of_range(q, "increase(c[1m])", 35, 380)
    # (330: 21, 345: 22, 360: 0, 375: 1): 1 - 21 + 22 = 2, extrapolated by 60 s / 45 s
    assert late[key(case="a")] == pytest.approx(2 * 60 / 45)
    # (330: 2, 345: 3, 360: 4, 375: 0): 0 - 2 + 4 = 2, extrapolated likewise
    assert late[key(case="b")] == pytest.approx(2 * 60 / 45)


def test_resets_are_added_without_losing_small_ones_to_a_huge_one():
    q = in_memory({counter("c"): [(0, 1e17), (15, 1.0), (30, 0.0), (45, 1.0), (60, 0.0)]})
    # (30: 0, 45: 1, 60: 0): 0 - 0 + 1 for the reset at 60 (a prefix sum since 1e17 rounds the
    # 1 away and answers 0); extrapolated to zero at the start, nothing to add at the end
    assert last_of_range(q, "increase(c[35s])", 0, 60) == {(): 1.0}


def test_stdvar_over_time_follows_prometheus_welford():
    q = in_memory({counter("g"): [(15 * i, 1e17 + i) for i in range(8)]})
    # Prometheus's running mean with compensation sees these as one value (their spacing is 16;
    # the mean of a two-pass computation is off by a rounding step and answers 256)
    assert vector(q, "stdvar_over_time(g[2m])", 105)[key()] == 0.0
    q = in_memory({counter("g"): [(0, 1.0), (15, 3.0), (30, math.inf)]})
    assert math.isnan(vector(q, "stddev_over_time(g[1m])", 30)[key()])
    assert vector(q, "stddev_over_time(g[20s])", 15)[key()] == 1.0
