"""Open sign-up (CANOPY_SIGNUP): off → 404; on → an emailed link, then the account and its
own org. The first step answers alike for known and unknown addresses, and is rate-limited."""

from __future__ import annotations

import itertools
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from backend.tenancy import services
from backend.tenancy.models import AuditEvent, Membership, Organization, Role
from tests.helpers.credentials import PASSWORD

pytestmark = pytest.mark.django_db
User = get_user_model()


def _link(to: str) -> str:
    message = next(m for m in reversed(mail.outbox) if m.to == [to])
    found = re.search(r"https?://[^/\s]+(/signup/\S+)", message.body)
    assert found, message.body
    return found.group(1)


def test_off_by_default_answers_404(client, settings):
    settings.SIGNUP_ENABLED = False
    assert client.get("/signup").status_code == 404
    assert client.post("/signup", {"email": "a@example.com"}).status_code == 404
    assert client.get("/signup/anything").status_code == 404
    assert b"signup-link" not in client.get("/login/").content
    assert mail.outbox == []


def test_setting_defaults(monkeypatch):
    # production (no CANOPY_SIGNUP): off; `make run` sets it on for its processes
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    settings_src = (root / "backend" / "settings.py").read_text()
    assert 'SIGNUP_ENABLED = env_bool("CANOPY_SIGNUP", False)' in settings_src
    runner = ast.parse((root / "backend" / "runner.py").read_text())
    calls = [
        node
        for node in ast.walk(runner)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", "") == "setdefault"
        and [getattr(a, "value", None) for a in node.args] == ["CANOPY_SIGNUP", "true"]
    ]
    assert len(calls) == 1


def test_sign_up_creates_the_user_and_their_own_org(client, settings):
    settings.SIGNUP_ENABLED = True
    assert b"signup-link" in client.get("/login/").content
    sent = client.post("/signup", {"email": "Grace@Example.com"})
    assert sent.status_code == 200 and b"signup-sent" in sent.content
    link = _link("Grace@example.com")
    page = client.get(link)
    assert page.status_code == 200 and b"Grace@example.com" in page.content

    form = {"org_name": "Hopper Labs", "org_slug": "hopper", "password": PASSWORD}
    differ = client.post(link, {**form, "password2": "nope"})
    assert differ.status_code == 400 and b"differ" in differ.content
    done = client.post(link, {**form, "password2": PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/"
    user = User.objects.get(username="Grace@example.com")
    assert user.check_password(PASSWORD) and user.email == "Grace@example.com"
    org = Organization.objects.get(slug="hopper")
    assert Membership.objects.for_org(org).get(user=user).role == Role.OWNER
    assert AuditEvent.objects.for_org(org).filter(action="org.create").exists()
    assert client.get("/").status_code == 200  # signed in, on their org
    # the link does not make a second account
    client.logout()
    again = client.post(link, {**form, "org_slug": "hopper2", "password2": PASSWORD})
    assert again.status_code == 400 and b"exists" in again.content
    assert not Organization.objects.filter(slug="hopper2").exists()


def test_no_user_enumeration(client, settings, tenants):
    settings.SIGNUP_ENABLED = True
    known = client.post("/signup", {"email": "owner@example.com"})
    unknown = client.post("/signup", {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200

    def scrub(response, email):
        html = response.content.decode().replace(email, "EMAIL")
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)

    assert scrub(known, "owner@example.com") == scrub(unknown, "nobody@example.com")
    # the owner of the known address is told by mail, and gets no sign-up link
    (to_known,) = [m for m in mail.outbox if m.to == ["owner@example.com"]]
    assert "already has one" in to_known.body and "/signup/" not in to_known.body
    assert "/signup/" in _link("nobody@example.com")


def test_bad_email_and_tampered_or_expired_links(client, settings, monkeypatch):
    settings.SIGNUP_ENABLED = True
    bad = client.post("/signup", {"email": "not-an-email"})
    assert bad.status_code == 400 and b"valid email" in bad.content
    client.post("/signup", {"email": "ok@example.com"})
    link = _link("ok@example.com")
    assert client.get(link + "x").status_code == 404
    assert client.get("/signup/" + "a" * 5000).status_code == 404
    monkeypatch.setattr(services, "SIGNUP_LINK_MAX_AGE_SECONDS", -1)
    assert client.get(link).status_code == 404


def test_sign_up_is_rate_limited(client, settings):
    settings.SIGNUP_ENABLED = True
    answers = [client.post("/signup", {"email": "same@example.com"}).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]  # per email address: 3 at once
    # per client address: 10 at once, whatever the emails
    answers = [client.post("/signup", {"email": f"u{i}@example.com"}).status_code for i in range(7)]
    # the address's bucket gave 4 above (the 4th request was refused by the email's)
    assert answers == [200] * 6 + [429]
    throttled = client.post("/signup", {"email": "z@example.com"})
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    assert len(mail.outbox) == 9


def test_invitees_sign_up_even_when_open_sign_up_is_off(client, settings, tenants):
    settings.SIGNUP_ENABLED = False
    _, secret = services.invitation_create(org=tenants.org, email="inv@example.com", role="viewer")
    response = client.post(
        f"/invitations/{secret}",
        {"action": "signup", "password": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    joined = Membership.objects.for_org(tenants.org).get(user__email="inv@example.com")
    assert joined.role == "viewer"


_emails = itertools.count()


def _signup_from(client, n: int, *, forwarded: str, remote: str = "10.0.0.1") -> list[int]:
    return [
        client.post(
            "/signup",
            {"email": f"fw{next(_emails)}@example.com"},
            HTTP_X_FORWARDED_FOR=forwarded,
            REMOTE_ADDR=remote,
        ).status_code
        for _ in range(n)
    ]


def test_by_default_a_forwarded_for_header_is_not_trusted(client, settings):
    # CANOPY_TRUSTED_PROXIES=0: the bucket is the connection's peer; a client that sends a
    # fresh X-Forwarded-For each time does not get a fresh bucket
    settings.SIGNUP_ENABLED = True
    assert settings.CANOPY_TRUSTED_PROXIES == 0
    answers = [_signup_from(client, 1, forwarded=f"203.0.113.{i}")[0] for i in range(11)]
    assert answers == [200] * 10 + [429]


def test_behind_a_trusted_proxy_each_client_has_its_own_bucket(client, settings):
    # CANOPY_TRUSTED_PROXIES=1: every request comes from the proxy (one REMOTE_ADDR); the
    # client is the address the proxy appended, whatever the client itself put left of it
    settings.SIGNUP_ENABLED = True
    settings.CANOPY_TRUSTED_PROXIES = 1
    assert _signup_from(client, 11, forwarded="198.51.100.7") == [200] * 10 + [429]
    # another client behind the same proxy is not throttled by the first one's bucket
    assert _signup_from(client, 1, forwarded="198.51.100.8") == [200]
    # the first client cannot escape its bucket by prepending a made-up address
    assert _signup_from(client, 1, forwarded="192.0.2.99, 198.51.100.7") == [429]
    # a request that did not come through the proxy (no header) keys on its peer
    assert client.post("/signup", {"email": "direct@example.com"}).status_code == 200
