"""The Metrics explorer in a real Chromium: query, chart, hover, legend, errors, onboarding."""

import math

import pytest

from backend.metrics.storage import blocks
from backend.tenancy.services import org_create, user_get_or_create
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


def run_query(page, query: str) -> None:
    page.fill("#q", query)
    page.press("#q", "Enter")
    page.wait_for_function("!document.getElementById('result-body').hasAttribute('aria-busy')")


def test_query_chart_hover_legend_and_errors(page, live_server, acme):
    log_in(page, live_server, "ada")
    page.click("nav >> text=Metrics")
    page.wait_for_url("**/metrics")
    assert page.get_attribute("nav a:has-text('Metrics')", "class") == "active"
    page.wait_for_function("document.querySelectorAll('#metric-names option').length === 3")
    assert page.locator("#onboarding").is_hidden()

    run_query(page, RATE_QUERY)
    assert page.locator(".chart svg path.series").count() == 3
    legend = page.inner_text(".legend")
    for labels in (
        '{app="ratings", code="200"}',
        '{app="reviews", code="200"}',
        '{app="reviews", code="503"}',
    ):
        assert labels in legend
    assert "range=1h" in page.url and "q=sum" in page.url
    assert "3 series · step 15s" in page.inner_text("#result-meta")
    # The 503 series has a gap: its path is two sub-paths.
    gap = page.get_attribute('path.series[data-series="{app=\\"reviews\\", code=\\"503\\"}"]', "d")
    assert gap.count("M") == 2

    # Hovering shows a crosshair and a tooltip with every series' value at that time.
    box = page.locator(".chart .hover-area").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.85, box["y"] + box["height"] / 2)
    tip = page.locator(".chart-tip")
    tip.wait_for(state="visible")
    assert tip.locator(".tip-row").count() == 3
    assert 'app="reviews", code="200"' in tip.inner_text()
    page.screenshot(path=SCREENSHOT, full_page=True)

    # Clicking a legend entry hides its line, clicking again brings it back.
    toggle = page.locator(".series-toggle", has_text='code="503"')
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "false"
    assert page.locator(".chart svg path.series").count() == 2
    toggle.click()
    assert page.locator(".chart svg path.series").count() == 3

    # The keyboard reads the chart too.
    page.focus(".chart")
    page.keyboard.press("ArrowLeft")
    assert page.locator(".chart-tip").is_visible()

    # More than 50 series: 50 are drawn, and the page says so.
    run_query(page, "pod_cpu_seconds")
    assert page.locator(".chart svg path.series").count() == 50
    assert "Showing 50 of 60 series" in page.inner_text(".note")

    # A parse error comes back with Prometheus's message, in the error box.
    run_query(page, "sum(rate(istio_requests_total[5m]) by")
    error = page.locator(".error-box")
    assert error.is_visible()
    assert "parse error" in error.inner_text()
    assert "bad_data" in error.inner_text()

    run_query(page, 'istio_requests_total{app="nope"}')
    assert "No data for this query in the last 1h" in page.inner_text("#result-body")
    page.click("#result-body button:has-text('Last 24h')")
    page.wait_for_url("**range=24h**")
    assert page.is_checked("input[name=range][value='24h']")

    # The back button goes through the queries run so far.
    page.go_back()
    page.wait_for_function("document.getElementById('q').value.includes('nope')")
    assert page.is_checked("input[name=range][value='1h']")
    page.go_back()
    page.wait_for_function("document.getElementById('q').value.startsWith('sum(rate(')")
    page.wait_for_selector(".error-box")

    # A shared link opens on its query and range.
    page.goto(f"{live_server.url}/metrics?q=up&range=6h")
    page.wait_for_selector(".chart svg path.series", state="attached")
    assert page.input_value("#q") == "up"
    assert page.is_checked("input[name=range][value='6h']")
    assert "step 2m" in page.inner_text("#result-meta")

    # Starting from a metric name: a counter becomes a rate.
    page.fill("#metric-pick", "istio_requests_total")
    page.press("#metric-pick", "Enter")
    page.wait_for_selector(".legend")
    assert page.input_value("#q") == "rate(istio_requests_total[5m])"
    assert page.locator(".chart svg path.series").count() == 3

    # Example chips fill the query.
    page.click(".chip[data-query='up']")
    page.wait_for_function("document.getElementById('q').value === 'up'")
    page.wait_for_selector(".chart svg path.series", state="attached")


def test_new_org_sees_how_to_send_metrics(page, live_server, acme):
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
    assert page.locator("#result").is_hidden()  # nothing to show until a query runs
    # Nothing of acme's: its metric names are not offered, and a query finds nothing.
    assert page.locator("#metric-names option").count() == 0
    run_query(page, "istio_requests_total")
    assert "No data for this query" in page.inner_text("#result-body")
    page.screenshot(path="/tmp/metrics-onboarding.png", full_page=True)
