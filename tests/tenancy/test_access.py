"""backend.tenancy.access: one answer to "which org, which scopes" for every kind of caller."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from django.utils import timezone

from backend.tenancy.access import (
    SESSION_ORG_KEY,
    Access,
    AccessError,
    NotAuthenticated,
    OrgNotFound,
    OrgNotNamed,
    TokenPrincipal,
    Via,
    access_for_request,
    access_from_authorization,
    access_from_grpc_metadata,
    session_access,
    session_memberships,
    session_org_select,
)
from backend.tenancy.models import ALL_SCOPES, ApiToken, Role, Scope
from backend.tenancy.services import member_add, org_create, token_create, token_revoke
from tests.helpers.credentials import basic, bearer


def _request(user=None, *, session=None, path="/", **extra):
    request = RequestFactory().get(path, **extra)
    request.user = user if user is not None else AnonymousUser()
    request.session = dict(session or {})  # what the access module reads and writes of it
    return request


def _auth(headers: dict[str, str]) -> str:
    return headers["HTTP_AUTHORIZATION"]


def test_bearer_token_resolves_to_its_org_with_its_scopes(tenants):
    secret = tenants.token([Scope.METRICS_READ, Scope.TRACES_WRITE])
    access = access_for_request(_request(**bearer(secret)))
    assert access.org == tenants.org
    assert access.via is Via.TOKEN
    assert access.scopes == {Scope.METRICS_READ, Scope.TRACES_WRITE}
    assert access.token is not None and access.token.org_id == tenants.org.pk
    assert access.user is None and access.role is None
    assert access.allows(Scope.METRICS_READ)
    assert access.allows(Scope.CONFIG_WRITE, Scope.TRACES_WRITE)  # any one suffices
    assert not access.allows(Scope.METRICS_WRITE)
    assert not access.allows()  # wanting nothing stays closed
    assert not access.can_manage


def test_basic_auth_username_must_be_the_tokens_org(tenants):
    secret = tenants.token([Scope.METRICS_READ])
    access = access_from_authorization(_auth(basic("acme", secret)))
    assert access is not None and access.org == tenants.org
    with pytest.raises(AccessError, match="username must be the token's organization") as err:
        access_from_authorization(_auth(basic("globex", secret)))
    assert err.value.status == 401
    with pytest.raises(AccessError, match="malformed basic credentials"):
        access_from_authorization("Basic !!!")
    with pytest.raises(AccessError, match="org slug as username"):
        access_from_authorization(_auth(basic("acme", "")))
    with pytest.raises(AccessError, match="empty bearer token"):
        access_from_authorization("Bearer ")


def test_no_credentials_is_not_an_error_until_access_is_needed(tenants):
    assert access_from_authorization("") is None
    assert access_from_authorization("Digest abc") is None
    with pytest.raises(NotAuthenticated) as err:
        access_for_request(_request())
    assert err.value.status == 401


@pytest.mark.parametrize("state", ["expired", "revoked", "unknown"])
def test_expired_revoked_or_unknown_tokens_are_refused(tenants, state):
    if state == "unknown":
        secret = "cnp_" + "x" * 40
    else:
        expires = timezone.now() - timedelta(seconds=1) if state == "expired" else None
        token, secret = token_create(
            org=tenants.org, name="t", scopes=[Scope.ADMIN], expires_at=expires
        )
        if state == "revoked":
            token_revoke(token=token)
    with pytest.raises(AccessError, match="invalid, expired or revoked token") as err:
        access_for_request(_request(**bearer(secret)))
    assert err.value.status == 401


def test_a_token_naming_another_org_looks_like_a_missing_org(tenants):
    secret = tenants.token([Scope.ADMIN])
    assert access_for_request(_request(**bearer(secret)), org_slug="acme").org == tenants.org
    for slug in ("globex", "no-such-org"):
        with pytest.raises(OrgNotFound) as err:
            access_for_request(_request(**bearer(secret)), org_slug=slug)
        assert err.value.status == 404


def test_an_outsiders_token_never_resolves_to_our_org(tenants):
    secret = tenants.outsider_token()
    # Every way of asking for acme with globex's admin token.
    with pytest.raises(OrgNotFound):
        access_for_request(_request(**bearer(secret)), org_slug="acme")
    with pytest.raises(AccessError):
        access_from_authorization(_auth(basic("acme", secret)))
    # ?org= and the session's org are a member's choices; a token ignores them.
    request = _request(
        **bearer(secret), path="/?org=acme", session={SESSION_ORG_KEY: tenants.org.slug}
    )
    assert access_for_request(request).org == tenants.other_org
    grpc = access_from_grpc_metadata([("authorization", f"Bearer {secret}")])
    assert grpc is not None and grpc.org == tenants.other_org


def test_drf_token_principal_is_reused_without_authenticating_again(tenants, monkeypatch):
    secret = tenants.token([Scope.METRICS_READ])
    access = access_from_authorization(f"Bearer {secret}")
    request = _request(TokenPrincipal(access))

    def fail(**_):
        raise AssertionError("authenticated twice")

    monkeypatch.setattr("backend.tenancy.access.token_authenticate", fail)
    assert access_for_request(request) is access
    assert request.user.org == tenants.org
    assert str(request.user) == f"token:{access.token.prefix}"


def test_touches_last_used_at_once_per_resolution_window(tenants):
    secret = tenants.token([Scope.METRICS_READ])
    access_from_authorization(f"Bearer {secret}")
    first = ApiToken.objects.for_org(tenants.org).get(name="test").last_used_at
    assert first is not None
    access_from_authorization(f"Bearer {secret}")
    assert ApiToken.objects.for_org(tenants.org).get(name="test").last_used_at == first


def test_grpc_metadata(tenants):
    secret = tenants.token([Scope.TRACES_WRITE])
    access = access_from_grpc_metadata(
        [("user-agent", "otel"), ("authorization", f"Bearer {secret}")]
    )
    assert access is not None and access.org == tenants.org and access.via is Via.TOKEN
    assert access.allows(Scope.TRACES_WRITE) and not access.allows(Scope.TRACES_READ)
    as_bytes = access_from_grpc_metadata([("authorization", f"Bearer {secret}".encode())])
    assert as_bytes is not None and as_bytes.org == tenants.org
    assert access_from_grpc_metadata([("user-agent", "otel")]) is None
    with pytest.raises(AccessError, match="invalid, expired or revoked"):
        access_from_grpc_metadata([("authorization", "Bearer cnp_nope")])


def test_session_member_names_the_org_by_url_query_or_session(tenants):
    viewer = tenants.viewer
    by_url = access_for_request(_request(viewer), org_slug="acme")
    assert by_url.org == tenants.org and by_url.via is Via.SESSION
    assert by_url.user == viewer and by_url.token is None and by_url.role == Role.VIEWER
    assert by_url.allows(Scope.METRICS_READ) and not by_url.allows(Scope.METRICS_WRITE)
    assert access_for_request(_request(viewer, path="/?org=acme")).org == tenants.org
    kept = _request(viewer, session={SESSION_ORG_KEY: "acme"})
    assert access_for_request(kept).org == tenants.org
    # a member of exactly one org means that one; a member of several must name it
    assert access_for_request(_request(viewer)).org == tenants.org
    second = org_create(slug="zeta", name="Zeta", owner=tenants.outsider)
    member_add(org=second, user=viewer, role=Role.VIEWER, actor=tenants.outsider)
    with pytest.raises(OrgNotNamed) as err:
        access_for_request(_request(viewer))
    assert err.value.status == 400
    assert access_for_request(_request(viewer, path="/?org=zeta")).org == second


def test_session_roles_map_to_scopes(tenants):
    owner = access_for_request(_request(tenants.owner), org_slug="acme")
    assert owner.scopes == ALL_SCOPES and owner.can_manage and owner.allows(Scope.ADMIN)
    member = access_for_request(_request(tenants.member), org_slug="acme")
    assert member.allows(Scope.METRICS_WRITE, Scope.TRACES_WRITE, Scope.CONFIG_WRITE)
    assert not member.allows(Scope.ADMIN) and not member.can_manage


def test_session_of_another_org_is_not_found(tenants):
    for slug in ("acme", "no-such-org"):
        with pytest.raises(OrgNotFound):
            access_for_request(_request(tenants.outsider), org_slug=slug)
        with pytest.raises(OrgNotFound):
            access_for_request(_request(tenants.outsider, session={SESSION_ORG_KEY: slug}))


def test_dashboard_session_keeps_one_of_the_members_orgs(tenants):
    owner = tenants.owner
    second = org_create(slug="zeta", name="Zeta", owner=tenants.outsider)
    member_add(org=second, user=owner, role=Role.VIEWER, actor=tenants.outsider)

    fresh = _request(owner)
    assert session_access(fresh).org == tenants.org  # the first, by slug
    assert [m.org.slug for m in session_memberships(fresh)] == ["acme", "zeta"]

    kept = _request(owner, session={SESSION_ORG_KEY: "zeta"})
    assert session_access(kept).role == Role.VIEWER

    # A shared link's org is followed and remembered.
    followed = _request(owner)
    access = session_access(followed, org_slug="zeta")
    assert access.org == second and followed.session[SESSION_ORG_KEY] == "zeta"
    assert session_access(followed).org == second

    with pytest.raises(OrgNotFound):
        session_access(_request(owner), org_slug="globex")
    with pytest.raises(OrgNotFound):
        session_org_select(_request(owner), org_slug="globex")

    switched = _request(owner)
    assert session_org_select(switched, org_slug="zeta").org == second
    assert switched.session[SESSION_ORG_KEY] == "zeta"


def test_dashboard_session_without_org_or_user(tenants):
    loner = _request(type(tenants.owner).objects.create_user(username="loner"))
    assert session_access(loner) is None and session_memberships(loner) == []
    assert session_access(_request()) is None and session_memberships(_request()) == []
    secret = tenants.token([Scope.ADMIN])
    principal = TokenPrincipal(access_from_authorization(f"Bearer {secret}"))
    assert session_access(_request(principal)) is None  # a token has no dashboard


def test_access_is_immutable(tenants):
    access = Access(org=tenants.org, scopes=frozenset({Scope.METRICS_READ}), via=Via.TOKEN)
    with pytest.raises(AttributeError):
        access.org = tenants.other_org  # type: ignore[misc]
    assert access.org_id == tenants.org.pk
