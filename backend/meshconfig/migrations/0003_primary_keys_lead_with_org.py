"""Every tenant table's primary key leads with the org column: (org_id, id) instead of id, so
the tables can be distributed by org_id on Citus and co-located (docs/scaling.md). Django's
model state keeps id as the primary key (a ForeignKey cannot target a CompositePrimaryKey in
Django 5.2); tests/test_tenant_keys.py reads the real keys from the catalog."""

import django.db.models.deletion
from django.db import migrations, models

# --- SQL of this migration (frozen here: a migration must not import code that changes later)


def primary_key_sql(table):
    """(forward, reverse): the primary key (id) becomes (org_id, id); a plain index on id keeps
    Django's by-primary-key statements (save, delete, refresh_from_db) index-backed."""
    forward = f"""
DO $$ BEGIN
    EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', (
        SELECT conname FROM pg_constraint
        WHERE conrelid = '{table}'::regclass AND contype = 'p'));
END $$;
ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (org_id, id);
CREATE INDEX {table}_id_lookup ON {table} (id);
"""
    reverse = f"""
ALTER TABLE {table} DROP CONSTRAINT {table}_pkey;
DROP INDEX {table}_id_lookup;
ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id);
"""
    return forward, reverse


def foreign_key_sql(table, column, target):
    """(forward, reverse): the foreign key carries the org, (org_id, column) → target
    (org_id, id), deferred like Django's own; the Django field has db_constraint=False."""
    name = f"{table}_{column}_org_fk"
    forward = (
        f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY (org_id, {column})"
        f" REFERENCES {target} (org_id, id) DEFERRABLE INITIALLY DEFERRED;"
    )
    return forward, f"ALTER TABLE {table} DROP CONSTRAINT {name};"


def one_to_one_sql(table, column):
    """(forward, reverse): a one-to-one column's UNIQUE (column) becomes UNIQUE (org_id,
    column), the same rows since the composite foreign key ties the row's org to its target's;
    a plain index on column keeps the reverse look-up (``cluster.status``) index-backed."""
    forward = f"""
DO $$ BEGIN
    EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', (
        SELECT conname FROM pg_constraint
        WHERE conrelid = '{table}'::regclass AND contype = 'u'
          AND conkey = ARRAY[(SELECT attnum FROM pg_attribute
                              WHERE attrelid = '{table}'::regclass AND attname = '{column}')]));
END $$;
ALTER TABLE {table} ADD CONSTRAINT {table}_org_{column}_uniq UNIQUE (org_id, {column});
CREATE INDEX {table}_{column}_lookup ON {table} ({column});
"""
    reverse = f"""
ALTER TABLE {table} DROP CONSTRAINT {table}_org_{column}_uniq;
DROP INDEX {table}_{column}_lookup;
ALTER TABLE {table} ADD CONSTRAINT {table}_{column}_key UNIQUE ({column});
"""
    return forward, reverse


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
