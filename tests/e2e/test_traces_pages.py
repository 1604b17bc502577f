"""The Traces pages in a real Chromium: search (form, scatter, list, URL state), one trace's
waterfall (a row per span, the critical path, collapsing, the span panel), the service map, and
the empty and not-found states. Spans go in through the OTLP/HTTP receiver, are drained like a
worker would, and the dependency rollup runs for their minutes."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field

import pytest
from django.test import Client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from backend.pipeline.drain import org_drain
from backend.tenancy.services import org_create, token_create, user_get_or_create
from backend.tracing import dependencies
from tests.helpers.otlp import kv

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-password-1234"
MS = 10**6
MINUTE_NS = 60 * 10**9
SERVER, CLIENT, INTERNAL = 2, 3, 1

CHECKOUT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
GLOBEX_TRACE = "0af7651916cd43dd8448eb211c80319c"
XSS = '<img src=x onerror="window.__xss=1">'


@dataclass
class S:
    """A span to send: times in ms from its trace's start."""

    span_id: str
    service: str
    name: str
    start: float
    duration: float
    parent: str = ""
    kind: int = SERVER
    error: str | None = None  # the status message of a failed span
    attrs: dict = field(default_factory=dict)
    events: list = field(default_factory=list)  # (ms from the trace's start, name, attrs)


