"""Open sign-up in real Chromium: the login page's link, the email step, the emailed link
(read from Django's test mail outbox: the live server runs in this process), the account and
org created, the dashboard of the new, empty org; and 404 when sign-up is off."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from backend.tenancy.models import Membership, Organization, Role

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-signup-password-1234"


@pytest.fixture
def signup_on(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.SIGNUP_ENABLED = True
    mail.outbox = []


def test_sign_up_from_the_login_page(page, live_server, signup_on, tmp_path):
    page.goto(f"{live_server.url}/login/")
    page.click("[data-testid=signup-link]")
    page.wait_for_selector("h1:has-text('Create your account')")
    page.fill("#signup-email", "lin@example.com")
    page.click("button:has-text('Email me a link')")
    page.wait_for_selector("[data-testid=signup-sent]")
    assert "lin@example.com" in page.inner_text("[data-testid=signup-sent]")

    (message,) = mail.outbox
    path = re.search(r"https?://[^/\s]+(/signup/\S+)", message.body).group(1)
    page.goto(f"{live_server.url}{path}")
    page.wait_for_selector("h1:has-text('Almost there')")
    assert page.input_value("#org-slug") == "lin"  # suggested from the address
    page.fill("#org-name", "Lin Systems")
    page.fill("#org-slug", "lin-systems")
    page.fill("#signup-password", PASSWORD)
    page.fill("#signup-password2", PASSWORD)
    page.screenshot(path=str(tmp_path / "signup.png"), full_page=True)
    page.click("button:has-text('Create account and organization')")
    page.wait_for_selector("h1:has-text('Lin Systems')")
    assert "Welcome to Canopy" in page.content()

    org = Organization.objects.get(slug="lin-systems")
    membership = Membership.objects.for_org(org).get()
    assert membership.user.username == "lin@example.com" and membership.role == Role.OWNER

    # signed out, the same credentials log in
    page.click("text=Log out")
    page.wait_for_url("**/login/")
    page.fill("#id_username", "lin@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Lin Systems')")


def test_sign_up_off_is_404_and_not_offered(page, live_server, transactional_db, settings):
    settings.SIGNUP_ENABLED = False
    page.goto(f"{live_server.url}/login/")
    assert page.locator("[data-testid=signup-link]").count() == 0
    response = page.goto(f"{live_server.url}/signup")
    assert response.status == 404
