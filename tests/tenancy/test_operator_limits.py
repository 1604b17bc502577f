"""Quotas belong to the operator: ``manage.py set_limits`` and the Django admin change them,
both through the audited service."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from backend.tenancy.models import AuditEvent
from backend.tenancy.selectors import limits_get
from tests.helpers.credentials import bearer

pytestmark = pytest.mark.django_db


def test_set_limits_changes_and_prints_the_resulting_limits(tenants):
    out = StringIO()
    call_command(
        "set_limits",
        "--org",
        "acme",
        "ingestion_rate=50000",
        "query_timeout_seconds=30",
        stdout=out,
    )
    text = out.getvalue()
    assert "ingestion_rate" in text and "50000 (changed)" in text
    assert "query_timeout_seconds" in text and "30 (changed)" in text
    assert "query_max_samples" in text and "50000000\n" in text  # unchanged ones too
    limits = limits_get(org_id=tenants.org.pk)
    assert (limits.ingestion_rate, limits.query_timeout_seconds) == (50_000, 30)
    assert limits_get(org_id=tenants.other_org.pk).ingestion_rate == 10_000
    event = AuditEvent.objects.for_org(tenants.org).get(action="limits.update")
    assert event.details["to"] == {"ingestion_rate": 50_000, "query_timeout_seconds": 30}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "nope", "ingestion_rate=1"], "no organization"),
        (["--org", "acme", "ingestion_rate"], "expected name=value"),
        (["--org", "acme", "no_such_limit=1"], "expected name=value"),
        (["--org", "acme", "ingestion_rate=lots"], "not an integer"),
        (["--org", "acme", "ingestion_rate=-1"], "greater than or equal to 0"),
    ],
)
def test_set_limits_refuses_bad_input(tenants, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("set_limits", *args, stdout=StringIO())
    assert limits_get(org_id=tenants.org.pk).ingestion_rate == 10_000


def test_platform_staff_change_quotas_in_the_django_admin(client, tenants):
    staff = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1")
    client.force_login(staff)
    limits = limits_get(org_id=tenants.org.pk)
    page = client.get(f"/admin/tenancy/orglimits/{limits.pk}/change/")
    assert page.status_code == 200
    form = {
        f.name: getattr(limits, f.name)
        for f in limits._meta.concrete_fields
        if f.name not in ("id", "org", "updated_at")
    }
    form["ingestion_rate"] = 77_000
    response = client.post(f"/admin/tenancy/orglimits/{limits.pk}/change/", form)
    assert response.status_code == 302, response.content[:2000]
    assert limits_get(org_id=tenants.org.pk).ingestion_rate == 77_000
    event = AuditEvent.objects.for_org(tenants.org).get(action="limits.update")
    assert event.details["to"] == {"ingestion_rate": 77_000}
    assert event.actor == staff


def test_org_owners_are_not_platform_staff(client, tenants):
    client.force_login(tenants.owner)
    assert client.get("/admin/tenancy/orglimits/").status_code == 302  # to the admin login


def test_set_limits_takes_a_comma_separated_list_and_tenants_read_it(api, tenants):
    out = StringIO()
    call_command(
        "set_limits",
        "--org",
        "acme",
        "promote_otel_resource_attributes=k8s.pod.name, deployment.environment,",
        stdout=out,
    )
    assert "k8s.pod.name,deployment.environment (changed)" in out.getvalue()
    limits = limits_get(org_id=tenants.org.pk)
    assert limits.promote_otel_resource_attributes == ["k8s.pod.name", "deployment.environment"]
    assert limits_get(org_id=tenants.other_org.pk).promote_otel_resource_attributes == []
    read = api.get("/api/v1/limits", **bearer(tenants.token(["metrics:read"]))).json()
    assert read["promote_otel_resource_attributes"] == ["k8s.pod.name", "deployment.environment"]
    other = api.get("/api/v1/limits", **bearer(tenants.outsider_token())).json()
    assert other["promote_otel_resource_attributes"] == []
    # an org admin cannot change it: it is the operator's
    admin = tenants.token(["admin"])
    change = {"promote_otel_resource_attributes": ["x"]}
    refused = api.patch("/api/v1/limits", change, format="json", **bearer(admin))
    assert refused.status_code == 403
    # "name=" empties the list
    call_command("set_limits", "--org", "acme", "promote_otel_resource_attributes=", stdout=out)
    assert limits_get(org_id=tenants.org.pk).promote_otel_resource_attributes == []


def test_set_limits_refuses_too_many_or_too_long_promoted_attributes(tenants):
    many = ",".join(f"a{i}" for i in range(65))
    with pytest.raises(CommandError, match="no more than 64"):
        call_command(
            "set_limits",
            "--org",
            "acme",
            f"promote_otel_resource_attributes={many}",
            stdout=StringIO(),
        )
    with pytest.raises(CommandError, match="at most 256 characters"):
        call_command(
            "set_limits",
            "--org",
            "acme",
            f"promote_otel_resource_attributes={'x' * 257}",
            stdout=StringIO(),
        )
    assert limits_get(org_id=tenants.org.pk).promote_otel_resource_attributes == []


def test_set_limits_takes_a_switch_as_true_or_false_and_tenants_read_it(api, tenants):
    out = StringIO()
    call_command("set_limits", "--org", "acme", "promote_otel_scope_metadata=true", stdout=out)
    assert "promote_otel_scope_metadata" in out.getvalue() and "true (changed)" in out.getvalue()
    assert limits_get(org_id=tenants.org.pk).promote_otel_scope_metadata is True
    assert limits_get(org_id=tenants.other_org.pk).promote_otel_scope_metadata is False
    read = api.get("/api/v1/limits", **bearer(tenants.token(["metrics:read"]))).json()
    assert read["promote_otel_scope_metadata"] is True
    # an org admin cannot change it: it is the operator's
    change = {"promote_otel_scope_metadata": False}
    refused = api.patch("/api/v1/limits", change, format="json", **bearer(tenants.token(["admin"])))
    assert refused.status_code == 403
    with pytest.raises(CommandError, match="is not true or false"):
        call_command("set_limits", "--org", "acme", "promote_otel_scope_metadata=1", stdout=out)
    call_command("set_limits", "--org", "acme", "promote_otel_scope_metadata=False", stdout=out)
    assert limits_get(org_id=tenants.org.pk).promote_otel_scope_metadata is False