def send(client: Client, token: str, trace_id: str, t0_ns: int, spans: list[S]) -> None:
    by_service: dict[str, list[Span]] = {}
    for s in spans:
        start = t0_ns + int(s.start * MS)
        by_service.setdefault(s.service, []).append(
            Span(
                trace_id=bytes.fromhex(trace_id),
                span_id=bytes.fromhex(s.span_id),
                parent_span_id=bytes.fromhex(s.parent) if s.parent else b"",
                name=s.name,
                kind=s.kind,
                start_time_unix_nano=start,
                end_time_unix_nano=start + int(s.duration * MS),
                attributes=[kv(k, v) for k, v in s.attrs.items()],
                events=[
                    Span.Event(
                        time_unix_nano=t0_ns + int(at * MS),
                        name=name,
                        attributes=[kv(k, v) for k, v in attrs.items()],
                    )
                    for at, name, attrs in s.events
                ],
                status=Status() if s.error is None else Status(code=2, message=s.error),
            )
        )
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[
                        kv("service.name", service),
                        kv("service.version", "1.4.2"),
                        kv("k8s.namespace.name", "shop"),
                    ]
                ),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name="io.opentelemetry.http", version="1.2"),
                        spans=spans,
                    )
                ],
            )
            for service, spans in by_service.items()
        ]
    )
    response = client.post(
        "/v1/traces",
        request.SerializeToString(),
        content_type="application/x-protobuf",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200, response.content


def checkout_trace() -> list[S]:
    """frontend → cart (→ redis) and → checkout (→ inventory, → payments failing, + own work).
    inventory runs alongside payments, so it is the one span off the critical path."""
    return [
        S("a000000000000001", "frontend", "GET /checkout", 0, 120, error="HTTP 500",
          attrs={"http.method": "GET", "http.route": "/checkout", "http.status_code": 500}),
        S("a000000000000002", "cart", "GetCart", 5, 30, parent="a000000000000001"),
        S("a000000000000003", "cart", "redis GET", 8, 4, parent="a000000000000002", kind=CLIENT,
          attrs={"peer.service": "redis", "db.system": "redis"}),
        S("a000000000000004", "checkout", "PlaceOrder", 40, 75, parent="a000000000000001"),
        S("a000000000000005", "inventory", "Reserve", 42, 18, parent="a000000000000004"),
        S("a000000000000006", "payments", "Charge", 45, 50, parent="a000000000000004",
          error="card declined", attrs={"payment.provider": "stripe", "payment.amount": 4200},
          events=[(94, "exception", {"exception.type": "CardError",
                                     "exception.message": "card declined"})]),
        S("a000000000000007", "checkout", "render receipt", 96, 14, parent="a000000000000004",
          kind=INTERNAL),
    ]  # fmt: skip


def products_trace(i: int, duration: float) -> list[S]:
    base = f"b{i:02d}00000000000"
    return [
        S(f"{base}01", "frontend", "GET /products", 0, duration,
          attrs={"http.method": "GET", "http.route": "/products", "http.status_code": 200}),
        S(f"{base}02", "catalog", "ListProducts", 1, duration - 2, parent=f"{base}01"),
        S(f"{base}03", "catalog", "SELECT products", 2, duration / 2, parent=f"{base}02",
          kind=CLIENT, attrs={"peer.service": "postgres", "db.system": "postgresql"}),
    ]  # fmt: skip


@pytest.fixture
def shop(transactional_db):
    """acme: six frontend traces (one failing checkout, five product listings), a trace
    whose names try to inject HTML, and the rollup of their minutes; globex: one trace."""
    ada = user_get_or_create(username="ada", password=PASSWORD)
    acme = org_create(slug="acme", name="Acme Mesh", owner=ada)
    _, token = token_create(org=acme, name="otel", scopes=["traces:write"])
    client = Client()
    now = time.time_ns()
    first = now - 9 * MINUTE_NS
    send(client, token, CHECKOUT_TRACE, now - 6 * MINUTE_NS, checkout_trace())
    for i, duration in enumerate([12, 25, 40, 55, 80]):
        trace_id = hashlib.md5(f"products-{i}".encode()).hexdigest()
        send(client, token, trace_id, first + i * 50 * 10**9, products_trace(i, duration))
    send(
        client,
        token,
        "c" * 32,
        now - 4 * MINUTE_NS,
        [S("c000000000000001", "web", XSS, 0, 3, attrs={"note": "<script>window.__xss=2"})],
    )
    org_drain(signal="traces", org_id=acme.pk)

    hal = user_get_or_create(username="hal", password=PASSWORD)
    globex = org_create(slug="globex", name="Globex", owner=hal)
    _, other = token_create(org=globex, name="otel", scopes=["traces:write"])
    send(
        client,
        other,
        GLOBEX_TRACE,
        now - 5 * MINUTE_NS,
        [S("d000000000000001", "globex-vault", "OpenVault", 0, 9)],
    )
    org_drain(signal="traces", org_id=globex.pk)

    # What the beat job does: every minute older than the two-minute grace for late spans
    # (the spans above are three to nine minutes old) is rolled up.
    assert dependencies.rollup_due() > 0
    return acme


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def searched(page) -> None:
    page.wait_for_function(
        "!document.getElementById('result-body').hasAttribute('aria-busy')"
        " && !document.querySelector('#result-body .loading')"
    )


def search(page, **fields) -> None:
    for selector, value in fields.items():
        page.fill(f"#{selector.replace('_', '-')}", value)
    page.click("button.run")
    searched(page)


def test_search_trace_view_and_service_map(page, live_server, shop):
    log_in(page, live_server, "ada")
    page.click("nav >> text=Traces")
    page.wait_for_url(re.compile(r"/traces(\?|$)"))
    assert page.get_attribute("nav a:has-text('Traces')", "class") == "active"
    assert page.locator("#onboarding").is_hidden()

    # Services come from the API, in order; the busiest one is searched right away.
    page.wait_for_function("document.querySelectorAll('#service option').length === 7")
    options = page.locator("#service option").all_inner_texts()
    assert options == ["cart", "catalog", "checkout", "frontend", "inventory", "payments", "web"]
    searched(page)
    assert "service=catalog" in page.url  # the busiest: most spans in the lookback

    page.select_option("#service", "frontend")
    page.wait_for_function(
        "[...document.querySelectorAll('#operation option')].map(o => o.value).join('|')"
        " === '|GET /checkout|GET /products'"
    )
    searched(page)
    assert page.locator(".trace-item").count() == 6
    assert page.locator(".scatter .dot-link").count() == 6
    assert page.locator(".scatter .dot-link.err").count() == 1
    assert "6 traces · last 1h" in page.inner_text("#result-meta")
    assert "service=frontend" in page.url
    checkout = page.locator(f".trace-item[data-trace-id='{CHECKOUT_TRACE}']")
    text = checkout.inner_text()
    assert "frontend: GET /checkout" in text
    assert "7 spans" in text and "2 errors" in text and "120ms" in text
    assert "6 min ago" in text
    chips = checkout.locator(".svc-chip").evaluate_all(
        "cs => cs.map(c => c.querySelector('.svc-name').textContent + ' '"
        " + c.querySelector('.svc-count').textContent)"
    )
    assert chips == [
        "frontend 1",
        "cart 2",
        "checkout 2",
        "inventory 1",
        "payments 1",
    ]
    # The slowest trace's bar is full width, the others relative to it.
    assert checkout.locator(".trace-bar > span").get_attribute("style") == "width: 100.00%"
    page.screenshot(path="/tmp/traces-search.png", full_page=True)

    # Filters: Jaeger's tags, Canopy's operators, durations, errors only, sorting.
    search(page, tags="http.status_code=500")
    assert page.locator(".trace-item").count() == 1
    assert "tags=http.status_code%3D500" in page.url
    search(page, tags="http.route=~/prod.* http.status_code!=500")
    assert page.locator(".trace-item").count() == 5
    search(page, tags='http.route="/checkout" http.method=GET')
    assert page.locator(".trace-item").count() == 1
    # The server's refusals reach the page as they are.
    search(page, tags="http.route=~(")
    assert "invalid regex" in page.inner_text("#result-body .error-box")
    assert page.locator("#result-body .error-box .pill-err").inner_text() == "HTTP 400"
    search(page, tags="", min_duration="50ms")
    assert page.locator(".trace-item").count() == 3  # 120, 80 and 55 ms
    search(page, min_duration="", max_duration="30ms")
    assert page.locator(".trace-item").count() == 2
    search(page, max_duration="")
    page.click("label.switch")  # errors only
    searched(page)
    assert page.is_checked("#errors-only")
    assert page.locator(".trace-item").count() == 1
    assert "errorsOnly=true" in page.url
    page.click("label.switch")
    searched(page)
    page.click(".sort >> text=Slowest first")
    searched(page)
    assert "sortBy=duration" in page.url
    durations = page.locator(".trace-item .trace-duration").all_inner_texts()
    assert durations == ["120ms", "80ms", "55ms", "40ms", "25ms", "12ms"]

    # A bad duration is caught before the request, next to the form.
    search(page, min_duration="fast")
    error = page.locator("#form-error")
    assert error.is_visible() and "not a duration" in error.inner_text()
    assert page.get_attribute("#min-duration", "aria-invalid") == ""
    page.fill("#min-duration", "")

    # Nothing found: the page says so and offers a longer lookback.
    search(page, tags="http.status_code=418")
    empty = page.inner_text("#result-body")
    assert "No traces of frontend in the last 1h" in empty and "Widen the lookback" in empty
    page.click("#result-body button:has-text('Last 6h')")
    searched(page)
    assert "lookback=6h" in page.url
    assert page.is_checked("input[name=lookback][value='6h']")
    page.click("#result-body button:has-text('Clear filters')")
    searched(page)
    assert page.locator(".trace-item").count() == 6

    # The back button walks through the searches, form and all.
    page.go_back()
    page.wait_for_function("document.getElementById('tags').value === 'http.status_code=418'")
    searched(page)
    assert page.is_checked("input[name=lookback][value='6h']")
    page.go_back()
    page.wait_for_function("document.querySelector('input[name=lookback][value=\"1h\"]').checked")
    searched(page)
    assert "No traces of frontend" in page.inner_text("#result-body")

    # Sender-written names are text, never markup.
    page.goto(f"{live_server.url}/traces?org=acme&service=web")
    searched(page)
    assert page.locator(".trace-op").inner_text() == XSS
    assert page.locator("#result-body img").count() == 0
    assert page.evaluate("window.__xss") is None

    # A dot in the scatter opens its trace.
    page.goto(f"{live_server.url}/traces?org=acme&service=frontend")
    searched(page)
    page.locator(".scatter .dot-link.err").click()
    page.wait_for_url(f"{live_server.url}/traces/{CHECKOUT_TRACE}?org=acme")
    page.wait_for_selector(".wf-row")

    # The waterfall: one row per span, in tree order, indented by depth.
    rows = page.locator(".wf-row")
    assert rows.count() == 7
    assert page.locator(".wf-name").all_inner_texts() == [
        "frontend GET /checkout",
        "cart GetCart",
        "cart redis GET",
        "checkout PlaceOrder",
        "inventory Reserve",
        "payments Charge",
        "checkout render receipt",
    ]
    levels = [rows.nth(i).get_attribute("aria-level") for i in range(7)]
    assert levels == ["1", "2", "3", "2", "3", "3", "3"]
    stats = {
        name: page.inner_text(f"[data-stat={name}] dd")
        for name in ("duration", "spans", "services", "depth", "errors", "critical")
    }
    assert stats == {
        "duration": "120ms",
        "spans": "7",
        "services": "5",
        "depth": "3",
        "errors": "2",
        "critical": "6 spans",
    }
    assert "frontend: GET /checkout" in page.inner_text("#trace-title")
    # Bars are placed by start and sized by duration (percent of the trace).
    charge = page.locator(".wf-row[data-span-id='a000000000000006']")
    assert charge.locator(".wf-bar").get_attribute("style") == "left: 37.5000%; width: 41.6667%"
    assert "is-err" in charge.get_attribute("class")
    # The critical path: every span but inventory, which ran alongside payments.
    assert page.locator(".wf-row.on-cp").count() == 6
    inventory = page.locator(".wf-row[data-span-id='a000000000000005']")
    assert "on-cp" not in inventory.get_attribute("class")
    assert page.locator(".wf-cp").count() == 11  # the segments, tiling the root's 120 ms
    page.screenshot(path="/tmp/traces-trace.png", full_page=True)

    # A span's details: attributes, resource, events.
    charge.click()
    panel = page.locator("#span-detail")
    panel.wait_for()
    details = panel.inner_text()
    assert "Charge" in details and "payments" in details
    assert "ERROR" in details and "card declined" in details
    assert "payment.provider\tstripe" in details and "payment.amount\t4200" in details
    assert "k8s.namespace.name\tshop" in details and "service.version\t1.4.2" in details
    assert "exception" in details and "exception.message\tcard declined" in details
    assert "50ms of this span (100%)" in details
    assert "span=a000000000000006" in page.url
    page.screenshot(path="/tmp/traces-span.png", full_page=True)
    panel.locator("button.linkish").click()  # its parent
    page.wait_for_function("document.querySelector('#span-detail h2').textContent === 'PlaceOrder'")
    page.click(".sd-close")
    assert page.locator("#span-detail").count() == 0

    # Collapsing a subtree hides its rows and says how many; expanding brings them back.
    place_order = page.locator(".wf-row[data-span-id='a000000000000004']")
    place_order.locator(".wf-toggle").click()
    assert place_order.get_attribute("aria-expanded") == "false"
    assert place_order.locator(".wf-more").inner_text() == "+3"
    assert page.locator(".wf-row:visible").count() == 4
    page.keyboard.press("ArrowRight")  # the row has focus: the keyboard expands it
    assert page.locator(".wf-row:visible").count() == 7
    page.click("button:has-text('Collapse all')")
    assert page.locator(".wf-row:visible").count() == 3
    page.click("button:has-text('Expand all')")

    # Finding spans by attribute.
    page.fill("#span-find", "stripe")
    page.wait_for_function("document.querySelectorAll('.wf-row.match').length === 1")
    assert "1 of 7 spans" in page.inner_text(".wf-find-count")
    page.fill("#span-find", "")

    # A shared link to a span opens it.
    page.goto(f"{live_server.url}/traces/{CHECKOUT_TRACE}?org=acme&span=a000000000000003")
    page.wait_for_selector("#span-detail")
    assert "redis GET" in page.inner_text("#span-detail h2")

    # The service map: nodes by call depth, edges with call counts, errors in red.
    page.goto(f"{live_server.url}/traces?org=acme")
    page.click(".subnav >> text=Service map")
    page.wait_for_url(f"{live_server.url}/traces/map?org=acme")
    page.wait_for_selector(".map .map-node")
    nodes = sorted(page.locator(".map-node").evaluate_all("ns => ns.map(n => n.dataset.service)"))
    assert nodes == [
        "cart",
        "catalog",
        "checkout",
        "frontend",
        "inventory",
        "payments",
        "postgres",
        "redis",
    ]
    edges = page.locator(".map-edge").evaluate_all(
        "es => es.map(e => [e.dataset.from, e.dataset.to, +e.dataset.calls, +e.dataset.errors])"
    )
    assert sorted(edges) == [
        ["cart", "redis", 1, 0],
        ["catalog", "postgres", 5, 0],
        ["checkout", "inventory", 1, 0],
        ["checkout", "payments", 1, 1],
        ["frontend", "cart", 1, 0],
        ["frontend", "catalog", 5, 0],
        ["frontend", "checkout", 1, 0],
    ]
    assert page.locator(".map-edge.err").count() == 1
    labels = page.locator(".map-label").evaluate_all(
        "ls => ls.map(l => [l.dataset.from, l.dataset.to, l.querySelector('text').textContent])"
    )
    assert sorted(labels) == [
        ["cart", "redis", "1"],
        ["catalog", "postgres", "5"],
        ["checkout", "inventory", "1"],
        ["checkout", "payments", "1 · 1 err"],
        ["frontend", "cart", "1"],
        ["frontend", "catalog", "5"],
        ["frontend", "checkout", "1"],
    ]
    # Layered by call depth: callers to the left of the services they call.
    x = {
        name: page.locator(f".map-node[data-service='{name}']").bounding_box()["x"]
        for name in nodes
    }
    assert x["frontend"] < x["checkout"] < x["payments"]
    assert x["frontend"] < x["catalog"] < x["postgres"]
    # Uninstrumented peers are drawn, but are not links; "web" made no calls.
    assert page.locator("g.map-node.peer").count() == 2
    assert "web" in page.inner_text(".map-quiet")
    assert page.locator("#edges-table tbody tr").count() == 7
    assert page.locator("#edges-table tbody tr.is-err").count() == 1
    page.screenshot(path="/tmp/traces-map.png", full_page=True)

    page.click("#map-form >> text=15m")
    page.wait_for_url("**lookback=15m**")
    page.wait_for_selector(".map .map-node")

    # Clicking a service searches its traces.
    page.locator("a.map-node[data-service='checkout']").click()
    page.wait_for_url(re.compile(r"/traces\?.*service=checkout"))
    searched(page)
    assert page.input_value("#service") == "checkout"
    assert page.locator(".trace-item").count() == 1


def test_another_orgs_trace_is_not_found(page, live_server, shop):
    log_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/traces/{GLOBEX_TRACE}")
    state = page.locator("[data-testid=trace-not-found]")
    state.wait_for()
    assert "No trace with ID" in state.inner_text() and GLOBEX_TRACE in state.inner_text()
    assert page.locator(".wf-row").count() == 0
    assert "globex-vault" not in page.content() and "OpenVault" not in page.content()
    page.screenshot(path="/tmp/traces-not-found.png", full_page=True)
    # The "go to trace" box takes the same path.
    page.goto(f"{live_server.url}/traces")
    page.fill("#trace-lookup", CHECKOUT_TRACE.upper())
    page.press("#trace-lookup", "Enter")
    page.wait_for_url(f"{live_server.url}/traces/{CHECKOUT_TRACE}?org=acme")
    page.wait_for_selector(".wf-row")


def test_new_org_sees_how_to_send_traces(page, live_server, shop, settings):
    settings.PUBLIC_URL = live_server.url  # CANOPY_PUBLIC_URL: what senders reach
    newbie = user_get_or_create(username="newbie", password=PASSWORD)
    org_create(slug="fresh", name="Fresh Org", owner=newbie)
    log_in(page, live_server, "newbie")
    page.goto(f"{live_server.url}/traces")
    onboarding = page.locator("[data-testid=no-traces]")
    onboarding.wait_for(state="visible")
    text = onboarding.inner_text()
    assert f"{live_server.url}/v1/traces" in text
    assert f"{live_server.url}/api/v2/spans" in text
    assert ":4317" in text and "extensionProviders" in text and "initialMetadata" in text
    assert f"{live_server.url}/jaeger" in text and "traces:read" in text
    assert "fresh" in onboarding.locator("code").all_inner_texts()
    tokens_link = onboarding.locator("a:has-text('API tokens')")
    assert tokens_link.get_attribute("href") == "/settings/tokens"
    assert page.locator("#search-card").is_hidden() and page.locator("#result").is_hidden()
    page.screenshot(path="/tmp/traces-onboarding.png", full_page=True)

    page.goto(f"{live_server.url}/traces/map")
    page.locator("[data-testid=no-traces]").wait_for(state="visible")
    assert page.locator("#map-card").is_hidden()
    assert page.locator(".map-node").count() == 0


def test_the_trace_model_and_formats_in_the_browser(page, live_server, shop):
    """parseTrace on what real senders produce besides tidy trees: Zipkin's shared client and
    server span ids, parents that never arrived, reference cycles, FOLLOWS_FROM links."""
    log_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/traces/{CHECKOUT_TRACE}")
    page.wait_for_selector(".wf-row")
    got = page.evaluate(
        """() => {
        const T = window.CanopyTraces;
        const ref = (type, id) => ({refType: type, traceID: "t", spanID: id});
        const span = (id, start, duration, kind, refs, service = "svc") => ({
            traceID: "t", spanID: id, operationName: id + "-" + (kind || "x"),
            startTime: start, duration, processID: service,
            tags: kind ? [{key: "span.kind", type: "string", value: kind}] : [],
            references: refs || [], logs: [],
        });
        const model = T.parseTrace({traceID: "t", processes: {svc: {serviceName: "svc", tags: []}},
            spans: [
                span("c", 30, 5, "", [ref("CHILD_OF", "x")]),   // under the shared server span
                span("x", 20, 20, "server", [ref("CHILD_OF", "r")]),
                span("x", 10, 40, "client", [ref("CHILD_OF", "r")]),
                span("r", 0, 100, "server"),
                span("o", 5, 1, "", [ref("CHILD_OF", "gone")]),  // its parent never arrived
                span("p", 60, 5, "", [ref("CHILD_OF", "q")]),    // p and q: a cycle
                span("q", 61, 5, "", [ref("CHILD_OF", "p")]),
                span("f", 70, 5, "", [ref("FOLLOWS_FROM", "r")]),
            ]});
        return {
            order: model.spans.map(s => s.operation + "@" + s.depth),
            roots: model.roots.map(s => s.operation),
            root: model.root.operation, duration: model.duration, depth: model.depth,
            selfTime: T.selfTime(model.spans[0]),
            durations: [0, 0.5, 999, 1000, 1234, 120000, 999999, 1.5e6, 125e6, 3725e6]
                .map(v => T.fmtDuration(v)),
            counts: [999, 1000, 12345, 999999, 2.5e6].map(T.fmtCount),
        };
    }"""
    )
    assert got["order"] == [
        "r-server@0",
        "x-client@1",
        "x-server@2",
        "c-x@3",
        "f-x@1",
        "o-x@0",
        "p-x@0",
        "q-x@1",
    ]
    assert got["roots"] == ["r-server", "o-x", "p-x"]
    assert got["root"] == "r-server" and got["duration"] == 100 and got["depth"] == 4
    assert got["selfTime"] == 55  # 100 minus the client span (10..50) and f (70..75)
    assert got["durations"] == [
        "0µs",
        "<1µs",
        "999µs",
        "1ms",
        "1.23ms",
        "120ms",
        "1s",
        "1.5s",
        "2m 5s",
        "1h 2m",
    ]
    assert got["counts"] == ["999", "1k", "12.3k", "1M", "2.5M"]
