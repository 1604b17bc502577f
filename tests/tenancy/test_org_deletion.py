"""Deleting an org: closed at once, its data (series, blocks, spans, rollups, tokens, audit)
deleted in the background from every table with an org_id, the record of it kept; the other
org untouched."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from backend.pipeline.drain import org_drain
from backend.tenancy.models import Organization, OrgDeletion
from backend.tenancy.selectors import token_authenticate
from backend.tenancy.tasks import purge_deleted_orgs
from tests.helpers.otlp import otlp_request, post_otlp, span
from tests.helpers.trace_queries import NOW
from tests.metrics.samples import counter, load

pytestmark = pytest.mark.django_db


def rows_of(org_id: int) -> dict[str, int]:
    out = {}
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE a.attname = 'org_id' "
            "AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND n.nspname = current_schema()"
        )
        for (table,) in cur.fetchall():
            cur.execute(f'SELECT count(*) FROM "{table}" WHERE org_id = %s', [org_id])
            out[table] = cur.fetchone()[0]
    return {t: n for t, n in out.items() if n}


def test_deleting_an_org_removes_all_its_data_in_the_background(client, tenants):
    for org in (tenants.org, tenants.other_org):
        load(org, {counter("up", job="mesh"): [(i * 15, 1.0) for i in range(10)]})
    secret = tenants.token(["traces:write", "metrics:read"])
    request = otlp_request([span("eee19b7ec3c1b174", name="GET /", start=NOW)], service="shop")
    assert post_otlp(client, request.SerializeToString(), secret).status_code == 200
    org_drain(signal="traces", org_id=tenants.org.pk)
    post_otlp(client, request.SerializeToString(), tenants.outsider_token(["traces:write"]))
    org_drain(signal="traces", org_id=tenants.other_org.pk)
    before = rows_of(tenants.org.pk)
    tables = {"trace_blocks", "trace_span_keys", "tenancy_apitoken", "tenancy_membership"}
    assert tables <= set(before)
    assert any("metric" in t or "series" in t for t in before)
    others = rows_of(tenants.other_org.pk)

    with pytest.raises(CommandError, match="--yes"):
        call_command("delete_org", "--slug", "acme", stdout=StringIO())
    call_command("delete_org", "--slug", "acme", "--yes", stdout=StringIO())
    assert token_authenticate(secret=secret) is None  # closed at once
    assert Organization.objects.filter(slug="acme").exists()  # the data goes in the background

    assert purge_deleted_orgs() == 1
    assert rows_of(tenants.org.pk) == {}
    assert not Organization.objects.filter(slug="acme").exists()
    assert rows_of(tenants.other_org.pk) == others
    record = OrgDeletion.objects.get(slug="acme")
    assert record.finished_at is not None and record.rows_deleted["trace_span_keys"] == 1
    assert purge_deleted_orgs() == 0


# ------------------------------------------------------- the owner deletes it (API, dashboard)

from django.test import Client  # noqa: E402
from django_redis import get_redis_connection  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from backend.tenancy.models import AuditEvent, Membership, Role  # noqa: E402
from backend.tenancy.services import member_add, org_purge, user_get_or_create  # noqa: E402
from tests.helpers.credentials import PASSWORD, bearer  # noqa: E402

URL = "/api/v1/orgs/acme/org"  # a session names its org (a token is its org)


def _with_data(tenants):
    for org in (tenants.org, tenants.other_org):
        load(org, {counter("up", job="mesh", instance=str(i)): [(0, 1.0)] for i in range(7)})


def _admin(tenants):
    admin = user_get_or_create(username="admin2", email="admin2@example.com", password=PASSWORD)
    member_add(org=tenants.org, user=admin, role=Role.ADMIN, actor=tenants.owner)
    return admin


def _session(user) -> APIClient:
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(user)
    return api


def _csrf(api: APIClient) -> dict:
    # As the dashboard's scripts do: the csrftoken cookie, sent back in X-CSRFToken.
    api.get("/settings/members")
    return {"HTTP_X_CSRFTOKEN": api.cookies["csrftoken"].value}


def test_api_owner_deletes_the_org_and_the_purge_runs_in_batches(tenants):
    _with_data(tenants)
    others = rows_of(tenants.other_org.pk)
    api = _session(tenants.owner)

    # CSRF is checked for a session: without the token, refused
    assert api.delete(URL, {"confirm": "acme"}, format="json").status_code == 403
    headers = _csrf(api)
    wrong = api.delete(URL, {"confirm": "acm"}, format="json", **headers)
    assert wrong.status_code == 400 and "acme" in str(wrong.json())
    missing = api.delete(URL, {}, format="json", **headers)
    assert missing.status_code == 400

    queued = get_redis_connection("default").llen("default")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("django.db.transaction.on_commit", lambda fn, **kw: fn())
        done = api.delete(URL, {"confirm": "acme"}, format="json", **headers)
    assert done.status_code == 202, done.content
    assert done.json()["slug"] == "acme" and done.json()["finished_at"] is None
    # the purge is queued at once (beat runs it every minute too)
    assert get_redis_connection("default").llen("default") == queued + 1
    # gone for its members at once
    assert not Membership.objects.unscoped().filter(org=tenants.org).exists()
    assert [o["slug"] for o in api.get("/api/v1/orgs").json()] == []
    assert api.get(URL).status_code == 404
    assert AuditEvent.objects.unscoped().filter(org=tenants.org, action="org.delete").exists()

    pending = rows_of(tenants.org.pk)
    assert pending["metric_series"] == 7 and "tenancy_membership" not in pending
    counts = org_purge(deletion=OrgDeletion.objects.get(slug="acme"), batch_rows=2)
    assert rows_of(tenants.org.pk) == {}
    assert rows_of(tenants.other_org.pk) == others
    for table, n in pending.items():  # every row counted once across the batches of 2
        assert counts[table] == n, (table, {k: v for k, v in counts.items() if v})
    assert not Organization.objects.filter(slug="acme").exists()


def test_api_only_the_owner_deletes(tenants):
    admin = _admin(tenants)
    api = _session(admin)
    refused = api.delete(URL, {"confirm": "acme"}, format="json", **_csrf(api))
    assert refused.status_code == 403
    # a token, even with the admin scope, is not the owner
    token = tenants.token(["admin"])
    by_token = APIClient().delete(URL, {"confirm": "acme"}, format="json", **bearer(token))
    assert by_token.status_code == 403
    # an outsider (owner of another org) cannot name this one
    outsider = _session(tenants.outsider)
    headers = _csrf(outsider)
    for path in ("/api/v1/orgs/acme/org", "/api/v1/org?org=acme"):
        answer = outsider.delete(path, {"confirm": "acme"}, format="json", **headers)
        assert answer.status_code == 404, path
    outsider_token = tenants.outsider_token()
    foreign = APIClient().delete(URL, {"confirm": "acme"}, format="json", **bearer(outsider_token))
    assert foreign.status_code == 404
    assert Membership.objects.unscoped().filter(org=tenants.org).count() == 4
    assert not OrgDeletion.objects.exists()


def test_dashboard_owner_deletes_by_typing_the_slug(tenants):
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenants.owner)
    page = client.get("/settings/members")
    assert b'data-testid="org-delete"' in page.content
    token = client.cookies["csrftoken"].value

    assert client.post("/settings/org/delete", {"confirm": "acme"}).status_code == 403  # no CSRF
    wrong = client.post(
        "/settings/org/delete", {"confirm": "globex", "csrfmiddlewaretoken": token}, follow=True
    )
    assert b"type the organization" in wrong.content
    assert Membership.objects.unscoped().filter(org=tenants.org).exists()

    done = client.post("/settings/org/delete", {"confirm": "acme", "csrfmiddlewaretoken": token})
    assert done.status_code == 302 and done["Location"] == "/"
    assert not Membership.objects.unscoped().filter(org=tenants.org).exists()
    assert OrgDeletion.objects.get(slug="acme").requested_by == tenants.owner
    home = client.get("/")
    assert home.status_code == 200 and b"is deleted" in home.content
    assert client.get("/settings/members").status_code == 404  # no org left for this user


def test_dashboard_others_cannot_delete(tenants):
    admin = _admin(tenants)
    for user in (admin, tenants.member):
        client = Client()
        client.force_login(user)
        assert b'data-testid="org-delete"' not in client.get("/settings/members").content
        assert client.post("/settings/org/delete", {"confirm": "acme"}).status_code == 404
    # the outsider acts on their own org only: naming this one deletes nothing
    client = Client()
    client.force_login(tenants.outsider)
    client.post("/settings/org/delete", {"confirm": "acme"})
    assert not OrgDeletion.objects.exists()
    assert Membership.objects.unscoped().filter(org=tenants.org).count() == 4
