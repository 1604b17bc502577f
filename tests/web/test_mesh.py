"""The mesh page and its graph endpoint: login, the page's wiring, parameters refused with a
reason, and every caller kept inside its own organization."""

import pytest

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
