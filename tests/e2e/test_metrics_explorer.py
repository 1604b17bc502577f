"""The Metrics explorer in a real Chromium: query, chart, hover, legend, errors, onboarding."""

import math
import struct
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.test import Client
from django.utils import timezone
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from backend.meshconfig import services as meshconfig
from backend.meshconfig.models import Revision
from backend.metrics.storage import blocks
from backend.pipeline.drain import org_drain
from backend.tenancy.services import org_create, token_create, user_get_or_create
from bench import istio_payloads as ip
from tests.helpers.otlp import kv
from tests.metrics.samples import load

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-password-1234"
SCREENSHOT = "/tmp/metrics-explorer.png"
RATE_QUERY = "sum by (app, code) (rate(istio_requests_total[5m]))"


def write_recent(org, series: dict[tuple, list[tuple[int, float]]]) -> None:
    """label pairs -> [(seconds before now, value)]."""
    now = blocks.now_ms() // 15_000 * 15_000
    load(org, {k: [(-ago, v) for ago, v in points] for k, points in series.items()}, base_ms=now)


def counter(per_second: float, skip=range(0)) -> list[tuple[int, float]]:
    """65 minutes of a counter scraped every 15 s, its rate swinging ±40% over 20 minutes;
    nothing scraped in the minutes ``skip``."""
    points = []
    for ago in range(65 * 60, -1, -15):
        t = 65 * 60 - ago
        swing = 0.4 * 1200 / (2 * math.pi) * (1 - math.cos(2 * math.pi * t / 1200))
        total = per_second * (t + swing)
        if ago // 60 not in skip:
            points.append((ago, total))
    return points


@pytest.fixture
def acme(transactional_db):
    user = user_get_or_create(username="ada", password=PASSWORD)
    org = org_create(slug="acme", name="Acme Mesh", owner=user)
    write_recent(
        org,
        {
            (("__name__", "istio_requests_total"), ("app", "reviews"), ("code", "200")): counter(
                12
            ),
            (("__name__", "istio_requests_total"), ("app", "ratings"), ("code", "200")): counter(5),
            # Nothing scraped between 20 and 30 minutes ago: the line has a gap.
            (("__name__", "istio_requests_total"), ("app", "reviews"), ("code", "503")): counter(
                0.8, skip=range(20, 31)
            ),
            (("__name__", "up"), ("job", "mesh")): [(a, 1.0) for a in range(3600, -1, -15)],
            **{
                (("__name__", "pod_cpu_seconds"), ("pod", f"web-{i:02d}")): [
                    (a, i + a / 600) for a in range(600, -1, -60)
                ]
                for i in range(60)
            },
        },
    )
    return org


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def editor(page, n: int = 0):
    return page.locator(".query-editor .cm-content").nth(n)


def type_query(page, query: str, n: int = 0) -> None:
    editor(page, n).click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(query)
    page.keyboard.press("Escape")  # close the completion list, if open


def wait_results(page) -> None:
    page.wait_for_function(
        "![...document.querySelectorAll('.result-body')].some(b => b.hasAttribute('aria-busy'))"
    )


def run_query(page, query: str, n: int = 0) -> None:
    type_query(page, query, n)
    page.keyboard.press("Enter")
    wait_results(page)


def legend_rows(page, n: int = 0):
    # uPlot's legend, without its first row (the time column).
    return page.locator(".panel").nth(n).locator(".u-legend tr.u-series").filter(has_text="{")


def test_autocomplete_from_the_org_api(page, live_server, acme):
    log_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/metrics")
    editor(page).click()
    page.keyboard.type("istio_req")
    options = page.locator(".cm-tooltip-autocomplete li")
    options.first.wait_for()
    assert "istio_requests_total" in page.inner_text(".cm-tooltip-autocomplete")
    page.keyboard.press("Enter")  # accepts the completion
    page.keyboard.type("{c")
    page.wait_for_selector(".cm-tooltip-autocomplete li:has-text('code')")
    page.keyboard.press("Enter")
    page.keyboard.type('="')
    page.wait_for_selector(".cm-tooltip-autocomplete li:has-text('503')")
    # Functions complete too, and a syntax error is underlined where it is.
    type_query(page, "histogram_quan")
    page.keyboard.press("End")
    page.keyboard.type("t")
    page.wait_for_selector(".cm-tooltip-autocomplete li:has-text('histogram_quantile')")
    type_query(page, "sum(rate(up[5m])) by (job) + on")
    page.wait_for_selector(
        ".cm-lintRange-error, .cm-lintPoint-error", state="attached", timeout=5000
    )


