"""The dashboard under its Content-Security-Policy, in a real Chromium that enforces it (no
bypass): no page triggers a violation, and the behaviours that were inline handlers work."""

import pytest

from backend.tenancy.services import org_create, token_create, user_get_or_create

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-password-1234"


def test_pages_run_under_the_csp(browser, live_server, transactional_db):
    user = user_get_or_create(username="ada", password=PASSWORD)
    org = org_create(slug="acme", name="Acme Mesh", owner=user)
    token_create(org=org, name="old sender", scopes=["metrics:write"])
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    violations = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", "ada")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        pages = (
            "/",
            "/metrics",
            "/traces",
            "/traces/map",
            "/mesh",
            "/mesh/app/default/reviews",
            "/config",
            "/config/editor",
            "/config/revisions",
            "/config/telemetry",
            "/alerts",
            "/rules",
            "/settings/usage",
            "/settings/members",
        )
        for path in pages:
            page.goto(f"{live_server.url}{path}")
            page.wait_for_load_state("networkidle")
        page.goto(f"{live_server.url}/settings/tokens")
        page.fill("#token-name", "new sender")
        page.click("form.token-form button[type=submit]")
        page.click("#new-secret")  # data-select-on-click
        selected = page.evaluate_handle(
            "() => document.getSelection().toString() || document.activeElement.selectionEnd"
        ).json_value()
        assert selected
        page.once("dialog", lambda dialog: dialog.dismiss())  # data-confirm: cancelled
        page.click("form[data-confirm] button")
        assert page.locator("text=revoked").count() == 0
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("form[data-confirm] button")
        page.wait_for_selector("text=revoked")
    finally:
        context.close()
    assert violations == []
