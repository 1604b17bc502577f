"""Members join by invitation: an emailed, expiring link the invitee accepts (signing up if
the server allows); no answer tells whether an address or a username has an account."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from backend.tenancy.models import AuditEvent, Invitation, Membership, Organization
from backend.tenancy.services import user_get_or_create
from tests.helpers.credentials import PASSWORD, bearer

pytestmark = pytest.mark.django_db


def _link() -> str:
    (message,) = mail.outbox[-1:]
    return re.search(r"https?://[^/\s]+(/invitations/\S+)", message.body).group(1)


def test_usernames_do_not_add_members_and_tell_nothing(api, tenants):
    api.force_login(tenants.owner)
    known = api.post("/api/v1/orgs/acme/members", {"username": "outsider"}, format="json")
    unknown = api.post("/api/v1/orgs/acme/members", {"username": "nobody-xyz"}, format="json")
    assert known.status_code == unknown.status_code == 400
    assert known.json() == unknown.json()
    assert not Membership.objects.for_org(tenants.org).filter(user=tenants.outsider).exists()


def test_an_invitation_answers_alike_for_known_and_unknown_addresses(api, tenants):
    tenants.outsider.email = "outsider@example.com"
    tenants.outsider.save()
    api.force_login(tenants.owner)
    known = api.post(
        "/api/v1/orgs/acme/members", {"email": "outsider@example.com"}, format="json"
    ).json()
    unknown = api.post(
        "/api/v1/orgs/acme/members", {"email": "nobody@example.com"}, format="json"
    ).json()
    assert set(known) == set(unknown)
    assert known["status"] == unknown["status"] == "open"
    assert "username" not in str(known)
    assert len(mail.outbox) == 2
    assert {m.to[0] for m in mail.outbox} == {"outsider@example.com", "nobody@example.com"}
    # nobody joined yet
    assert not Membership.objects.for_org(tenants.org).filter(user=tenants.outsider).exists()


def test_the_invitee_accepts_once(api, client, tenants):
    tenants.outsider.email = "outsider@example.com"
    tenants.outsider.save()
    api.force_authenticate(tenants.owner)
    api.post(
        "/api/v1/orgs/acme/invitations",
        {"email": "Outsider@Example.com", "role": "viewer"},
        format="json",
    )
    link = _link()
    page = client.get(link)
    assert page.status_code == 200 and "Sign in to accept" in page.content.decode()
    client.force_login(tenants.member)  # someone else holding the link
    client.post(link, {"action": "accept"})
    assert Invitation.objects.for_org(tenants.org).get().accepted_at is None
    client.force_login(tenants.outsider)
    response = client.post(link, {"action": "accept"})
    assert response.status_code == 302
    membership = Membership.objects.for_org(tenants.org).get(user=tenants.outsider)
    assert membership.role == "viewer"
    assert client.get(link).status_code == 404  # used
    assert AuditEvent.objects.for_org(tenants.org).filter(action="member.add").exists()


def test_expired_and_revoked_invitations_do_nothing(api, client, tenants):
    api.force_authenticate(tenants.owner)
    created = api.post("/api/v1/orgs/acme/invitations", {"email": "a@example.com"}, format="json")
    link = _link()
    Invitation.objects.for_org(tenants.org).update(expires_at=timezone.now() - timedelta(1))
    assert client.get(link).status_code == 404
    api.post("/api/v1/orgs/acme/invitations", {"email": "b@example.com"}, format="json")
    second = _link()
    pk = Invitation.objects.for_org(tenants.org).get(email="b@example.com").pk
    assert api.delete(f"/api/v1/orgs/acme/invitations/{pk}").json()["status"] == "revoked"
    assert client.get(second).status_code == 404
    assert created.status_code == 202


def test_an_invitee_without_an_account_signs_up_through_the_link(api, client, tenants, settings):
    api.force_authenticate(tenants.owner)
    api.post("/api/v1/orgs/acme/invitations", {"email": "new@example.com"}, format="json")
    link = _link()
    # open sign-up off (production's default): an invitee still creates an account by the link
    settings.SIGNUP_ENABLED = False
    client.post(link, {"action": "signup", "password": PASSWORD, "password2": "other"})
    assert not Membership.objects.for_org(tenants.org).filter(user__email="new@example.com")
    response = client.post(link, {"action": "signup", "password": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302
    joined = Membership.objects.for_org(tenants.org).get(user__email="new@example.com")
    assert joined.role == "member" and joined.user.check_password(PASSWORD)


def test_invitations_are_admin_only_and_isolated(api, tenants):
    admin = bearer(tenants.token(["admin"]))
    api.post("/api/v1/invitations", {"email": "x@example.com"}, format="json", **admin)
    assert len(api.get("/api/v1/invitations", **admin).json()) == 1
    outsider = bearer(tenants.outsider_token())
    assert api.get("/api/v1/orgs/acme/invitations", **outsider).status_code == 404
    assert api.get("/api/v1/invitations", **outsider).json() == []
    pk = Invitation.objects.for_org(tenants.org).get().pk
    assert api.delete(f"/api/v1/invitations/{pk}", **outsider).status_code == 404
    reader = bearer(tenants.token(["metrics:read"]))
    assert api.get("/api/v1/invitations", **reader).status_code == 403


def test_the_members_page_invites(client, tenants):
    client.force_login(tenants.owner)
    response = client.post(
        "/settings/members", {"email": "page@example.com", "role": "admin"}, follow=True
    )
    assert "Invitation sent" in response.content.decode()
    assert "page@example.com" in response.content.decode()
    assert Invitation.objects.for_org(tenants.org).get().role == "admin"


def test_create_org_invites_its_owner(tenants):
    out = StringIO()
    call_command(
        "create_org",
        "--slug",
        "initech",
        "--name",
        "Initech",
        "--owner-email",
        "boss@example.com",
        stdout=out,
    )
    org = Organization.objects.get(slug="initech")
    invitation = Invitation.objects.for_org(org).get()
    assert (invitation.email, invitation.role) == ("boss@example.com", "owner")
    assert "/invitations/" in out.getvalue() and mail.outbox[-1].to == ["boss@example.com"]
    boss = user_get_or_create(username="boss", email="boss@example.com", password=PASSWORD)
    from backend.tenancy.services import invitation_accept

    secret = out.getvalue().rsplit("/invitations/", 1)[1].strip()
    assert invitation_accept(secret=secret, user=boss).role == "owner"
