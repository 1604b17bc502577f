"""Every tenant table's primary key leads with the org column: (org_id, id) instead of id, so
the tables can be distributed by org_id on Citus and co-located (docs/scaling.md). Django's
model state keeps id as the primary key (a ForeignKey cannot target a CompositePrimaryKey in
Django 5.2); tests/test_tenant_keys.py reads the real keys from the catalog."""

import django.db.models.deletion
from django.db import migrations, models

from backend.tenancy.migrations._org_keys_sql import (
    foreign_key_sql,
    one_to_one_sql,
    primary_key_sql,
)


TABLES = [
    "mesh_agent_reports",
    "mesh_cluster_status",
    "mesh_clusters",
    "mesh_revisions",
    "mesh_telemetry_settings",
]

# (table, column, target): every foreign key between the app's tenant tables, and the cluster's
# agent token (tenancy_apitoken is a reference table on Citus, keyed (org_id, id) too).
FOREIGN_KEYS = [
    ("mesh_revisions", "parent_id", "mesh_revisions"),
    ("mesh_cluster_status", "cluster_id", "mesh_clusters"),
    ("mesh_cluster_status", "desired_id", "mesh_revisions"),
    ("mesh_cluster_status", "applied_id", "mesh_revisions"),
    ("mesh_cluster_status", "attempted_id", "mesh_revisions"),
    ("mesh_agent_reports", "cluster_id", "mesh_clusters"),
    ("mesh_agent_reports", "revision_id", "mesh_revisions"),
    ("mesh_clusters", "agent_token_id", "tenancy_apitoken"),
]


def _revision(name, on_delete):
    return migrations.AlterField(
        model_name="clusterstatus" if name != "parent" else "revision",
        name=name,
        field=models.ForeignKey(
            blank=True,
            db_constraint=False,
            null=True,
            on_delete=on_delete,
            related_name="+",
            to="meshconfig.revision",
        ),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("meshconfig", "0002_tenant_keys_lead_with_org"),
        ("tenancy", "0013_primary_keys_lead_with_org"),
    ]

    operations = [
        # Drop the single-column foreign keys (which depend on the id primary keys).
        migrations.AlterField(
            model_name="agentreport",
            name="cluster",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="reports",
                to="meshconfig.cluster",
            ),
        ),
        migrations.AlterField(
            model_name="agentreport",
            name="revision",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="meshconfig.revision",
            ),
        ),
        migrations.AlterField(
            model_name="cluster",
            name="agent_token",
            field=models.OneToOneField(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="mesh_cluster",
                to="tenancy.apitoken",
            ),
        ),
        _revision("applied", django.db.models.deletion.PROTECT),
        _revision("attempted", django.db.models.deletion.PROTECT),
        migrations.AlterField(
            model_name="clusterstatus",
            name="cluster",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="status",
                to="meshconfig.cluster",
            ),
        ),
        _revision("desired", django.db.models.deletion.PROTECT),
        _revision("parent", django.db.models.deletion.PROTECT),
        *(migrations.RunSQL(*primary_key_sql(table)) for table in TABLES),
        *(migrations.RunSQL(*foreign_key_sql(*fk)) for fk in FOREIGN_KEYS),
        # The one-to-one columns: unique with the org in front.
        migrations.RunSQL(*one_to_one_sql("mesh_cluster_status", "cluster_id")),
        migrations.RunSQL(*one_to_one_sql("mesh_clusters", "agent_token_id")),
    ]
