"""The management API: authentication forms, per-method scopes, and tenant isolation."""

import pytest

from backend.tenancy.models import ApiToken, Membership, Role, Scope
from backend.tenancy.services import member_add, org_create
from tests.helpers.credentials import basic, bearer

pytestmark = pytest.mark.django_db


def test_bearer_and_basic_auth(api, tenants):
    secret = tenants.token([Scope.ADMIN])
    assert api.get("/api/v1/tokens", **bearer(secret)).status_code == 200
    assert api.get("/api/v1/tokens", **basic("acme", secret)).status_code == 200
    # Basic auth's username must be the token's org.
    wrong_user = api.get("/api/v1/tokens", **basic("globex", secret))
    assert wrong_user.status_code == 401
    assert "organization slug" in wrong_user.json()["detail"]


@pytest.mark.parametrize(
    "header",
    ["Bearer cnp_nope", "Bearer ", "Basic !!!", "Basic " + "YWNtZQ=="],  # last: "acme" without ':'
)
def test_bad_credentials_are_401_with_www_authenticate(api, tenants, header):
    response = api.get("/api/v1/tokens", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert "Bearer" in response["WWW-Authenticate"]


def test_missing_credentials_are_401(api, tenants):
    response = api.get("/api/v1/tokens")
    assert response.status_code == 401
    assert response["WWW-Authenticate"]


def test_revoked_token_is_401(api, tenants):
    secret = tenants.token([Scope.ADMIN])
    token = ApiToken.objects.for_org(tenants.org).get(prefix=secret[:12])
    api.delete(f"/api/v1/tokens/{token.pk}", **bearer(secret))
    assert api.get("/api/v1/tokens", **bearer(secret)).status_code == 401


def test_token_without_scope_is_403(api, tenants):
    write_only = tenants.token([Scope.METRICS_WRITE])
    response = api.get("/api/v1/tokens", **bearer(write_only))
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]


def test_token_lifecycle_over_the_api(api, tenants):
    admin = tenants.token([Scope.ADMIN])
    created = api.post(
        "/api/v1/tokens",
        {"name": "prometheus", "scopes": ["metrics:write"]},
        format="json",
        **bearer(admin),
    )
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith(body["prefix"])
    assert body["scopes"] == ["metrics:write"]
    listed = api.get("/api/v1/tokens", **bearer(admin)).json()
    assert {t["name"] for t in listed} >= {"prometheus"}
    assert all("token" not in t for t in listed)  # the secret is shown once only
    revoked = api.delete(f"/api/v1/tokens/{body['id']}", **bearer(admin))
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    bad = api.post(
        "/api/v1/tokens", {"name": "x", "scopes": ["root"]}, format="json", **bearer(admin)
    )
    assert bad.status_code == 400


def test_my_orgs_for_sessions_and_tokens(api, tenants):
    api.force_login(tenants.member)
    orgs = api.get("/api/v1/orgs").json()
    assert orgs == [
        {"slug": "acme", "name": "Acme", "created_at": orgs[0]["created_at"], "role": "member"}
    ]
    api.logout()
    token_orgs = api.get("/api/v1/orgs", **bearer(tenants.outsider_token())).json()
    assert [o["slug"] for o in token_orgs] == ["globex"]


def test_members_admin_only_for_sessions(api, tenants):
    api.force_login(tenants.member)
    assert api.get("/api/v1/orgs/acme/members").status_code == 403
    api.force_login(tenants.owner)
    members = api.get("/api/v1/orgs/acme/members").json()
    assert {m["username"]: m["role"] for m in members} == {
        "owner": "owner",
        "member": "member",
        "viewer": "viewer",
    }


def test_member_management(api, tenants):
    api.force_login(tenants.owner)
    pk = Membership.objects.for_org(tenants.org).get(user=tenants.member).pk
    changed = api.patch(f"/api/v1/orgs/acme/members/{pk}", {"role": "admin"}, format="json")
    assert changed.json()["role"] == "admin"
    assert api.delete(f"/api/v1/orgs/acme/members/{pk}").status_code == 204
    owner_pk = Membership.objects.for_org(tenants.org).get(user=tenants.owner).pk
    last_owner = api.patch(
        f"/api/v1/orgs/acme/members/{owner_pk}", {"role": "member"}, format="json"
    )
    assert last_owner.status_code == 400
    assert "at least one owner" in str(last_owner.json())


