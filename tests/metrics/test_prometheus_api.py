"""The Prometheus HTTP API under /prometheus/api/v1: envelopes, GET and form POST, auth,
limits and isolation between orgs."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.tenancy.models import Scope
from backend.tenancy.services import limits_update
from tests.helpers.credentials import basic, bearer
from tests.metrics.samples import T0, counter, load

pytestmark = pytest.mark.django_db
BASE = "/prometheus/api/v1"
T0_S = T0 // 1000


@pytest.fixture
def data(tenants):
    load(
        tenants.org,
        {
            counter("istio_requests_total", app="reviews", code="200"): [
                (i * 15, 10.0 * i) for i in range(41)
            ],
            counter("istio_requests_total", app="ratings", code="503"): [
                (i * 15, 1.0 * i) for i in range(41)
            ],
            counter("up", job="mesh"): [(i * 15, 1.0) for i in range(41)],
        },
    )
    load(
        tenants.other_org,
        {counter("istio_requests_total", app="secret", code="200"): [(0, 1.0)]},
    )
    return tenants


def reader(tenants):
    return bearer(tenants.token([Scope.METRICS_READ]))


def test_instant_query_get_and_form_post_agree(api, data):
    auth = reader(data)
    params = {"query": "sum by (app) (rate(istio_requests_total[1m]))", "time": T0_S + 600}
    got = api.get(f"{BASE}/query", params, **auth)
    posted = api.post(f"{BASE}/query", params, **auth)  # form-encoded, as Grafana sends
    assert got.status_code == posted.status_code == 200
    assert got.json() == posted.json()
    body = got.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    result = {r["metric"]["app"]: r["value"] for r in body["data"]["result"]}
    assert result["reviews"][0] == T0_S + 600
    assert float(result["reviews"][1]) == pytest.approx(10 / 15)
    assert set(result) == {"reviews", "ratings"}


def test_range_query_returns_a_matrix(api, data):
    params = {
        "query": "up",
        "start": T0_S,
        "end": T0_S + 120,
        "step": "60s",
    }
    body = api.get(f"{BASE}/query_range", params, **reader(data)).json()
    assert body == {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {
                    "metric": {"__name__": "up", "job": "mesh"},
                    "values": [[T0_S, "1"], [T0_S + 60, "1"], [T0_S + 120, "1"]],
                }
            ],
        },
    }
    rfc3339 = api.get(
        f"{BASE}/query_range",
        {"query": "up", "start": "2023-11-14T22:13:00Z", "end": "2023-11-14T22:15:00Z", "step": 60},
        **reader(data),
    )
    assert rfc3339.status_code == 200
    assert rfc3339.json()["data"]["result"][0]["values"][0][0] == T0_S


def test_scalar_and_string_results(api, data):
    auth = reader(data)
    body = api.get(f"{BASE}/query", {"query": "1 + 1", "time": 100}, **auth).json()
    assert body["data"] == {"resultType": "scalar", "result": [100, "2"]}
    body = api.get(f"{BASE}/query", {"query": '"hi"', "time": 100.5}, **auth).json()
    assert body["data"] == {"resultType": "string", "result": [100.5, "hi"]}


@pytest.mark.parametrize(
    ("path", "params", "status", "error_type", "message"),
    [
        ("query", {"query": "sum("}, 400, "bad_data", "parse error"),
        ("query", {"query": "up", "time": "yesterday"}, 400, "bad_data", 'parameter "time"'),
        ("query", {}, 400, "bad_data", "query"),
        ("query_range", {"query": "up", "start": 10, "end": 5, "step": 1}, 400, "bad_data", "end"),
        ("query_range", {"query": "up", "start": 1, "end": 5, "step": 0}, 400, "bad_data", "step"),
        (
            "query_range",
            {"query": "up", "start": 1, "end": 5, "step": "x"},
            400,
            "bad_data",
            "step",
        ),
        (
            "query_range",
            {"query": "up", "start": 0, "end": 100000, "step": 1},
            400,
            "bad_data",
            "11,000",
        ),
        (
            "query_range",
            {"query": "up[5m]", "start": 1, "end": 5, "step": 1},
            400,
            "bad_data",
            "range vector",
        ),
        ("query", {"query": "up + on() istio_requests_total"}, 422, "execution", "many-to-many"),
        ("query", {"query": 'up{job=~"a++"}'}, 400, "bad_data", "regexp"),  # RE2 refuses it
        ("query", {"query": 'up{job=~"a{1001}"}'}, 400, "bad_data", "regexp"),
        ("series", {"match[]": 'up{job=~"a++"}'}, 400, "bad_data", "regexp"),
        ("series", {}, 400, "bad_data", "match[]"),
        ("series", {"match[]": "rate(up[5m])"}, 400, "bad_data", "match[]"),
        ("label/0bad/values", {}, 400, "bad_data", "label name"),
        (
            "query",
            {"query": "istio_requests_total + on() up"},
            422,
            "execution",
            "multiple matches for labels",
        ),
    ],
)
def test_errors_use_prometheus_envelope(api, data, path, params, status, error_type, message):
    response = api.get(f"{BASE}/{path}", {"time": T0_S + 60, **params}, **reader(data))
    assert response.status_code == status
    body = response.json()
    assert body["status"] == "error"
    assert body["errorType"] == error_type
    assert message in body["error"]


def test_a_database_fault_is_503_unavailable(api, data):
    """A real fault of the real database (the catalog table gone, inside this test's
    transaction, which is rolled back): 503 unavailable, not a 500 page."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("ALTER TABLE metric_series RENAME TO metric_series_away")
    response = api.get(f"{BASE}/query", {"query": "up"}, **reader(data))
    assert response.status_code == 503
    assert response.json()["errorType"] == "unavailable"


