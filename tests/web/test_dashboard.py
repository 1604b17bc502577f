import numpy as np
import pytest
from django.urls import reverse

from backend.metrics import services
from backend.metrics.storage.blocks import now_ms
from backend.metrics.storage.catalog import series_resolve
from backend.pipeline.drain import org_drain
from backend.tenancy.models import ApiToken
from backend.tenancy.rejections import rejections_count
from tests.helpers.credentials import PASSWORD

pytestmark = pytest.mark.django_db


def test_login_page_renders_and_login_works(client, tenants):
    page = client.get("/login/")
    assert page.status_code == 200
    assert b"Log in" in page.content
    response = client.post("/login/", {"username": "owner", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    home = client.get("/")
    assert b"Acme" in home.content
    assert b"/api/v1/push" in home.content


def test_anonymous_is_sent_to_login(client, db):
    response = client.get("/settings/tokens")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_login_is_locked_after_repeated_failures(client, tenants):
    for _ in range(5):
        client.post("/login/", {"username": "owner", "password": "wrong"})
    locked = client.post("/login/", {"username": "owner", "password": PASSWORD})
    assert locked.status_code == 429
    assert b"Too many failed" in locked.content


def test_org_switcher_only_switches_to_own_orgs(client, tenants):
    client.force_login(tenants.owner)
    assert client.post(reverse("web:switch-org"), {"org": "globex"}).status_code == 404
    assert client.post(reverse("web:switch-org"), {"org": "acme"}).status_code == 302


def test_owner_creates_and_revokes_a_token_in_the_dashboard(client, tenants):
    client.force_login(tenants.owner)
    page = client.post(reverse("web:tokens"), {"name": "prom-eu", "scopes": ["metrics:write"]})
    assert page.status_code == 200
    secret = page.context["created_secret"]
    assert secret.startswith("cnp_") and secret.encode() in page.content
    token = ApiToken.objects.for_org(tenants.org).get(name="prom-eu")
    assert token.scopes == ["metrics:write"]
    client.post(reverse("web:token-revoke", args=[token.pk]))
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_members_cannot_see_or_create_tokens(client, tenants):
    client.force_login(tenants.member)
    page = client.get(reverse("web:tokens"))
    assert b"Only owners and admins" in page.content
    assert client.post(reverse("web:tokens"), {"name": "x", "scopes": ["admin"]}).status_code == 404


def test_outsider_cannot_revoke_or_see_acme_tokens(client, tenants):
    acme = tenants.token(["metrics:write"])
    token = ApiToken.objects.for_org(tenants.org).get(prefix=acme[:12])
    client.force_login(tenants.outsider)
    page = client.get(reverse("web:tokens"))
    assert token.prefix.encode() not in page.content
    assert client.post(reverse("web:token-revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    members = client.get(reverse("web:members"))
    assert b"owner@example.com" not in members.content


def test_home_shows_this_orgs_ingest_figures_only(client, tenants):
    ids = series_resolve(
        org_id=tenants.org.pk,
        label_sets=[(("__name__", "up"), ("job", j)) for j in "abc"],
        max_per_user=10,
        max_per_metric=10,
    )
    services.samples_write(
        org_id=tenants.org.pk,
        series_ids=np.array(ids),
        timestamps=np.full(3, now_ms()),
        values=np.ones(3),
    )
    org_drain(signal="metrics", org_id=tenants.org.pk)
    rejections_count(org_id=tenants.org.pk, signal="metrics", reasons={"too_old": 7})
    client.force_login(tenants.owner)
    page = client.get("/")
    figures = {f["key"]: f["value"] for f in page.context["overview"]["figures"]}
    assert figures["series"] == 3
    assert figures["samples"] == 3
    assert b"too old" in page.content
    client.force_login(tenants.outsider)
    other = client.get("/")
    assert {f["key"]: f["value"] for f in other.context["overview"]["figures"]}["series"] == 0
    assert b"too old" not in other.content
