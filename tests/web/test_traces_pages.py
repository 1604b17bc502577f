"""The Traces pages (search, one trace, the service map): who may open them, what they carry
(nothing of the org's traces: the browser reads those from the org-scoped Jaeger API), and that
the calls they make with the session stay inside the viewer's organization."""

import time

import pytest
from django.urls import reverse

from backend.pipeline.drain import org_drain
from backend.tenancy.models import Role
from backend.tenancy.services import member_add, user_get_or_create
from backend.tracing import dependencies
from tests.helpers.credentials import bearer
from tests.helpers.otlp import TRACE, otlp_request, post_otlp, span

pytestmark = pytest.mark.django_db
OTHER_TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
PAGES = ["/traces", "/traces/map", f"/traces/{TRACE.hex()}"]
GRAPH = "/traces/map/graph"


@pytest.fixture
def traced(client, tenants):
    """acme: acme-checkout → acme-ledger (failing), rolled up; globex: one secret span."""
    start = (time.time_ns() - 5 * 60 * 10**9) // (60 * 10**9) * (60 * 10**9)
    token = tenants.token(["traces:write"])
    root = span("eee19b7ec3c1b174", name="GET /cart", start=start)
    child = span("eee19b7ec3c1b175", "eee19b7ec3c1b174", name="PostEntry", start=start + 1000)
    child.status.code = 2
    for spans, service in (([root], "acme-checkout"), ([child], "acme-ledger")):
        request = otlp_request(spans, service=service)
        assert post_otlp(client, request.SerializeToString(), token).status_code == 200
    org_drain(signal="traces", org_id=tenants.org.pk)
    secret = span("aaa19b7ec3c1b174", name="OpenVault", start=start)
    secret.trace_id = OTHER_TRACE
    request = otlp_request([secret], service="globex-vault")
    outsider = tenants.outsider_token(["traces:write"])
    assert post_otlp(client, request.SerializeToString(), outsider).status_code == 200
    org_drain(signal="traces", org_id=tenants.other_org.pk)
    # What the beat job does; these minutes are past the two-minute grace for late spans.
    assert dependencies.rollup_due() > 0
    return tenants


@pytest.mark.parametrize("url", [*PAGES, GRAPH])
def test_the_pages_need_a_login(client, db, url):
    response = client.get(url)
    if url == GRAPH:
        assert response.status_code in (401, 403)
    else:
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


def test_a_member_gets_the_pages(client, tenants):
    client.force_login(tenants.member)
    expected = {
        "/traces": ("web/traces.html", "web/traces.js"),
        "/traces/map": ("web/traces_map.html", "web/traces-map.js"),
        f"/traces/{TRACE.hex()}": ("web/trace.html", "web/trace.js"),
    }
    for url, (template, script) in expected.items():
        page = client.get(url)
        assert page.status_code == 200, url
        assert template in [t.name for t in page.templates]
        html = page.content.decode()
        assert 'data-org="acme"' in html and 'data-api="/jaeger/api/"' in html
        assert "web/traces-common.js" in html and script in html
        assert f'href="{reverse("web:traces")}" class="active">Traces</a>' in html
    search = client.get("/traces").content.decode()
    assert 'id="service"' in search and 'id="operation"' in search and 'id="tags"' in search
    assert 'value="1h" data-seconds="3600" checked' in search
    assert 'name="sortBy" value="start" checked' in search
    assert '<a href="/traces?org=acme" aria-current="page">Search</a>' in search
    trace = client.get(f"/traces/{TRACE.hex().upper()}").content.decode()
    assert f'data-trace-id="{TRACE.hex()}"' in trace
    assert f"/jaeger/api/traces/{TRACE.hex()}?org=acme" in trace  # the JSON link
    graph = client.get("/traces/map").content.decode()
    assert f'data-graph-url="{GRAPH}"' in graph
    assert '<a href="/traces/map?org=acme" aria-current="page">Service map</a>' in graph


