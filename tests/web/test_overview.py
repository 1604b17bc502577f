"""The Overview page: every figure states its window, the figures refresh from a JSON endpoint
(same session, same org as the page, another org is 404), and their reads run under the org's
query timeout (a blocked read answers 503 with the reason instead of hanging)."""

import numpy as np
import pytest
from django.db import connections
from django.urls import reverse

from backend.metrics import services
from backend.metrics.storage.blocks import now_ms
from backend.metrics.storage.catalog import series_resolve
from backend.pipeline.drain import org_drain
from backend.tenancy.rejections import rejections_count
from backend.tenancy.services import limits_update
from web import overview

pytestmark = pytest.mark.django_db
URL = reverse("web:overview-figures")


def _write_series(org, n: int) -> None:
    ids = series_resolve(
        org_id=org.pk,
        label_sets=[(("__name__", "up"), ("job", f"j{i}")) for i in range(n)],
        max_per_user=100,
        max_per_metric=100,
    )
    services.samples_write(
        org_id=org.pk,
        series_ids=np.array(ids),
        timestamps=np.full(n, now_ms()),
        values=np.ones(n),
    )
    org_drain(signal="metrics", org_id=org.pk)


def test_every_figure_states_its_window(client, tenants):
    client.force_login(tenants.owner)
    page = client.get("/")
    html = page.content.decode()
    for figure in page.context["overview"]["figures"]:
        assert figure["window"], figure
        assert f'data-window="{figure["key"]}">{figure["window"]}<' in html
    assert "last 1 h" in html and "since the counters began" in html
    assert 'id="overview-pause"' in html and 'id="overview-updated"' in html
    assert "web/overview.js" in html
    # the script is a file: the CSP runs no inline script
    assert "<script>" not in html


def test_figures_json_follows_the_data(client, tenants):
    client.force_login(tenants.owner)
    first = client.get(URL).json()
    assert first["org"] == "acme"
    assert {f["key"]: f["value"] for f in first["figures"]}["series"] == 0
    # (the figures' read-only transaction ended with the request: writes go on)
    _write_series(tenants.org, 4)
    rejections_count(org_id=tenants.org.pk, signal="spans", reasons={"too_large": 3})
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    data = response.json()
    figures = {f["key"]: f for f in data["figures"]}
    assert figures["series"]["value"] == 4
    assert figures["samples"]["value"] == 4
    assert figures["samples"]["window"] == "last 1 h"
    assert figures["spans"]["window"] == "last 1 h"
    assert data["last_sample_ms"] is not None
    assert data["rejections"] == [
        {"signal": "spans", "reason": "too large", "count": 3, "pct": 100}
    ]
    assert data["counts"] == {"tokens": 0, "members": 3}


def test_an_outsider_sees_nothing_of_another_org(client, tenants):
    _write_series(tenants.org, 2)
    rejections_count(org_id=tenants.org.pk, signal="metrics", reasons={"too_old": 7})
    client.force_login(tenants.outsider)
    assert client.get(URL, {"org": "acme"}).status_code == 404
    own = client.get(URL).json()
    assert own["org"] == "globex"
    assert {f["key"]: f["value"] for f in own["figures"]}["series"] == 0
    assert own["rejections"] == []
    assert client.get(URL, {"org": "globex"}).status_code == 200


def test_anonymous_and_orgless_users_get_no_figures(client, db):
    assert client.get(URL).status_code == 401
    from backend.tenancy.services import user_get_or_create

    client.force_login(user_get_or_create(username="loner", password="x" * 16))
    assert client.get(URL).status_code == 404


def test_a_blocked_read_is_cancelled_at_the_orgs_query_timeout(client, tenants):
    limits_update(org=tenants.org, changes={"query_timeout_seconds": 1})
    client.force_login(tenants.owner)
    other = connections.create_connection("default")
    try:
        other.set_autocommit(False)
        with other.cursor() as cur:  # another session holds the catalog table
            cur.execute("LOCK TABLE metric_series IN ACCESS EXCLUSIVE MODE")
        response = client.get(URL)
        assert response.status_code == 503
        assert "query timeout (1 s)" in response.json()["detail"]
        assert response["Retry-After"]
        page = client.get("/")
        assert page.status_code == 200
        assert b"query timeout (1 s)" in page.content
        # the figures' frame stays, without values, for the refresh to fill in
        assert 'data-testid="series-count">—<' in page.content.decode()
    finally:
        other.rollback()
        other.close()
    assert client.get(URL).status_code == 200


def test_the_reads_are_read_only_under_the_timeout(tenants):
    from django.db import connection

    limits_update(org=tenants.org, changes={"query_timeout_seconds": 7})
    seen = {}
    real = overview.ingest_overview

    def probe(**kwargs):
        with connection.cursor() as cur:
            cur.execute("SHOW statement_timeout")
            seen["timeout"] = cur.fetchone()[0]
            cur.execute("SHOW transaction_read_only")
            seen["read_only"] = cur.fetchone()[0]
        return real(**kwargs)

    overview.ingest_overview = probe
    try:
        overview.overview_get(org=tenants.org)
    finally:
        overview.ingest_overview = real
    assert seen == {"timeout": "7s", "read_only": "on"}
