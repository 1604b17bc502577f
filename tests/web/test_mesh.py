"""The mesh page and its graph endpoint: login, the page's wiring, parameters refused with a
reason, and every caller kept inside its own organization."""

import pytest
from django_redis import get_redis_connection

from tests.helpers.credentials import bearer
from tests.metrics.samples import load
from tests.metrics.test_mesh_graph import NOW, call, ramp

pytestmark = pytest.mark.django_db
GRAPH = "/mesh/graph"


@pytest.fixture
def mesh(tenants):
    load(tenants.org, {call("source", "frontend-v1", "cart-v1"): ramp(6)}, base_ms=NOW)
    load(tenants.other_org, {call("source", "vault-v1", "secrets-v1"): ramp(3)}, base_ms=NOW)
    return tenants


def test_the_page_and_graph_need_a_login(client, db):
    assert client.get("/mesh")["Location"].startswith("/login/")
    assert client.get(GRAPH).status_code in (401, 403)


def test_a_member_gets_the_page(client, tenants, settings):
    settings.PUBLIC_URL = "https://canopy.example.com"
    client.force_login(tenants.viewer)
    html = client.get("/mesh", {"group": "workload", "window": "15m"}).content.decode()
    assert 'data-graph-url="/mesh/graph"' in html
    assert "web/dist/mesh.js" in html
    assert '<option value="workload" selected>' in html
    assert 'value="15m" checked' in html
    assert 'href="/mesh" class="active">Mesh</a>' in html
    # The empty state says what to send and where.
    assert "https://canopy.example.com/api/v1/push" in html and "No Istio traffic" in html


def test_the_graph_with_the_session(client, mesh):
    client.force_login(mesh.member)
    graph = client.get(GRAPH, {"org": "acme", "group": "workload", "time": NOW / 1000}).json()
    assert [(e["source"], e["target"]) for e in graph["edges"]] == [
        ("wl:shop/frontend-v1", "wl:shop/cart-v1")
    ]
    assert graph["edges"][0]["rps"] == pytest.approx(6, rel=0.02)


def test_bad_parameters_are_400_with_the_reason(client, mesh):
    client.force_login(mesh.member)
    for params, reason in (
        ({"group": "pod"}, "group must be one of workload, app, version, namespace"),
        ({"window": "3d"}, "window must be one of 1m, 5m, 15m, 1h, 6h"),
        ({"time": "soon"}, "Unix seconds"),
    ):
        response = client.get(GRAPH, {"org": "acme", **params})
        assert response.status_code == 400, params
        assert reason in str(response.json())


def test_outsiders_see_only_their_own_mesh(client, api, mesh):
    client.force_login(mesh.outsider)
    assert client.get(GRAPH, {"org": "acme"}).status_code == 404
    own = client.get(GRAPH, {"org": "globex", "group": "workload", "time": NOW / 1000}).json()
    assert {e["target"] for e in own["edges"]} == {"wl:shop/secrets-v1"}
    # A token of the other org reads that org, whatever it asks for.
    secret = mesh.outsider_token()
    answer = api.get(GRAPH, {"group": "workload", "time": NOW / 1000}, **bearer(secret))
    assert {e["target"] for e in answer.json()["edges"]} == {"wl:shop/secrets-v1"}
    # (a token's org is its own: ?org= never widens it)
    asked = api.get(
        GRAPH, {"org": "acme", "group": "workload", "time": NOW / 1000}, **bearer(secret)
    )
    assert {e["target"] for e in asked.json()["edges"]} == {"wl:shop/secrets-v1"}
    # A token without metrics:read is refused.
    writer = mesh.token(["metrics:write"])
    assert api.get(GRAPH, **bearer(writer)).status_code == 403


