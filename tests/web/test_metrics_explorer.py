"""The Metrics explorer page: who may open it, what it carries, and that the API calls it
makes with the session stay inside the viewer's organization."""

import pytest
from django.urls import reverse

from backend.tenancy.models import Role
from backend.tenancy.services import member_add, user_get_or_create
from tests.metrics.samples import counter, load

pytestmark = pytest.mark.django_db
NAMES = "/prometheus/api/v1/label/__name__/values"


@pytest.fixture
def data(tenants):
    load(tenants.org, {counter("acme_checkout_total", app="cart"): [(0, 1.0), (15, 2.0)]})
    load(tenants.other_org, {counter("globex_secret_total", app="vault"): [(0, 1.0)]})
    return tenants


def test_the_page_needs_a_login(client, db):
    response = client.get(reverse("web:metrics"))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_a_member_gets_the_explorer(client, tenants):
    client.force_login(tenants.member)
    page = client.get("/metrics")
    assert page.status_code == 200
    assert "web/metrics.html" in [t.name for t in page.templates]
    html = page.content.decode()
    assert 'id="panels"' in html and "<datalist" in html
    assert 'data-org="acme"' in html
    assert 'data-api="/prometheus/api/v1/"' in html
    assert "web/dist/explorer.js" in html and "web/dist/uPlot.min.css" in html
    assert f'href="{reverse("web:metrics")}" class="active">Metrics</a>' in html
    assert 'value="1h" data-seconds="3600" checked' in html
    # The onboarding (hidden until the browser finds no metric names) names this org.
    assert "/api/v1/push" in html and "<code>acme</code>" in html
    assert reverse("web:tokens") in html


def test_every_page_links_to_the_explorer(client, tenants):
    client.force_login(tenants.viewer)
    home = client.get("/").content.decode()
    assert f'<a href="{reverse("web:metrics")}" class="">Metrics</a>' in home
    assert 'class="nav-soon" title="Arrives with the PromQL engine"' not in home
    assert "Explore metrics" in home


def test_query_and_range_come_from_the_url_and_are_escaped(client, tenants):
    client.force_login(tenants.owner)
    page = client.get(
        "/metrics", {"q": '</textarea><script>alert("x")</script>', "range": "24h"}
    ).content.decode()
    # The queries are read from the URL in the browser (into the editor, as text): the
    # server renders none of them.
    assert "<script>alert" not in page and "alert(" not in page
    assert 'value="24h" data-seconds="86400" checked' in page
    fallback = client.get("/metrics", {"range": "3y"}).content.decode()
    assert 'value="1h" data-seconds="3600" checked' in fallback


def test_the_page_carries_no_metric_data(client, data):
    # Names and results come from the scoped API, never rendered into the page.
    client.force_login(data.owner)
    page = client.get("/metrics").content.decode()
    assert "acme_checkout_total" not in page
    assert "globex_secret_total" not in page


def test_an_outsider_sees_only_their_own_org(client, data):
    client.force_login(data.outsider)
    page = client.get("/metrics")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-org="globex"' in html
    assert "acme_checkout_total" not in html and 'data-org="acme"' not in html
    # A shared link naming another org answers as if it did not exist.
    assert client.get("/metrics", {"org": "acme", "q": "up"}).status_code == 404
    assert client.get("/metrics", {"org": "no-such-org"}).status_code == 404
    # The API calls the page makes are scoped the same way.
    assert client.get(NAMES, {"org": "acme"}).status_code == 404
    own = client.get(NAMES, {"org": "globex"}).json()
    assert own == {"status": "success", "data": ["globex_secret_total"]}
    query = client.get(
        "/prometheus/api/v1/query", {"org": "globex", "query": "acme_checkout_total"}
    )
    assert query.json()["data"]["result"] == []


def test_the_session_reads_the_api_like_the_page_does(client, data):
    client.force_login(data.viewer)
    names = client.get(NAMES, {"org": "acme"})
    assert names.json() == {"status": "success", "data": ["acme_checkout_total"]}
    bad = client.get(
        "/prometheus/api/v1/query_range",
        {"org": "acme", "query": "sum(", "start": 0, "end": 60, "step": 15},
    )
    assert bad.status_code == 400
    assert bad.json()["errorType"] == "bad_data" and "parse error" in bad.json()["error"]


def test_a_shared_link_switches_to_its_org_for_members_of_both(client, data):
    member_add(org=data.other_org, user=data.owner, role=Role.VIEWER, actor=data.outsider)
    client.force_login(data.owner)
    page = client.get("/metrics", {"org": "globex", "q": "up"})
    assert page.status_code == 200
    assert 'data-org="globex"' in page.content.decode()
    assert page.context["current_org"].slug == "globex"
    # The sidebar and the other pages follow, as with the org switcher.
    assert client.get("/").context["current_org"].slug == "globex"


def test_a_user_without_an_org_gets_a_404(client, db):
    loner = user_get_or_create(username="loner", password="x" * 20)
    client.force_login(loner)
    assert client.get("/metrics").status_code == 404
