"""A workload's page in a real Chromium: RED charts from Istio metrics, reached from the mesh."""

import pytest

from backend.tenancy.services import org_create, user_get_or_create
from tests.e2e.test_mesh import mesh_org  # noqa: F401  (the fixture: Istio metrics sent)
from tests.e2e.test_metrics_explorer import PASSWORD, log_in

pytestmark = pytest.mark.e2e


def test_workload_page_from_the_mesh(page, live_server, mesh_org):  # noqa: F811
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    log_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/mesh?group=workload")
    page.wait_for_function("window.canopyMesh && window.canopyMesh.cy.nodes().length === 3")
    page.evaluate("window.canopyMesh.cy.getElementById('wl:bookinfo/reviews-v2').emit('tap')")
    page.click("#mesh-detail a:has-text('Its page')")
    page.wait_for_url("**/mesh/workload/bookinfo/reviews-v2**")
    assert page.inner_text("h1") == "reviews-v2"
    # Inbound: charts drawn from the destination proxy's reports; outbound: nothing sent.
    page.wait_for_selector("#in-rate .u-over")
    page.wait_for_selector("#in-latency .u-over, #in-latency .empty-chart")
    page.wait_for_selector("#out-rate .empty-chart")
    assert "No traffic" in page.inner_text("#out-rate")
    explorer = page.get_attribute("#in-rate a", "href")
    assert "reporter%3D%22destination%22" in explorer and "reviews-v2" in explorer
    # No spans were sent: the operations table says what to do.
    page.wait_for_selector("#operations td:has-text('No traces from this org yet')")
    page.screenshot(path="/tmp/workload.png", full_page=True)
    assert errors == []


def test_config_revisions_that_touched_the_service_are_marked(page, live_server, settings):
    """The revision that changed reviews' VirtualService and DestinationRule is a dashed
    marker on every RED chart, linking to it; the one that only touched ratings, and another
    org's revision of its own reviews, are not."""
    from tests.e2e.demo import REVIEWS_VS, demo_org, publish
    from tests.e2e.demo import log_in as demo_log_in

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    demo = demo_org(live_server.url)
    eve = user_get_or_create(username="eve", password=PASSWORD)
    globex = org_create(slug="globex", name="Globex", owner=eve)
    # (forced: Globex sent no metrics, so its VirtualService's host is unknown to validation)
    theirs = publish(globex, eve, [REVIEWS_VS], "globex: reviews canary", 10, force=True)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    demo_log_in(page, live_server.url)
    page.goto(f"{live_server.url}/mesh/workload/bookinfo/reviews-v2?org=acme")
    page.wait_for_selector("#in-rate .u-over")
    ours = demo.revisions["reviews: route to v2"]
    listed = page.locator("#revisions [data-testid=revision-marker]")
    listed.first.wait_for()
    assert [m.get_attribute("data-number") for m in listed.all()] == [str(ours)]
    assert "VirtualService bookinfo/reviews" in listed.inner_text()
    assert "reviews: route to v2" in listed.get_attribute("title")
    # On the charts: a link over the dashed line, where 20 minutes ago falls in the hour.
    marker = page.locator("#in-rate .chart-marker")
    marker.wait_for()
    assert marker.count() == 1
    assert marker.get_attribute("href").endswith(f"/config/revisions?org=acme#r{ours}")
    box, over = marker.bounding_box(), page.locator("#in-rate .u-over").bounding_box()
    share = (box["x"] + 4 - over["x"]) / over["width"]
    assert 0.6 < share < 0.74, share
    assert page.locator("#in-success .chart-marker").count() == 1
    assert "globex" not in page.inner_text("#revisions")
    marker.click()
    page.wait_for_url(f"**/config/revisions?org=acme#r{ours}")
    assert page.locator(f"#r{ours}").is_visible()
    assert errors == []

    # Eve's org has reviews too, with her own revision, none of acme's.
    page.context.clear_cookies()
    demo_log_in(page, live_server.url, "eve")
    page.goto(f"{live_server.url}/mesh/workload/bookinfo/reviews-v2?org=globex")
    listed.first.wait_for()
    assert [m.get_attribute("data-number") for m in listed.all()] == [str(theirs)]
    assert "globex: reviews canary" in listed.get_attribute("title")
    assert "route to v2" not in page.inner_text("#revisions")
