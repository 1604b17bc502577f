"""The API docs page in a real Chromium: Swagger UI under Canopy's header, and *Try it out*
working for a logged-in member with nothing but the session (GET, and a POST that carries the
CSRF token the page's script adds): the token it creates lands in the member's org."""

import json

import pytest

from backend.tenancy.models import ApiToken, Organization
from backend.tenancy.services import org_create, user_get_or_create
from tests.e2e.test_metrics_explorer import PASSWORD, log_in

pytestmark = pytest.mark.e2e


def _execute(page, op_id: str, body: dict | None = None) -> str:
    block = page.locator(f"#operations-api-{op_id}")
    block.locator(".opblock-summary").click()
    block.locator("button.try-out__btn").click()
    if body is not None:
        block.locator("textarea.body-param__text").fill(json.dumps(body))
    block.locator("button.execute").click()
    status = block.locator(".live-responses-table .response .response-col_status")
    status.first.wait_for()
    return status.first.inner_text().strip()


def test_try_it_out_with_the_session(page, live_server, transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    ada = user_get_or_create(username="ada", password=PASSWORD)
    org_create(slug="acme", name="Acme Mesh", owner=ada)
    eve = user_get_or_create(username="eve", password=PASSWORD)
    org_create(slug="globex", name="Globex", owner=eve)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    log_in(page, live_server, "ada")
    page.click("nav >> text=API docs")
    page.wait_for_selector("#swagger-ui .information-container")
    who = page.inner_text("[data-testid=docs-who]")
    assert "ada" in who and "Acme Mesh" in who and "acme" in who
    # the ingest endpoints are documented
    assert page.locator("#operations-ingest-remote_write").count() == 1
    assert page.locator("#operations-ingest-otlp_traces").count() == 1
    assert page.locator("#operations-ingest-zipkin_spans").count() == 1

    assert _execute(page, "api_v1_tokens_list") == "200"
    body = {"name": "from-docs", "scopes": ["metrics:read"]}
    assert _execute(page, "api_v1_tokens_create", body) == "201"
    acme = Organization.objects.get(slug="acme")
    assert ApiToken.objects.for_org(acme).filter(name="from-docs").count() == 1
    globex = Organization.objects.get(slug="globex")
    assert not ApiToken.objects.for_org(globex).filter(name="from-docs").exists()

    # back to the app from the header
    page.click("text=← Back to the dashboard")
    page.wait_for_url(f"{live_server.url}/")
    assert not errors, errors
