"""A workload's page in a real Chromium: RED charts from Istio metrics, reached from the mesh."""

import pytest

from tests.e2e.test_mesh import mesh_org  # noqa: F401  (the fixture: Istio metrics sent)
from tests.e2e.test_metrics_explorer import log_in

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
