import pytest
import requests

from backend.pipeline.drain import org_drain
from backend.tenancy.models import ApiToken, Organization, Role
from backend.tenancy.selectors import token_authenticate
from backend.tenancy.services import member_add, org_create, token_create, user_get_or_create
from bench import istio_payloads as ip

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-password-1234"


@pytest.fixture
def owner(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = user_get_or_create(username="ada", password=PASSWORD)
    org_create(slug="acme", name="Acme Mesh", owner=user)
    outsider = user_get_or_create(username="eve", password=PASSWORD)
    other = org_create(slug="globex", name="Globex", owner=outsider)
    member_add(org=other, user=user, role=Role.VIEWER, actor=outsider)
    return user


def test_log_in_switch_org_and_create_a_token(page, live_server, owner, tmp_path):
    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url
    page.fill("#id_username", "ada")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    assert page.locator(".msg-error").is_visible()

    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Acme Mesh')")
    assert "/api/v1/push" in page.inner_text(".cards")
    page.screenshot(path=str(tmp_path / "home.png"), full_page=True)

    page.click("text=API tokens")
    page.fill("#token-name", "prometheus-eu")
    page.click("button:has-text('Create token')")
    secret = page.input_value("#new-secret")
    assert secret.startswith("cnp_")
    token = token_authenticate(secret=secret)
    assert token is not None and token.name == "prometheus-eu"
    assert sorted(token.scopes) == ["metrics:write", "traces:write"]
    assert page.locator("table.table td", has_text="prometheus-eu").count() == 1
    page.screenshot(path=str(tmp_path / "tokens.png"), full_page=True)

    # Switching to the org where ada is a viewer hides token management.
    page.select_option("#org-select", "globex")
    page.wait_for_selector("text=Only owners and admins")
    assert ApiToken.objects.for_org(token.org).count() == 1

    page.click("text=Log out")
    page.wait_for_url("**/login/")


def test_home_shows_metrics_arriving(page, live_server, owner, tmp_path):
    org = Organization.objects.get(slug="acme")
    _, secret = token_create(org=org, name="prom", scopes=["metrics:write"])
    body = ip.build_requests(0, 1, ip.aligned_start_ms(1), n_series=40, samples_per_request=40)[0]
    response = requests.post(
        f"{live_server.url}/api/v1/push",
        data=body,
        timeout=10,
        headers={**ip.REMOTE_WRITE_HEADERS, "Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 204
    requests.post(
        f"{live_server.url}/api/v1/push",
        data=b"junk",
        timeout=10,
        headers={**ip.REMOTE_WRITE_HEADERS, "Authorization": f"Bearer {secret}"},
    )
    org_drain(signal="metrics", org_id=org.pk)

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=series-count]")
    assert page.inner_text("[data-testid=series-count]") == "40"
    assert "http 400" in page.inner_text(".bars")
    page.screenshot(path=str(tmp_path / "home-with-data.png"), full_page=True)