def test_session_org_comes_from_path_query_or_session(api, tenants):
    api.force_login(tenants.owner)
    # a member of one org: that org; of several: which one?
    assert api.get("/api/v1/tokens").status_code == 200
    second = org_create(slug="zeta", name="Zeta", owner=tenants.outsider)
    member_add(org=second, user=tenants.owner, role=Role.ADMIN, actor=tenants.outsider)
    assert api.get("/api/v1/tokens").status_code == 400
    assert api.get("/api/v1/tokens?org=acme").status_code == 200
    session = api.session
    session["canopy_org"] = "acme"
    session.save()
    assert api.get("/api/v1/tokens").status_code == 200


class TestOutsiderIsolation:
    """Another org's token or session sees nothing of acme's and changes nothing: 404s."""

    def test_outsider_token_cannot_name_another_org(self, api, tenants):
        outsider = tenants.outsider_token()
        for url in ("/api/v1/orgs/acme/tokens", "/api/v1/orgs/acme/members"):
            assert api.get(url, **bearer(outsider)).status_code == 404

    def test_outsider_token_lists_only_its_own(self, api, tenants):
        tenants.token([Scope.METRICS_WRITE])  # an acme token that must not show
        listed = api.get("/api/v1/tokens", **bearer(tenants.outsider_token())).json()
        assert {t["prefix"] for t in listed} == set(
            ApiToken.objects.for_org(tenants.other_org).values_list("prefix", flat=True)
        )
        members = api.get("/api/v1/members", **bearer(tenants.outsider_token())).json()
        assert [m["username"] for m in members] == ["outsider"]

    def test_outsider_cannot_touch_acme_objects_by_id(self, api, tenants):
        outsider = tenants.outsider_token()
        acme_secret = tenants.token([Scope.METRICS_WRITE])
        acme_token = ApiToken.objects.for_org(tenants.org).get(prefix=acme_secret[:12])
        member = Membership.objects.for_org(tenants.org).get(user=tenants.member)
        assert api.get(f"/api/v1/tokens/{acme_token.pk}", **bearer(outsider)).status_code == 404
        assert api.delete(f"/api/v1/tokens/{acme_token.pk}", **bearer(outsider)).status_code == 404
        assert api.get(f"/api/v1/members/{member.pk}", **bearer(outsider)).status_code == 404
        assert (
            api.patch(
                f"/api/v1/members/{member.pk}",
                {"role": "viewer"},
                format="json",
                **bearer(outsider),
            ).status_code
            == 404
        )
        assert api.delete(f"/api/v1/members/{member.pk}", **bearer(outsider)).status_code == 404
        acme_token.refresh_from_db()
        member.refresh_from_db()
        assert acme_token.revoked_at is None and member.role == "member"

    def test_outsider_session_gets_404(self, api, tenants):
        api.force_login(tenants.outsider)
        assert api.get("/api/v1/orgs/acme/tokens").status_code == 404
        assert api.get("/api/v1/tokens?org=acme").status_code == 404
        assert (
            api.post(
                "/api/v1/orgs/acme/tokens", {"name": "x", "scopes": ["admin"]}, format="json"
            ).status_code
            == 404
        )
        assert api.get("/api/v1/orgs/no-such-org/tokens").status_code == 404


def test_openapi_schema_and_docs(api, client, tenants):
    assert api.get("/api/schema/").status_code in (401, 403)  # not for the public
    assert client.get("/api/docs/").status_code == 302  # to the login page
    api.force_login(tenants.member)
    client.force_login(tenants.member)
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/redoc/").status_code == 200
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/tokens" in paths and "/api/v1/orgs/{org_slug}/members" in paths
    assert api.get("/api/docs/").status_code == 200
    script = client.get("/api/docs/?script=")  # Swagger UI's start-up, a file for the CSP
    assert script.status_code == 200
