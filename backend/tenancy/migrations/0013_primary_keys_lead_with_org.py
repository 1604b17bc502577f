"""Every tenant table's primary key leads with the org column: (org_id, id) instead of id, so
the tables can be distributed by org_id on Citus and co-located (docs/scaling.md). Django's
model state keeps id as the primary key (a ForeignKey cannot target a CompositePrimaryKey in
Django 5.2); tests/test_tenant_keys.py reads the real keys from the catalog."""

from django.db import migrations

from backend.tenancy.migrations._org_keys_sql import primary_key_sql


# tenancy_apitoken stays a reference table (its id key, its secret's unique index); (org_id, id)
# is made unique too, so that mesh_clusters.agent_token can carry its org to it.
TOKEN_FORWARD = (
    "ALTER TABLE tenancy_apitoken ADD CONSTRAINT tenancy_apitoken_org_id_uniq UNIQUE (org_id, id);"
)
TOKEN_REVERSE = "ALTER TABLE tenancy_apitoken DROP CONSTRAINT tenancy_apitoken_org_id_uniq;"


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0012_orglimits_promote_otel_scope_metadata")]

    operations = [
        migrations.RunSQL(*primary_key_sql("tenancy_auditevent")),
        migrations.RunSQL(TOKEN_FORWARD, TOKEN_REVERSE),
    ]
