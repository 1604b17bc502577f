"""The Overview in a real Chromium: its figures refresh in place while data arrives (no page
reload), each states its window, the last-updated time moves, and Pause stops the refresh."""

import pytest
import requests

from backend.pipeline.drain import org_drain
from backend.tenancy.models import Organization
from backend.tenancy.services import org_create, token_create, user_get_or_create
from bench import istio_payloads as ip
from tests.e2e.test_metrics_explorer import PASSWORD, log_in

pytestmark = pytest.mark.e2e


def _push(live_server, secret: str, n_series: int) -> None:
    body = ip.build_requests(
        0, 1, ip.aligned_start_ms(1), n_series=n_series, samples_per_request=n_series
    )[0]
    response = requests.post(
        f"{live_server.url}/api/v1/push",
        data=body,
        timeout=10,
        headers={**ip.REMOTE_WRITE_HEADERS, "Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 204


def test_the_overview_refreshes_in_place_and_pauses(
    page, live_server, transactional_db, settings, monkeypatch
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    monkeypatch.setattr("web.views.OVERVIEW_REFRESH_SECONDS", 1)
    user = user_get_or_create(username="ada", password=PASSWORD)
    org_create(slug="acme", name="Acme Mesh", owner=user)
    org = Organization.objects.get(slug="acme")
    _, secret = token_create(org=org, name="prom", scopes=["metrics:write"])
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    log_in(page, live_server, "ada")
    assert page.inner_text("[data-testid=series-count]") == "0"
    assert page.is_visible("#overview-empty")
    windows = page.locator(".stats .stat-window").all_inner_texts()
    assert len(windows) == 6 and all(windows)
    assert "last 1 h" in windows
    # A marker on the page's window: a full reload would drop it.
    page.evaluate("window.__notReloaded = true")

    _push(live_server, secret, 40)
    org_drain(signal="metrics", org_id=org.pk)
    page.wait_for_function(
        "document.querySelector('[data-testid=series-count]').textContent === '40'",
        timeout=15_000,
    )
    assert page.evaluate("window.__notReloaded") is True
    assert page.is_hidden("#overview-empty")
    assert "ago" in page.inner_text("#overview-updated")
    assert page.inner_text("[data-testid=samples-count]") == "40"

    # Paused, new data does not show up; resumed, it does.
    page.click("#overview-pause")
    assert page.get_attribute("#overview-pause", "aria-pressed") == "true"
    assert "paused" in page.inner_text("#overview-status")
    _push(live_server, secret, 60)
    org_drain(signal="metrics", org_id=org.pk)
    page.wait_for_timeout(3000)
    assert page.inner_text("[data-testid=series-count]") == "40"
    page.click("#overview-pause")
    page.wait_for_function(
        "document.querySelector('[data-testid=series-count]').textContent === '60'",
        timeout=15_000,
    )
    assert page.evaluate("window.__notReloaded") is True
    assert not errors, errors
