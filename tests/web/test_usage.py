"""The usage & limits page: figures against limits, refusals, limits edited by admins only,
and nothing of another org."""

import time

import pytest
from django_redis import get_redis_connection

from backend.tenancy.rejections import rejections_count, rejections_get, rejections_recent
from backend.tenancy.selectors import limits_get
from tests.metrics.samples import counter, load

pytestmark = pytest.mark.django_db


@pytest.fixture
def usage(tenants):
    load(
        tenants.org,
        {counter("http_requests_total", pod=f"web-{i}"): [(0, 1.0)] for i in range(5)}
        | {counter("up", job="web"): [(0, 1.0)]},
    )
    load(tenants.other_org, {counter("globex_secret_total", vault="main"): [(0, 1.0)]})
    return tenants


def test_the_page_needs_a_login(client, db):
    assert client.get("/settings/usage")["Location"].startswith("/login/")


def test_usage_against_limits(client, usage):
    rejections_count(org_id=usage.org.pk, signal="metrics", reasons={"per_metric_series_limit": 7})
    client.force_login(usage.viewer)
    html = client.get("/settings/usage").content.decode()
    assert '<span class="stat-value" data-testid="usage-series">6</span>' in html
    assert "of 150,000 allowed" in html
    assert 'data-metric="http_requests_total">http_requests_total</button>' in html
    assert html.index("http_requests_total</button>") < html.index('data-metric="up"')
    assert "per metric series limit" in html and ">7<" in html
    assert "globex_secret_total" not in html
    assert 'data-api="/prometheus/api/v1/cardinality/"' in html
    # A viewer reads the limits but has no form.
    assert "Only owners and admins change retention." in html
    assert 'name="retention_days"' not in html
    assert client.post("/settings/usage", {"retention_days": "1"}).status_code == 404
    assert limits_get(org_id=usage.org.pk).retention_days == 30


def test_an_owner_edits_retention_but_not_the_operators_quotas(client, usage):
    client.force_login(usage.owner)
    html = client.get("/settings/usage").content.decode()
    assert 'name="retention_days" type="number" min="0" value="30"' in html
    assert 'name="max_global_series_per_user"' not in html  # shown, not editable
    assert "150,000" in html and "the platform operator sets them" in html
    saved = client.post("/settings/usage", {"retention_days": "7"}, follow=True)
    assert "Limits saved." in saved.content.decode()
    assert limits_get(org_id=usage.org.pk).retention_days == 7
    assert limits_get(org_id=usage.other_org.pk).retention_days == 30
    # A crafted post of a quota changes nothing: the page only takes retention.
    client.post("/settings/usage", {"max_global_series_per_user": "5000000"})
    assert limits_get(org_id=usage.org.pk).max_global_series_per_user == 150_000
    beyond = client.post("/settings/usage", {"retention_days": "9999"}, follow=True)
    assert "the plan&#x27;s bound" in beyond.content.decode()
    refused = client.post("/settings/usage", {"retention_days": "-3"}, follow=True)
    assert "retention days: a whole number" in refused.content.decode()


def test_an_empty_org_is_told_what_to_do(client, tenants, settings):
    settings.PUBLIC_URL = "https://canopy.example.com"
    client.force_login(tenants.owner)
    html = client.get("/settings/usage").content.decode()
    assert "No series yet" in html and "https://canopy.example.com/api/v1/push" in html
    assert "Nothing refused" in html


def test_the_outsider_sees_its_own_org_only(client, usage):
    client.force_login(usage.outsider)
    html = client.get("/settings/usage").content.decode()
    assert "globex_secret_total" in html and "http_requests_total" not in html
    assert client.get("/settings/usage", {"org": "acme"}).status_code == 404


def test_refusals_over_the_last_day_beside_the_totals(client, usage):
    """The table counts refusals of the last 24 h apart from the running totals: a refusal of
    30 hours ago counts in the total only, and a neighbour's refusals in neither."""
    now = time.time()
    org_id = usage.org.pk
    rejections_count(org_id=org_id, signal="traces", reasons={"trace_too_large": 5})
    old_hour = int(now) // 3600 - 30
    redis = get_redis_connection("default")
    redis.hincrby(f"canopy:rejections-hourly:{org_id}:{old_hour}", "traces:trace_too_large", 100)
    redis.hincrby(f"canopy:rejections:{org_id}", "traces:trace_too_large", 100)
    rejections_count(org_id=usage.other_org.pk, signal="traces", reasons={"trace_too_large": 9})

    assert rejections_recent(org_id=org_id, now=now) == {"traces": {"trace_too_large": 5}}
    assert rejections_get(org_id=org_id) == {"traces": {"trace_too_large": 105}}
    # The bucket of the current hour ages out of the window a day later.
    assert rejections_recent(org_id=org_id, now=now + 26 * 3600) == {}

    client.force_login(usage.viewer)
    html = client.get("/settings/usage").content.decode()
    row = html[html.index("trace too large") :]
    row = row[: row.index("</tr>")]
    assert '<td class="num">5</td><td class="num">105</td>' in row
    assert "Last 24 h" in html