def test_query_chart_zoom_table_and_errors(page, live_server, acme):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    log_in(page, live_server, "ada")
    page.click("nav >> text=Metrics")
    page.wait_for_url("**/metrics")
    assert page.get_attribute("nav a:has-text('Metrics')", "class") == "active"
    page.wait_for_function("document.querySelectorAll('#metric-names option').length === 3")
    assert page.locator("#onboarding").is_hidden()

    run_query(page, RATE_QUERY)
    assert legend_rows(page).count() == 3
    legend = page.inner_text(".u-legend")
    for labels in (
        '{app="ratings", code="200"}',
        '{app="reviews", code="200"}',
        '{app="reviews", code="503"}',
    ):
        assert labels in legend
    assert "range=1h" in page.url and "q=sum" in page.url
    assert "3 series · step 15s" in page.inner_text(".panel .result-meta")
    # Readable numbers: no float noise on axes, legends or tooltips.
    assert page.evaluate("window.canopyExplorer.fmtValue(0.1 + 0.2 - 0.201)") == "0.099"
    assert page.evaluate("window.canopyExplorer.fmtValue(12345.678)") == "12.35k"

    # Hovering shows a tooltip with the label sets and values at that time.
    box = page.locator(".chart .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.85, box["y"] + box["height"] / 2)
    tip = page.locator(".chart-tip")
    tip.wait_for(state="visible")
    assert tip.locator(".tip-row").count() == 3
    assert 'app="reviews", code="200"' in tip.inner_text()
    page.screenshot(path=SCREENSHOT, full_page=True)

    # Clicking a legend entry hides its line, clicking again brings it back.
    entry = legend_rows(page).filter(has_text='code="503"')
    entry.click()
    assert "u-off" in entry.get_attribute("class")
    entry.click()
    assert "u-off" not in (entry.get_attribute("class") or "")

    # Dragging across the chart zooms to an absolute range.
    page.locator(".chart .u-over").scroll_into_view_if_needed()
    box = page.locator(".chart .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + 40, steps=5)
    page.mouse.up()
    page.wait_for_url("**from=**")
    wait_results(page)
    assert "to=" in page.url and "range=" not in page.url
    assert page.input_value("#range-from") and page.input_value("#range-to")
    assert not page.is_checked("input[name=range][value='1h']")
    page.click("input[name=range][value='1h'] + span")
    page.wait_for_url("**range=1h**")

    # The table shows the instant result, one row per series.
    page.click(".panel button[data-mode=table]")
    page.wait_for_selector(".result-table")
    assert page.locator(".result-table tbody tr").count() == 3
    page.click(".panel button[data-mode=graph]")
    page.wait_for_selector(".chart .u-over")

    # More than 50 series: 50 are drawn, and the page says so.
    run_query(page, "pod_cpu_seconds")
    assert legend_rows(page).count() == 50
    assert "Showing 50 of 60 series" in page.inner_text(".note")

    # A parse error comes back with Prometheus's message, in the error box.
    run_query(page, "sum(rate(istio_requests_total[5m]) by")
    error = page.locator(".error-box")
    assert error.is_visible()
    assert "parse error" in error.inner_text()
    assert "bad_data" in error.inner_text()

    run_query(page, 'istio_requests_total{app="nope"}')
    assert "No data for this query in the last 1h" in page.inner_text(".panel .result-body")
    page.click(".panel .result-body button:has-text('Last 6h')")
    page.wait_for_url("**range=6h**")
    assert page.is_checked("input[name=range][value='6h']")

    # The back button goes through the queries run so far.
    page.go_back()
    page.wait_for_function(
        "document.querySelector('.query-editor .cm-content').innerText.includes('nope')"
    )
    assert page.is_checked("input[name=range][value='1h']")

    # Several queries at once, each with its own chart.
    run_query(page, "up")
    page.click("#add-query")
    run_query(page, RATE_QUERY, n=1)
    assert page.locator(".panel .chart .u-over").count() == 2
    assert "q=up&q=sum" in page.url

    # History keeps what ran, newest first; a click runs it again.
    history = page.locator("#history li")
    assert history.first.inner_text() == RATE_QUERY
    assert 'istio_requests_total{app="nope"}' in page.inner_text("#history")

    # A shared link opens on its queries and range.
    page.goto(f"{live_server.url}/metrics?q=up&range=6h")
    page.wait_for_selector(".chart .u-over")
    assert editor(page).inner_text() == "up"
    assert page.is_checked("input[name=range][value='6h']")
    assert "step 2m" in page.inner_text(".panel .result-meta")

    # Starting from a metric name: a counter becomes a rate, and its labels are listed.
    page.fill("#metric-pick", "istio_requests_total")
    page.press("#metric-pick", "Enter")
    page.wait_for_selector(".u-legend")
    assert editor(page).inner_text() == "rate(istio_requests_total[5m])"
    page.wait_for_selector("#label-list summary:has-text('code')")
    page.click("#label-list summary:has-text('code')")
    page.click("#label-list .chip:has-text('503')")
    page.wait_for_function(
        "document.querySelector('.query-editor .cm-content').innerText.includes('code=\"503\"')"
    )

    # Example chips fill the query.
    page.click(".chip[data-query='up']")
    page.wait_for_function("document.querySelector('.query-editor .cm-content').innerText === 'up'")
    # (the browser logs the 400 of the deliberately broken query; nothing else)
    assert [e for e in errors if "status of 400" not in e] == []


def test_new_org_sees_how_to_send_metrics(page, live_server, acme, settings):
    settings.PUBLIC_URL = live_server.url  # CANOPY_PUBLIC_URL: what senders reach
    newbie = user_get_or_create(username="newbie", password=PASSWORD)
    org_create(slug="fresh", name="Fresh Org", owner=newbie)
    log_in(page, live_server, "newbie")
    page.goto(f"{live_server.url}/metrics")
    onboarding = page.locator("[data-testid=no-metrics]")
    onboarding.wait_for(state="visible")
    text = onboarding.inner_text()
    assert "remote_write" in text
    assert f"{live_server.url}/api/v1/push" in text
    assert f"{live_server.url}/prometheus" in text
    assert "credentials: <token>" in text
    tokens_link = onboarding.locator("a:has-text('API tokens')")
    assert tokens_link.get_attribute("href") == "/settings/tokens"
    assert "Write a PromQL query" in page.inner_text(".panel")  # nothing until a query runs
    # Nothing of acme's: its metric names are not offered, and a query finds nothing.
    assert page.locator("#metric-names option").count() == 0
    run_query(page, "istio_requests_total")
    assert "No data for this query" in page.inner_text(".panel .result-body")
    page.screenshot(path="/tmp/metrics-onboarding.png", full_page=True)


VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "bookinfo"},
    "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
}