def test_the_workload_page(client, mesh):
    assert client.get("/mesh/workload/shop/cart-v1")["Location"].startswith("/login/")
    client.force_login(mesh.member)
    html = client.get("/mesh/workload/shop/cart-v1").content.decode()
    assert 'data-kind="workload" data-namespace="shop" data-name="cart-v1"' in html
    assert 'data-prom="/prometheus/api/v1/"' in html and 'data-jaeger="/jaeger/api/"' in html
    assert "web/dist/workload.js" in html
    assert client.get("/mesh/app/shop/cart").status_code == 200
    assert client.get("/mesh/pod/shop/cart").status_code == 404
    assert client.get("/mesh/workload/shop/<script>").status_code == 404
    # The page carries no data; another org's link answers as if it did not exist.
    client.force_login(mesh.outsider)
    assert client.get("/mesh/workload/shop/cart-v1", {"org": "acme"}).status_code == 404


def _targets(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {e["target"] for e in response.json()["edges"]}


def test_the_graph_is_kept_a_few_seconds_per_org(client, api, mesh, settings):
    """The cache: a second ask within MESH_GRAPH_CACHE_SECONDS gets the kept answer (new
    traffic shows once it expires), per org: the same parameters never cross orgs."""
    settings.MESH_GRAPH_CACHE_SECONDS = 10
    client.force_login(mesh.member)
    params = {"org": "acme", "group": "workload", "time": NOW / 1000}
    assert _targets(client.get(GRAPH, params)) == {"wl:shop/cart-v1"}
    redis = get_redis_connection("default")
    keys = [k.decode() for k in redis.scan_iter("canopy:mesh-graph:*")]
    assert keys == [f"canopy:mesh-graph:v1:{mesh.org.pk}:workload:5m:{NOW}"]
    assert 0 < redis.ttl(keys[0]) <= 10

    # New traffic within the cache's life: the kept answer is served as is.
    load(mesh.org, {call("source", "frontend-v1", "ads-v1"): ramp(2)}, base_ms=NOW)
    assert _targets(client.get(GRAPH, params)) == {"wl:shop/cart-v1"}

    # The other org, same parameters: its own graph, never acme's kept one, by session and
    # by token (even one asking for ?org=acme).
    client.force_login(mesh.outsider)
    own = client.get(GRAPH, {**params, "org": "globex"})
    assert _targets(own) == {"wl:shop/secrets-v1"}
    assert client.get(GRAPH, params).status_code == 404
    secret = mesh.outsider_token()
    assert _targets(api.get(GRAPH, params, **bearer(secret))) == {"wl:shop/secrets-v1"}
    assert len(list(redis.scan_iter("canopy:mesh-graph:*"))) == 2

    # Expired (deleted here): built again, with the new edge.
    redis.delete(keys[0])
    client.force_login(mesh.member)
    assert _targets(client.get(GRAPH, params)) == {"wl:shop/cart-v1", "wl:shop/ads-v1"}


def test_now_is_kept_per_org_grouping_and_window(client, mesh, settings):
    settings.MESH_GRAPH_CACHE_SECONDS = 10
    client.force_login(mesh.member)
    first = client.get(GRAPH, {"org": "acme", "group": "app"}).json()
    again = client.get(GRAPH, {"org": "acme", "group": "app"}).json()
    assert again["time"] == first["time"]  # the kept answer, built for its own time
    other = client.get(GRAPH, {"org": "acme", "group": "namespace"}).json()
    assert other["grouping"] == "namespace"
    redis = get_redis_connection("default")
    assert sorted(k.decode() for k in redis.scan_iter("canopy:mesh-graph:*")) == [
        f"canopy:mesh-graph:v1:{mesh.org.pk}:app:5m:now",
        f"canopy:mesh-graph:v1:{mesh.org.pk}:namespace:5m:now",
    ]


def test_the_cache_off_builds_every_time(client, mesh, settings):
    settings.MESH_GRAPH_CACHE_SECONDS = 0
    client.force_login(mesh.member)
    params = {"org": "acme", "group": "workload", "time": NOW / 1000}
    assert _targets(client.get(GRAPH, params)) == {"wl:shop/cart-v1"}
    load(mesh.org, {call("source", "frontend-v1", "ads-v1"): ramp(2)}, base_ms=NOW)
    assert _targets(client.get(GRAPH, params)) == {"wl:shop/cart-v1", "wl:shop/ads-v1"}
    assert not list(get_redis_connection("default").scan_iter("canopy:mesh-graph:*"))
