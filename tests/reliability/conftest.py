"""The victim org's data for the isolation walk and the fuzzer: every kind of thing a tenant
owns, each carrying the marker ``victimmark`` so that a leak shows in any answer."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection

from backend.meshconfig import services as mesh_services
from backend.pipeline.drain import org_drain
from backend.rules import services as rule_services
from backend.rules.rulefile import group_parse
from backend.tenancy.models import Membership, Role, Scope
from backend.tenancy.services import invitation_create, member_add, token_create, user_get_or_create
from tests.helpers.credentials import PASSWORD
from tests.helpers.otlp import TRACE, otlp_request, post_otlp, span
from tests.helpers.trace_queries import NOW
from tests.metrics.samples import counter, load
from tests.reliability.urlmap import Victim

MARKER = "victimmark"


def _virtual_service(name: str) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "hosts": [f"{name}.shop.svc.cluster.local"],
            "http": [{"route": [{"destination": {"host": f"{name}.shop.svc.cluster.local"}}]}],
        },
    }


@pytest.fixture
def victim(tenants, client) -> Victim:
    org = tenants.org
    user = user_get_or_create(
        username=f"{MARKER}-user", email=f"{MARKER}-user@example.com", password=PASSWORD
    )
    membership = member_add(org=org, user=user, role=Role.MEMBER, actor=tenants.owner)
    token, _ = token_create(org=org, name=f"{MARKER}-token", scopes=[Scope.ADMIN])
    invitation, _ = invitation_create(
        org=org, email=f"{MARKER}-invitee@example.com", role=Role.MEMBER
    )
    load(
        org,
        {
            counter(f"{MARKER}_requests_total", app="reviews", secret=f"{MARKER}-value"): [
                (i * 15, float(i)) for i in range(41)
            ]
        },
    )
    writer = token_create(org=org, name="writer", scopes=[Scope.TRACES_WRITE])[1]
    request = otlp_request(
        [
            span("eee19b7ec3c1b174", name=f"{MARKER}-op", start=NOW, secret=f"{MARKER}-attr"),
            span("eee19b7ec3c1b175", "eee19b7ec3c1b174", name=f"{MARKER}-child", start=NOW),
        ],
        service="reviews",
    )
    assert post_otlp(client, request.SerializeToString(), writer).status_code == 200
    org_drain(signal="traces", org_id=org.pk)
    group = group_parse(f"name: {MARKER}-group\nrules:\n- record: {MARKER}:rule\n  expr: up\n")
    rule_services.group_save(org_id=org.pk, namespace=f"{MARKER}-ns", group=group)
    rule_services.alerting_targets_update(
        org_id=org.pk, targets={"alertmanagers": [{"url": f"http://{MARKER}.example"}]}
    )
    cluster, _ = mesh_services.cluster_create(org=org, name=f"{MARKER}-prod")
    revision = mesh_services.revision_publish(
        org=org, resources=[_virtual_service(f"{MARKER}-vs")], force=True
    ).revision
    mesh_services.rollout_create(org=org, revision=revision.number, clusters=[cluster.name])
    assert Membership.objects.for_org(org).filter(pk=membership.pk).exists()
    return Victim(
        slug=org.slug,
        member_pk=membership.pk,
        token_pk=token.pk,
        invitation_pk=invitation.pk,
        cluster=cluster.name,
        revision=revision.number,
        trace_id=TRACE.hex(),
        namespace=f"{MARKER}-ns",
        group=f"{MARKER}-group",
        workload=("deployment", "shop", "reviews"),
        label="secret",
    )


def org_tables() -> list[str]:
    """Every table with an org_id column (models and the raw stores alike)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.table_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.column_name = 'org_id' AND c.table_schema = current_schema() "
            "AND t.table_type = 'BASE TABLE' ORDER BY 1"
        )
        return [row[0] for row in cur.fetchall()]


def org_snapshot(org_id: int) -> dict[str, tuple[int, str]]:
    """Per table: the org's row count and a digest of its rows (any change shows)."""
    snapshot = {}
    with connection.cursor() as cur:
        for table in org_tables():
            cur.execute(
                f"SELECT count(*), coalesce(string_agg(t::text, ',' ORDER BY t::text), '') "
                f'FROM "{table}" t WHERE org_id = %s',
                [org_id],
            )
            count, rows = cur.fetchone()
            snapshot[table] = (count, hashlib.sha256(rows.encode()).hexdigest())
    return snapshot
