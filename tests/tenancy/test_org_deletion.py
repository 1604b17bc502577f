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