def test_series_labels_and_values(api, data):
    auth = reader(data)
    series = api.get(f"{BASE}/series", {"match[]": 'istio_requests_total{code="503"}'}, **auth)
    assert series.json()["data"] == [
        {"__name__": "istio_requests_total", "app": "ratings", "code": "503"}
    ]
    both = api.post(f"{BASE}/series", {"match[]": ["up", "istio_requests_total"]}, **auth)
    assert len(both.json()["data"]) == 3
    labels = api.get(f"{BASE}/labels", **auth).json()["data"]
    assert labels == ["__name__", "app", "code", "job"]
    matched = api.get(f"{BASE}/labels", {"match[]": "up"}, **auth).json()["data"]
    assert matched == ["__name__", "job"]
    names = api.get(f"{BASE}/label/__name__/values", **auth).json()["data"]
    assert names == ["istio_requests_total", "up"]
    apps = api.get(f"{BASE}/label/app/values", {"match[]": '{code="200"}'}, **auth).json()
    assert apps["data"] == ["reviews"]


def test_start_and_end_leave_out_metrics_without_samples_then(api, data):
    load(data.org, {counter("old_metric", job="gone"): [(-86_400, 1.0)]})
    auth = reader(data)
    window = {"start": T0_S - 3600, "end": T0_S + 3600}
    names = api.get(f"{BASE}/label/__name__/values", window, **auth).json()["data"]
    assert names == ["istio_requests_total", "up"]
    everything = api.get(f"{BASE}/label/__name__/values", **auth).json()["data"]
    assert "old_metric" in everything
    series = api.get(f"{BASE}/series", {"match[]": '{job=~".+"}', **window}, **auth).json()
    assert series["data"] == [{"__name__": "up", "job": "mesh"}]
    # labels and label values without match[] honour start/end too
    assert api.get(f"{BASE}/labels", window, **auth).json()["data"] == [
        "__name__",
        "app",
        "code",
        "job",
    ]
    load(data.org, {counter("old_metric", zone="eu"): [(-86_400, 1.0)]})
    assert "zone" in api.get(f"{BASE}/labels", **auth).json()["data"]
    assert "zone" not in api.get(f"{BASE}/labels", window, **auth).json()["data"]
    jobs = api.get(f"{BASE}/label/job/values", window, **auth).json()["data"]
    assert jobs == ["mesh"]
    assert api.get(f"{BASE}/label/job/values", **auth).json()["data"] == ["gone", "mesh"]
    old = {"start": T0_S - 86_400 - 60, "end": T0_S - 86_400 + 60}
    assert api.get(f"{BASE}/label/job/values", old, **auth).json()["data"] == ["gone"]
    # another org's labels never show
    outsider = bearer(data.outsider_token([Scope.METRICS_READ]))
    assert api.get(f"{BASE}/label/app/values", window, **outsider).json()["data"] == ["secret"]


def test_the_other_endpoints_grafana_calls(api, data):
    auth = reader(data)
    info = api.get(f"{BASE}/status/buildinfo", **auth).json()["data"]
    assert info["version"].startswith("2.")
    assert api.get(f"{BASE}/rules", **auth).json()["data"] == {"groups": []}
    assert api.get(f"{BASE}/query_exemplars", {"query": "up"}, **auth).json()["data"] == []
    assert api.get(f"{BASE}/metadata", **auth).json() == {"status": "success", "data": {}}


def test_a_post_without_a_form_body_reads_the_query_string_only(api, data):
    """An empty POST with a non-form content type gave DRF's plain ``{}`` as the form, which
    has no ``getlist``: a 500 on series and labels (found by tests/reliability)."""
    auth = reader(data)
    for content_type in ("application/json", "text/plain", "application/octet-stream"):
        labels = api.post(f"{BASE}/labels", data=b"", content_type=content_type, **auth)
        assert labels.status_code == 200, labels.content
        assert labels.json()["data"] == ["__name__", "app", "code", "job"]
        series = api.post(f"{BASE}/series?match[]=up", data=b"", content_type=content_type, **auth)
        assert series.status_code == 200 and len(series.json()["data"]) == 1
        missing = api.post(f"{BASE}/series", data=b"", content_type=content_type, **auth)
        assert missing.status_code == 400
        assert missing.json()["errorType"] == "bad_data"


