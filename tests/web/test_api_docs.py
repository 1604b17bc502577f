"""The API docs page: it links back to the dashboard and says who *Try it out* acts as; the
schema documents the ingest endpoints and the token schemes; and requests made from the page
(the session, the CSRF token from its start-up script) act for the org the page names."""

import re

import pytest
from django.test import Client

from backend.tenancy.access import SESSION_ORG_KEY
from backend.tenancy.models import ApiToken, Role
from backend.tenancy.services import member_add, org_create

pytestmark = pytest.mark.django_db
DOCS = "/api/docs/"


def _schema(api, user) -> dict:
    api.force_login(user)
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_page_links_back_and_names_the_org(client, tenants):
    assert client.get(DOCS).status_code == 302  # behind login
    client.force_login(tenants.member)
    page = client.get(DOCS)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'href="/">← Back to the dashboard</a>' in html
    assert 'href="/settings/tokens"' in html and 'href="/api/redoc/"' in html
    who = re.search(r'data-testid="docs-who">(.*?)</p>', html, re.S).group(1)
    assert "<strong>member</strong> (member) in <strong>Acme</strong> <code>acme</code>" in who
    assert "<script>" not in html  # the start-up script is a file (CSP)
    assert 'src="/api/docs/?script="' in html


def test_redoc_has_the_same_header(client, tenants):
    assert client.get("/api/redoc/").status_code == 302  # behind login
    client.force_login(tenants.member)
    page = client.get("/api/redoc/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'href="/">← Back to the dashboard</a>' in html
    assert 'href="/api/docs/">Swagger UI</a>' in html and 'href="/api/redoc/"' not in html
    assert "<strong>Acme</strong> <code>acme</code>" in html
    assert "redoc.standalone.js" in html  # ReDoc's own page inside


def test_an_outsider_sees_their_own_org_named(client, tenants):
    client.force_login(tenants.outsider)
    html = client.get(DOCS).content.decode()
    assert "<code>globex</code>" in html and "Acme" not in html


def test_the_schema_documents_ingest_and_tokens(api, tenants):
    schema = _schema(api, tenants.member)
    paths = schema["paths"]
    for path in ("/api/v1/push", "/api/v1/write", "/api/prom/push"):
        op = paths[path]["post"]
        assert op["tags"] == ["ingest"]
        assert "application/x-protobuf" in op["requestBody"]["content"]
        assert op["parameters"][0]["name"] == "Content-Encoding"
        assert {"204", "400", "401", "403", "413", "415", "429", "503"} <= set(op["responses"])
    for path in ("/v1/traces", "/otlp/v1/metrics", "/v1/metrics"):
        op = paths[path]["post"]
        assert set(op["requestBody"]["content"]) == {"application/x-protobuf", "application/json"}
        assert "200" in op["responses"] and "429" in op["responses"]
    zipkin = paths["/api/v2/spans"]["post"]
    assert "202" in zipkin["responses"] and "application/json" in zipkin["requestBody"]["content"]
    assert len({op["post"]["operationId"] for p, op in paths.items() if "post" in op}) == len(
        [p for p in paths.values() if "post" in p]
    )  # operation ids stay unique
    # The query APIs Grafana reads are there too.
    assert "/prometheus/api/v1/query" in paths and "/jaeger/api/traces" in paths
    assert "/zipkin/api/v2/traces" in paths
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearerAuth"]["description"],
    }
    assert schemes["basicAuth"]["scheme"] == "basic"
    assert paths["/api/v1/tokens"]["get"]["security"] == [
        {"bearerAuth": []},
        {"basicAuth": []},
        {"cookieAuth": []},
    ]
    assert paths["/api/v1/push"]["post"]["security"] == [{"bearerAuth": []}, {"basicAuth": []}]
    assert "ingest" in [t["name"] for t in schema["tags"]]


def _csrf_from_script(client) -> tuple[str, str]:
    script = client.get(DOCS, {"script": ""}).content.decode()
    # the interceptor's last header: the CSRF token on unsafe same-origin requests
    name, token = re.findall(r'request\.headers\["([^"]+)"\] = "([^"]+)";', script)[-1]
    return name, token


def test_try_it_out_acts_with_the_session_and_csrf(tenants):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(tenants.owner)
    assert browser.get(DOCS).status_code == 200
    header, token = _csrf_from_script(browser)
    assert header.lower() == "x-csrftoken"
    # GET: the session alone; the org comes from the session
    listed = browser.get("/api/v1/tokens")
    assert listed.status_code == 200 and listed.json() == []
    # POST without the CSRF token: refused; with it (what the docs' script adds): created
    body = {"name": "from-docs", "scopes": ["metrics:read"]}
    assert browser.post("/api/v1/tokens", body, content_type="application/json").status_code == 403
    made = browser.post(
        "/api/v1/tokens", body, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert made.status_code == 201, made.content
    assert ApiToken.objects.for_org(tenants.org).filter(name="from-docs").exists()
    assert not ApiToken.objects.for_org(tenants.other_org).filter(name="from-docs").exists()


def test_a_member_of_several_orgs_acts_for_the_one_the_dashboard_shows(client, tenants):
    zeta = org_create(slug="zeta", name="Zeta", owner=tenants.outsider)
    member_add(org=zeta, user=tenants.owner, role=Role.ADMIN, actor=tenants.outsider)
    client.force_login(tenants.owner)
    assert client.get("/api/v1/members").status_code == 400  # which org?
    client.post("/orgs/switch", {"org": "zeta"})
    page = client.get(DOCS).content.decode()
    assert "<code>zeta</code>" in page
    assert client.session[SESSION_ORG_KEY] == "zeta"
    members = client.get("/api/v1/members").json()
    assert sorted(m["username"] for m in members) == ["outsider", "owner"]
    # a fresh session that never switched: the page pins the org it names (the first)
    other = Client()
    other.force_login(tenants.owner)
    assert "<code>acme</code>" in other.get(DOCS).content.decode()
    assert other.session[SESSION_ORG_KEY] == "acme"
    assert other.get("/api/v1/members").status_code == 200
    assert other.get("/api/v1/members", {"org": "globex"}).status_code == 404
