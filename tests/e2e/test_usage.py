"""The usage page's cardinality explorer in a real Chromium, over the Mimir-shaped API."""

import pytest

from backend.tenancy.services import org_create, user_get_or_create
from tests.e2e.test_metrics_explorer import PASSWORD, log_in
from tests.metrics.samples import counter, load

pytestmark = pytest.mark.e2e


@pytest.fixture
def acme(transactional_db):
    user = user_get_or_create(username="ada", password=PASSWORD)
    org = org_create(slug="acme", name="Acme Mesh", owner=user)
    data = {
        counter("istio_requests_total", pod=f"reviews-{p}", code=c): [(0, 1.0)]
        for p in range(8)
        for c in ("200", "503")
    }
    data[counter("up", job="mesh")] = [(0, 1.0)]
    load(org, data)
    return org


def test_cardinality_explorer(page, live_server, acme, tmp_path):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    log_in(page, live_server, "ada")
    page.click("nav >> text=Usage & limits")
    page.wait_for_url("**/settings/usage")
    assert page.inner_text("[data-testid=usage-series]") == "17"
    # All series: labels by distinct values, and the metrics by series.
    page.wait_for_selector("#card-labels li")
    first = page.locator("#card-labels li").first.inner_text()
    assert first.split() == ["pod", "8"]
    page.wait_for_selector("#card-values li")
    assert page.locator("#card-values li").first.inner_text().split() == [
        "istio_requests_total",
        "16",
    ]
    # One metric: its labels, then one label's values by series.
    page.click("[data-testid=top-metrics] >> text=istio_requests_total")
    page.wait_for_selector("#card-meta:has-text('in istio_requests_total')")
    page.click("#card-labels >> text=code")
    page.wait_for_selector("#card-values-title:has-text('Values of code in istio_requests_total')")
    page.wait_for_selector("#card-values li")
    assert [li.split() for li in page.locator("#card-values li").all_inner_texts()] == [
        ["200", "8"],
        ["503", "8"],
    ]
    page.screenshot(path=str(tmp_path / "usage.png"), full_page=True)
    assert errors == []