def test_the_onboarding_says_how_to_send_and_read_spans(client, tenants, settings):
    # the address senders and clusters reach (CANOPY_PUBLIC_URL), not the browser's
    settings.PUBLIC_URL = "https://canopy.example.com"
    client.force_login(tenants.viewer)
    for url in ("/traces", "/traces/map"):
        html = client.get(url).content.decode()
        # Hidden until the browser finds no services.
        assert 'data-testid="no-traces" hidden' in html
        assert "https://canopy.example.com/v1/traces" in html
        assert "https://canopy.example.com/api/v2/spans" in html
        assert "<code>canopy.example.com:4317</code>" in html
        assert "telemetry.istio.io/v1" in html and "initialMetadata" in html
        assert "service: canopy.example.com" in html and "testserver" not in html
        assert "export OTEL_EXPORTER_OTLP_ENDPOINT='https://canopy.example.com'" in html
        assert "https://canopy.example.com/jaeger" in html and "<code>acme</code>" in html
        assert "<code>traces:read</code>" in html and reverse("web:tokens") in html


def test_every_page_links_to_traces(client, tenants):
    client.force_login(tenants.viewer)
    home = client.get("/").content.decode()
    assert f'<a href="{reverse("web:traces")}" class="">Traces</a>' in home
    assert 'class="nav-soon" title="Arrives with trace ingest"' not in home
    assert "Explore traces" in home and "traced services · search →" in home


def test_search_state_from_the_url_is_escaped(client, tenants):
    client.force_login(tenants.owner)
    page = client.get(
        "/traces",
        {
            "service": '"><script>alert(1)</script>',
            "tags": '"><img src=x onerror=alert(2)>',
            "minDuration": "<b>",
            "lookback": "24h",
            "sortBy": "duration",
            "errorsOnly": "true",
            "limit": "50",
        },
    ).content.decode()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>" not in page
    assert 'data-wanted="&quot;&gt;&lt;script&gt;' in page
    assert 'value="&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"' in page
    assert 'value="24h" data-seconds="86400" checked' in page
    assert 'value="duration" checked' in page
    assert 'name="errorsOnly" value="true" checked' in page
    assert 'id="limit" name="limit" type="number" min="1" max="1500" value="50"' in page
    for limit in ("-1", "0", "²", "9999"):
        fallback = client.get("/traces", {"lookback": "3y", "limit": limit}).content.decode()
        assert 'value="1h" data-seconds="3600" checked' in fallback
        assert 'max="1500" value="20"' in fallback
    a_map = client.get("/traces/map", {"lookback": "7d"}).content.decode()
    assert 'value="7d" data-seconds="604800" checked' in a_map


def test_the_pages_carry_no_trace_data(client, traced):
    client.force_login(traced.owner)
    for url in [*PAGES, f"/traces/{OTHER_TRACE.hex()}"]:
        html = client.get(url).content.decode()
        for name in ("acme-checkout", "acme-ledger", "GET /cart", "globex-vault", "OpenVault"):
            assert name not in html, (url, name)


def test_trace_ids_in_the_url(client, tenants):
    client.force_login(tenants.member)
    assert client.get("/traces/not-a-trace").status_code == 404
    assert client.get("/traces/" + "a" * 33).status_code == 404
    short = client.get("/traces/ABC123")
    assert short.status_code == 200 and 'data-trace-id="abc123"' in short.content.decode()


def test_the_go_to_trace_box(client, tenants):
    client.force_login(tenants.member)
    found = client.get("/traces", {"trace": f" {TRACE.hex().upper()} "})
    assert found.status_code == 302
    assert found["Location"] == f"/traces/{TRACE.hex()}?org=acme"
    bad = client.get("/traces", {"trace": "not-hex"})
    assert bad.status_code == 200
    assert "A trace ID is hexadecimal digits (0-9, a-f), 32 at most." in bad.content.decode()