def test_auth_basic_session_and_scopes(api, data):
    secret = data.token([Scope.METRICS_READ])
    ok = api.get(f"{BASE}/query", {"query": "up", "time": T0_S}, **basic(data.org.slug, secret))
    assert ok.status_code == 200
    assert len(ok.json()["data"]["result"]) == 1
    writer = bearer(data.token([Scope.METRICS_WRITE]))
    assert api.get(f"{BASE}/query", {"query": "up"}, **writer).status_code == 403
    assert api.get(f"{BASE}/query", {"query": "up"}).status_code in (401, 403)
    api.force_login(data.viewer)
    session = api.get(f"{BASE}/query", {"query": "up", "time": T0_S, "org": data.org.slug})
    assert session.status_code == 200
    assert len(session.json()["data"]["result"]) == 1


def test_outsiders_see_nothing_of_this_org(api, data):
    outsider = bearer(data.outsider_token([Scope.METRICS_READ]))
    query = api.get(f"{BASE}/query", {"query": "istio_requests_total", "time": T0_S}, **outsider)
    assert [r["metric"]["app"] for r in query.json()["data"]["result"]] == ["secret"]
    ranged = api.get(
        f"{BASE}/query_range",
        {"query": "up", "start": T0_S, "end": T0_S + 60, "step": 15},
        **outsider,
    )
    assert ranged.json()["data"]["result"] == []
    series = api.get(f"{BASE}/series", {"match[]": '{__name__=~".+"}'}, **outsider).json()
    assert [s["app"] for s in series["data"]] == ["secret"]
    assert api.get(f"{BASE}/labels", **outsider).json()["data"] == ["__name__", "app", "code"]
    values = api.get(f"{BASE}/label/app/values", **outsider).json()["data"]
    assert values == ["secret"]
    names = api.get(f"{BASE}/label/__name__/values", **outsider).json()["data"]
    assert names == ["istio_requests_total"]
    # naming the other org explicitly does not help
    other = api.get(f"/api/v1/orgs/{data.org.slug}/limits", **outsider)
    assert other.status_code == 404


def test_per_org_query_limits(api, data):
    limits_update(org=data.org, changes={"query_max_series": 1, "query_max_samples": 30})
    auth = reader(data)
    too_many = api.get(f"{BASE}/query", {"query": "istio_requests_total", "time": T0_S}, **auth)
    assert too_many.status_code == 422
    assert too_many.json()["errorType"] == "execution"
    assert "maximum number of series" in too_many.json()["error"]
    samples = api.get(f"{BASE}/query", {"query": "up[10m]", "time": T0_S + 600}, **auth)
    assert samples.status_code == 422
    assert "too many samples" in samples.json()["error"]
    # the least timeout is 1 ms, which one selector over this small store can beat on a fast
    # machine: 100 selectors take tens of ms to evaluate (and stay within the sample limit)
    limits_update(org=data.org, changes={"query_max_samples": 1_000_000})
    slow = " + ".join(["up"] * 100)
    timed_out = api.get(f"{BASE}/query", {"query": slow, "time": T0_S, "timeout": "0.0001"}, **auth)
    assert timed_out.status_code == 503
    assert timed_out.json()["errorType"] == "timeout"


EXPRESSION_PARTS = [
    "up",
    "istio_requests_total",
    '{app=~"r.*"}',
    "rate(",
    "sum",
    " by (app) ",
    "(",
    ")",
    "[5m]",
    "[5m:1m]",
    " offset 1m",
    " @ 100",
    " + ",
    " / on(app) ",
    " > bool ",
    " and ",
    " or ",
    "1",
    "-",
    "histogram_quantile(0.9, ",
    "topk(2, ",
    "label_replace(",
    '"x"',
    ", ",
    "absent(",
    "NaN",
    "Inf",
    "{",
    "}",
    "scalar(",
    "vector(",
    "count_values(",
    "quantile_over_time(0.5, ",
    "holt_winters(",
    "0.5",
    "time()",
]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(parts=st.lists(st.sampled_from(EXPRESSION_PARTS), min_size=1, max_size=8))
def test_fuzzed_expressions_never_answer_5xx(api, data, parts):
    auth = reader(data)
    query = "".join(parts)
    instant = api.get(f"{BASE}/query", {"query": query, "time": T0_S + 300}, **auth)
    assert instant.status_code in (200, 400, 422), (query, instant.content)
    ranged = api.get(
        f"{BASE}/query_range",
        {"query": query, "start": T0_S, "end": T0_S + 600, "step": 60},
        **auth,
    )
    assert ranged.status_code in (200, 400, 422), (query, ranged.content)
