import pytest

from backend.tenancy.selectors import limits_get
from tests.helpers.credentials import bearer

pytestmark = pytest.mark.django_db


def test_defaults_are_cortex_like(api, tenants):
    limits = api.get("/api/v1/limits", **bearer(tenants.token(["metrics:write"]))).json()
    assert limits["ingestion_rate"] == 10_000
    assert limits["ingestion_burst_size"] == 200_000
    assert limits["max_global_series_per_user"] == 150_000
    assert limits["max_global_series_per_metric"] == 20_000
    assert limits["max_label_names_per_series"] == 30
    assert limits["max_request_bytes"] == 100 * 1024 * 1024


def test_org_admins_change_retention_within_the_plan_others_cannot(api, tenants):
    admin = tenants.token(["admin"])
    writer = tenants.token(["metrics:write"])
    changed = api.patch("/api/v1/limits", {"retention_days": 60}, format="json", **bearer(admin))
    assert changed.status_code == 200 and changed.json()["retention_days"] == 60
    assert limits_get(org_id=tenants.org.pk).retention_days == 60
    past_plan = api.patch("/api/v1/limits", {"retention_days": 91}, format="json", **bearer(admin))
    assert past_plan.status_code == 400 and "plan" in str(past_plan.json())
    refused = api.patch("/api/v1/limits", {"retention_days": 1}, format="json", **bearer(writer))
    assert refused.status_code == 403
    bad = api.patch("/api/v1/limits", {"retention_days": -5}, format="json", **bearer(admin))
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "field",
    [
        "ingestion_rate",
        "query_max_samples",
        "query_timeout_seconds",
        "max_request_bytes",
        "retention_days_max",
        "query_max_subquery_steps",
    ],
)
def test_org_admins_cannot_raise_the_quotas_that_protect_other_tenants(api, tenants, field):
    admin = tenants.token(["admin"])
    before = getattr(limits_get(org_id=tenants.org.pk), field)
    response = api.patch("/api/v1/limits", {field: 2**31 - 1}, format="json", **bearer(admin))
    assert response.status_code == 403
    assert "platform operator" in response.json()["detail"]
    assert getattr(limits_get(org_id=tenants.org.pk), field) == before
    # a session of the org's owner is an org admin too, not platform staff
    api.force_authenticate(tenants.owner)
    response = api.patch(f"/api/v1/orgs/{tenants.org.slug}/limits", {field: 1}, format="json")
    assert response.status_code == 403


def test_outsider_cannot_read_or_change_acme_limits(api, tenants):
    outsider = tenants.outsider_token()
    assert api.get("/api/v1/orgs/acme/limits", **bearer(outsider)).status_code == 404
    assert (
        api.patch(
            "/api/v1/orgs/acme/limits", {"ingestion_rate": 1}, format="json", **bearer(outsider)
        ).status_code
        == 404
    )
    api.patch("/api/v1/limits", {"ingestion_rate": 7}, format="json", **bearer(outsider))
    assert limits_get(org_id=tenants.org.pk).ingestion_rate == 10_000
