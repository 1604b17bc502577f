"""The README's screenshots (docs/img/*.png, the table under "Quick start"), taken from the
demo org in a real Chromium. Run by hand, only when asked for:

    CANOPY_SCREENSHOTS=$PWD/docs/img make test \
        PYTEST_ARGS="-p no:cacheprovider tests/e2e/test_readme_screenshots.py"
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import readme_screenshot
from tests.e2e.demo import demo_org, log_in, visit
from tests.rules.raw_tables import _raw_sample_tables_emptied  # noqa: F401 - autouse

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("CANOPY_SCREENSHOTS"), reason="CANOPY_SCREENSHOTS=<folder> takes them"
    ),
]


def test_readme_screenshots(page, live_server, transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    demo = demo_org(live_server.url)
    page.set_viewport_size({"width": 1280, "height": 960})
    log_in(page, live_server.url)
    base = live_server.url

    visit(page, base, "/mesh?group=workload", "#mesh-edges tr")
    page.wait_for_function("window.canopyMesh && window.canopyMesh.cy.edges().length === 3")
    page.locator("#mesh-edges tr", has_text="reviews-v2").first.locator("button").click()
    readme_screenshot(page, "mesh")

    visit(page, base, "/mesh/workload/bookinfo/reviews-v2", "#in-rate .chart-marker")
    readme_screenshot(page, "workload")

    visit(page, base, f"/traces/{demo.trace_id}", ".wf-name")
    readme_screenshot(page, "trace")

    query = "sum by (destination_workload, response_code) (rate(istio_requests_total[5m]))"
    visit(page, base, f"/metrics?q={query}&range=15m", ".panel .u-over")
    readme_screenshot(page, "explorer")

    visit(page, base, "/settings/usage", None)
    readme_screenshot(page, "usage")

    visit(page, base, "/config/revisions", None)
    readme_screenshot(page, "mesh-config")
    # Every one was written.
    folder = os.environ["CANOPY_SCREENSHOTS"]
    for name in ("mesh", "workload", "trace", "explorer", "usage", "mesh-config"):
        assert os.path.getsize(os.path.join(folder, f"{name}.png")) > 10_000