def test_an_outsider_cannot_see_another_orgs_traces(client, traced):
    client.force_login(traced.outsider)
    for url in PAGES:
        page = client.get(url)
        assert page.status_code == 200
        html = page.content.decode()
        assert 'data-org="globex"' in html and 'data-org="acme"' not in html
        # A shared link naming another org answers as if it did not exist.
        assert client.get(url, {"org": "acme"}).status_code == 404
    # acme's trace id, opened by globex's owner: the page has nothing, and the API calls it
    # makes answer "not found" (the page's not-found state), for the own org or for acme.
    html = client.get(f"/traces/{TRACE.hex()}").content.decode()
    assert "acme-checkout" not in html and "GET /cart" not in html
    for org, status in (("globex", 404), ("acme", 404)):
        trace = client.get(f"/jaeger/api/traces/{TRACE.hex()}", {"org": org})
        assert trace.status_code == status
        path = client.get(f"/jaeger/api/traces/{TRACE.hex()}/critical-path", {"org": org})
        assert path.status_code == status
    assert client.get("/jaeger/api/services", {"org": "acme"}).status_code == 404
    assert client.get("/jaeger/api/services", {"org": "globex"}).json()["data"] == ["globex-vault"]
    found = client.get("/jaeger/api/traces", {"org": "globex", "service": "acme-checkout"})
    assert found.json()["data"] == []
    assert client.get(GRAPH, {"org": "acme"}).status_code == 404
    assert client.get(GRAPH, {"org": "globex"}).json()["data"] == []
    # Its own trace it sees.
    own = client.get(f"/jaeger/api/traces/{OTHER_TRACE.hex()}", {"org": "globex"})
    assert own.status_code == 200
    assert own.json()["data"][0]["spans"][0]["operationName"] == "OpenVault"


def test_the_session_reads_what_the_pages_read(client, traced):
    client.force_login(traced.viewer)
    assert client.get("/jaeger/api/services", {"org": "acme"}).json()["data"] == [
        "acme-checkout",
        "acme-ledger",
    ]
    ops = client.get("/jaeger/api/services/acme-checkout/operations", {"org": "acme"})
    assert ops.json()["data"] == ["GET /cart"]
    path = client.get(f"/jaeger/api/traces/{TRACE.hex()}/critical-path", {"org": "acme"})
    assert [s["spanID"] for s in path.json()["data"]] == [
        "eee19b7ec3c1b174",
        "eee19b7ec3c1b175",
    ]
    now_ms = time.time_ns() // 10**6
    graph = client.get(GRAPH, {"org": "acme", "endTs": now_ms, "lookback": 3600_000})
    assert graph.status_code == 200
    assert graph.json()["data"] == [
        {"parent": "acme-checkout", "child": "acme-ledger", "callCount": 1, "errorCount": 1}
    ]
    # The window is honoured: an hour ago nothing was called.
    earlier = client.get(
        GRAPH, {"org": "acme", "endTs": now_ms - 3600_000, "lookback": 60_000}
    ).json()
    assert earlier["data"] == []
    assert client.get(GRAPH, {"org": "acme", "lookback": "soon"}).status_code == 400
    assert client.get(GRAPH, {"org": "acme", "lookback": "-5"}).status_code == 400


def test_the_service_graph_takes_tokens_like_the_jaeger_api(api, traced):
    reader = traced.token(["traces:read"])
    assert api.get(GRAPH, **bearer(reader)).json()["data"][0]["errorCount"] == 1
    writer = traced.token(["traces:write"])
    assert api.get(GRAPH, **bearer(writer)).status_code == 403
    # A token acts for its own org only.
    assert api.get(GRAPH, {"org": "globex"}, **bearer(reader)).status_code == 200
    assert api.get(GRAPH, {"org": "globex"}, **bearer(reader)).json()["data"][0]["parent"] == (
        "acme-checkout"
    )


def test_a_shared_link_switches_to_its_org_for_members_of_both(client, traced):
    member_add(org=traced.other_org, user=traced.owner, role=Role.VIEWER, actor=traced.outsider)
    client.force_login(traced.owner)
    page = client.get(f"/traces/{OTHER_TRACE.hex()}", {"org": "globex"})
    assert page.status_code == 200
    assert 'data-org="globex"' in page.content.decode()
    assert client.get("/").context["current_org"].slug == "globex"


def test_a_user_without_an_org_gets_a_404(client, db):
    loner = user_get_or_create(username="loner", password="x" * 20)
    client.force_login(loner)
    for url in PAGES:
        assert client.get(url).status_code == 404
