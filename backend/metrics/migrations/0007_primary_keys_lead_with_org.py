"""Every tenant table's primary key leads with the org column: (org_id, id) instead of id, so
the tables can be distributed by org_id on Citus and co-located (docs/scaling.md). Django's
model state keeps id as the primary key (a ForeignKey cannot target a CompositePrimaryKey in
Django 5.2); tests/test_tenant_keys.py reads the real keys from the catalog."""

from django.db import migrations

from backend.tenancy.migrations._org_keys_sql import primary_key_sql


TABLES = [
    "metric_exemplars",
    "metric_label_pairs",
    "metric_metadata",
    "metric_series",
]


class Migration(migrations.Migration):
    dependencies = [("metrics", "0006_tenant_keys_lead_with_org")]

    operations = [migrations.RunSQL(*primary_key_sql(table)) for table in TABLES]