def publish(org, user, message: str, minutes_ago: int) -> int:
    rev = meshconfig.revision_publish(
        org=org, resources=[VS], message=message, actor=user, force=True
    ).revision
    Revision.objects.for_org(org).filter(pk=rev.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return rev.number


def test_config_revisions_are_marked_on_the_charts(page, live_server, acme):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    ada = acme.memberships.get().user
    publish(acme, ada, "before the range", minutes_ago=180)
    number = publish(acme, ada, "reviews: route to v2", minutes_ago=25)
    log_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/metrics?q=up&q={quote(RATE_QUERY)}&range=1h")
    page.wait_for_function("document.querySelectorAll('.panel .chart .u-over').length === 2")
    # In every chart: one marker, the revision in the last hour, with its author and message.
    for n in range(2):
        panel = page.locator(".panel").nth(n)
        markers = panel.locator("[data-testid=revision-marker]")
        assert markers.count() == 1
        assert markers.get_attribute("data-number") == str(number)
        assert f"r{number}" in markers.inner_text()
        title = markers.get_attribute("title")
        assert "ada" in title and "reviews: route to v2" in title
        # drawn on the chart, where the line is: a hover target with the same title
        target = panel.locator(".chart .chart-marker")
        assert target.count() == 1 and target.get_attribute("title") == title
        box, over = target.bounding_box(), panel.locator(".u-over").bounding_box()
        share = (box["x"] + 4 - over["x"]) / over["width"]
        assert 0.5 < share < 0.7, share  # 25 minutes ago in the last hour
    # The toggle hides them, and shows them again.
    assert page.is_checked("#show-revisions")
    page.uncheck("#show-revisions")
    assert page.locator(".chart .chart-marker").count() == 0
    assert page.locator("[data-testid=revision-marker]").first.is_hidden()
    page.check("#show-revisions")
    assert page.locator(".chart .chart-marker").count() == 2
    assert page.locator("[data-testid=revision-marker]").first.is_visible()
    assert "null" not in page.inner_text(".panel .result-body")
    page.screenshot(path="/tmp/metrics-revisions.png", full_page=True)
    assert errors == []

    # Another org sees none of acme's revisions, and no toggle.
    other = user_get_or_create(username="outsider", password=PASSWORD)
    org_create(slug="other", name="Other Org", owner=other)
    page.context.clear_cookies()
    log_in(page, live_server, "outsider")
    page.goto(f"{live_server.url}/metrics?q=vector(1)&range=1h")
    page.wait_for_selector(".chart .u-over")
    assert page.locator("[data-testid=revision-marker]").count() == 0
    assert page.locator(".chart-marker").count() == 0
    assert page.locator("#revisions-toggle").is_hidden()


STORED_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
MISSING_TRACE = "00f067aa0ba902b7a3ce929d0e0e4736"


def push_with_exemplars(client, token: str, now_ms: int) -> None:
    """Remote-write 1.0: a counter over the last 30 minutes, two samples carrying exemplars
    (one whose trace Canopy stores, one whose trace it never received)."""
    labels = ip.encode_labels([("__name__", "checkout_requests_total"), ("route", "/cart")])
    body = labels
    for ago in range(30 * 60, -1, -15):
        t = now_ms - ago * 1000
        body += ip._field_bytes(
            2, b"\x09" + struct.pack("<d", 100 + (1800 - ago) / 15) + b"\x10" + ip._varint(t)
        )
    for ago, trace, value in ((20 * 60, STORED_TRACE, 120.0), (10 * 60, MISSING_TRACE, 160.0)):
        exemplar_labels = ip.encode_labels([("trace_id", trace), ("span_id", "00f067aa0ba902b7")])
        body += ip._field_bytes(
            3,
            exemplar_labels
            + b"\x11"
            + struct.pack("<d", value)
            + b"\x18"
            + ip._varint(now_ms - ago * 1000),
        )
    response = client.post(
        "/api/v1/push",
        ip.compress(ip._field_bytes(1, body)),
        content_type="application/x-protobuf",
        HTTP_CONTENT_ENCODING="snappy",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 204, response.content
    assert response["X-Prometheus-Remote-Write-Exemplars-Written"] == "2"


def send_trace(client, token: str, trace: str, start_ns: int) -> None:
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv("service.name", "checkout")]),
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                trace_id=bytes.fromhex(trace),
                                span_id=bytes.fromhex("00f067aa0ba902b7"),
                                name="POST /cart",
                                kind=2,
                                start_time_unix_nano=start_ns,
                                end_time_unix_nano=start_ns + 42_000_000,
                            )
                        ]
                    )
                ],
            )
        ]
    )
    response = client.post(
        "/v1/traces",
        request.SerializeToString(),
        content_type="application/x-protobuf",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200, response.content


def test_exemplars_are_dots_that_open_their_trace(page, live_server, acme):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    client = Client()
    _, writer = token_create(org=acme, name="sender", scopes=["metrics:write", "traces:write"])
    now = blocks.now_ms()
    push_with_exemplars(client, writer, now)
    send_trace(client, writer, STORED_TRACE, (now - 20 * 60 * 1000) * 1_000_000)
    # the other trace is stored, but by another org: for acme it is not there
    globex = org_create(slug="globex", name="Globex", owner=user_get_or_create(username="gus"))
    _, outsider = token_create(org=globex, name="sender", scopes=["traces:write"])
    send_trace(client, outsider, MISSING_TRACE, (now - 10 * 60 * 1000) * 1_000_000)
    org_drain(signal="metrics", org_id=acme.pk)
    org_drain(signal="traces", org_id=acme.pk)
    org_drain(signal="traces", org_id=globex.pk)

    log_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/metrics?q=checkout_requests_total&range=1h")
    page.wait_for_selector(".chart .u-over")
    dots = page.locator(".chart [data-testid=exemplar]")
    dots.first.wait_for()
    assert dots.count() == 2
    assert "2 exemplars" in page.inner_text(".panel .result-meta")
    assert page.is_visible("#exemplars-toggle") and page.is_checked("#show-exemplars")
    stored = page.locator(f".chart [data-trace-id='{STORED_TRACE}']")
    missing = page.locator(f".chart [data-trace-id='{MISSING_TRACE}']")
    # drawn where they are: 20 and 10 minutes ago in the last hour, the later one higher
    over = page.locator(".chart .u-over").bounding_box()
    first, second = stored.bounding_box(), missing.bounding_box()
    assert 0.6 < (first["x"] + 6 - over["x"]) / over["width"] < 0.74
    assert 0.77 < (second["x"] + 6 - over["x"]) / over["width"] < 0.9
    assert second["y"] < first["y"]

    # Hovering shows the exemplar's labels, value and time, and whether its trace is here.
    missing.hover()
    tip = page.locator("[data-testid=exemplar-tip]")
    tip.wait_for(state="visible")
    assert MISSING_TRACE in tip.inner_text() and "160" in tip.inner_text()
    assert 'checkout_requests_total{route="/cart"}' in tip.inner_text()
    page.wait_for_function(
        "document.querySelector('[data-testid=exemplar-tip] .exemplar-status')"
        ".textContent.includes('not stored')"
    )
    # ... a click on it stays on the page and says so: no dead link
    missing.click()
    assert "not stored" in tip.inner_text()
    assert "/metrics" in page.url
    stored.hover()
    page.wait_for_function(
        "document.querySelector('[data-testid=exemplar-tip] .exemplar-status')"
        ".textContent.includes('open the trace')"
    )
    assert "span_id" in tip.inner_text() and "120" in tip.inner_text()
    page.screenshot(path="/tmp/metrics-exemplars.png", full_page=True)

    # The toggle hides the dots, and brings them back.
    page.uncheck("#show-exemplars")
    assert dots.count() == 0
    page.check("#show-exemplars")
    assert dots.count() == 2

    # A click on the stored one opens its trace.
    stored.click()
    page.wait_for_url(f"**/traces/{STORED_TRACE}?org=acme")
    page.wait_for_selector("#trace-head", state="visible")
    assert "POST /cart" in page.inner_text("#trace")
    # (the browser logs the trace API's 404 for the missing trace: that is the check)
    assert [e for e in errors if "status of 404" not in e] == []


def test_charts_without_exemplars_have_no_dots_nor_toggle(page, live_server, acme):
    log_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/metrics?q={quote(RATE_QUERY)}&range=1h")
    page.wait_for_selector(".chart .u-over")
    assert page.locator(".chart [data-testid=exemplar]").count() == 0
    assert page.is_hidden("#exemplars-toggle")
    assert "exemplar" not in page.inner_text(".panel .result-meta")
