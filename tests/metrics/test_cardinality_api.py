"""Mimir's cardinality API over the org's catalog: shapes, counts, parameters refused with the
reason, and isolation between orgs."""

import pytest

from backend.tenancy.services import limits_update
from tests.helpers.credentials import bearer
from tests.metrics.samples import counter, load

pytestmark = pytest.mark.django_db
BASE = "/prometheus/api/v1/cardinality/"


@pytest.fixture
def catalog(tenants):
    data = {}
    for pod in range(6):
        for code in ("200", "503"):
            data[counter("http_requests_total", pod=f"web-{pod}", code=code, job="web")] = [
                (0, 1.0)
            ]
    data[counter("up", job="web")] = [(0, 1.0)]
    data[counter("up", job="db")] = [(0, 1.0)]
    load(tenants.org, data)
    load(tenants.other_org, {counter("globex_secret_total", vault="main"): [(0, 1.0)]})
    return tenants


def read(api, tenants, path, params=None, secret=None):
    secret = secret or tenants.token(["metrics:read"])
    return api.get(BASE + path, params or {}, **bearer(secret))


def test_label_names(api, catalog):
    answer = read(api, catalog, "label_names").json()
    assert answer == {
        "label_values_count_total": 6 + 2 + 2 + 2,  # pod, __name__, code, job
        "label_names_count": 4,
        "cardinality": [
            {"label_name": "pod", "label_values_count": 6},
            {"label_name": "__name__", "label_values_count": 2},
            {"label_name": "code", "label_values_count": 2},
            {"label_name": "job", "label_values_count": 2},
        ],
    }
    limited = read(api, catalog, "label_names", {"limit": "1", "selector": "up"}).json()
    assert limited["label_names_count"] == 2
    assert limited["cardinality"] == [{"label_name": "job", "label_values_count": 2}]


def test_label_values_and_top_metrics(api, catalog):
    answer = read(api, catalog, "label_values", {"label_names[]": ["__name__", "code"]}).json()
    assert answer["series_count_total"] == 14
    by_name = {item["label_name"]: item for item in answer["labels"]}
    assert by_name["__name__"] == {
        "label_name": "__name__",
        "label_values_count": 2,
        "series_count": 14,
        "cardinality": [
            {"label_value": "http_requests_total", "series_count": 12},
            {"label_value": "up", "series_count": 2},
        ],
    }
    assert by_name["code"]["series_count"] == 12
    assert by_name["code"]["cardinality"] == [
        {"label_value": "200", "series_count": 6},
        {"label_value": "503", "series_count": 6},
    ]
    # With a selector the same numbers come from the matched series.
    picked = read(
        api,
        catalog,
        "label_values",
        {"label_names[]": "pod", "selector": '{code="503"}', "limit": 2},
    ).json()
    assert picked["series_count_total"] == 6
    assert picked["labels"][0]["label_values_count"] == 6
    assert len(picked["labels"][0]["cardinality"]) == 2


def test_active_series(api, catalog):
    answer = read(api, catalog, "active_series", {"selector": "up"}).json()
    assert answer == {"data": [{"__name__": "up", "job": "db"}, {"__name__": "up", "job": "web"}]}


@pytest.mark.parametrize(
    ("path", "params", "reason"),
    [
        ("active_series", {}, "a series selector is required"),
        ("active_series", {"selector": "sum(up)"}, "expected a series selector"),
        ("active_series", {"selector": "up{"}, 'invalid parameter "selector"'),
        ("label_names", {"limit": "9999"}, "an integer from 0 to 500"),
        ("label_names", {"count_method": "guess"}, "one of inmemory, active"),
        ("label_values", {}, "at least one label name"),
        ("label_values", {"label_names[]": "1bad"}, '"1bad"'),
    ],
)
def test_bad_parameters_are_400(api, catalog, path, params, reason):
    response = read(api, catalog, path, params)
    assert response.status_code == 400
    assert response.json()["errorType"] == "bad_data"
    assert reason in response.json()["error"]


def test_a_selector_over_the_series_limit_is_refused(api, catalog):
    limits_update(org=catalog.org, changes={"query_max_series": 3})
    response = read(api, catalog, "active_series", {"selector": "http_requests_total"})
    assert response.status_code == 400
    assert "more than 3 series" in response.json()["error"]


def test_orgs_only_count_their_own_series(api, client, catalog):
    outsider = catalog.outsider_token(["metrics:read"])
    names = read(api, catalog, "label_names", secret=outsider).json()
    assert [c["label_name"] for c in names["cardinality"]] == ["__name__", "vault"]
    values = read(
        api, catalog, "label_values", {"label_names[]": "__name__"}, secret=outsider
    ).json()
    assert values["series_count_total"] == 1
    series = read(api, catalog, "active_series", {"selector": '{__name__=~".+"}'}, secret=outsider)
    assert series.json() == {"data": [{"__name__": "globex_secret_total", "vault": "main"}]}
    # The session of the other org's owner: acme is not found, globex is its own.
    client.force_login(catalog.outsider)
    assert client.get(BASE + "label_names", {"org": "acme"}).status_code == 404
    assert client.get(BASE + "label_names", {"org": "globex"}).json()["label_names_count"] == 2
    # A token without metrics:read is refused.
    writer = catalog.token(["metrics:write"])
    assert read(api, catalog, "label_names", secret=writer).status_code == 403
