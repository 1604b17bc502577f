"""Every tenant table's primary key leads with the org column: (org_id, id) instead of id, so
the tables can be distributed by org_id on Citus and co-located (docs/scaling.md). Django's
model state keeps id as the primary key (a ForeignKey cannot target a CompositePrimaryKey in
Django 5.2); tests/test_tenant_keys.py reads the real keys from the catalog."""

import django.db.models.deletion
from django.db import migrations, models

from backend.tenancy.migrations._org_keys_sql import foreign_key_sql, primary_key_sql


TABLES = [
    "trace_dependency_edges",
    "trace_metric_totals",
    "trace_operations",
    "trace_resources",
    "trace_services",
]


class Migration(migrations.Migration):
    dependencies = [("tracing", "0009_span_keys_drain_into_blocks")]

    operations = [
        # Drops the single-column foreign key (which depends on trace_services' id primary key).
        migrations.AlterField(
            model_name="traceoperation",
            name="service",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="operations",
                to="tracing.traceservice",
            ),
        ),
        *(migrations.RunSQL(*primary_key_sql(table)) for table in TABLES),
        migrations.RunSQL(*foreign_key_sql("trace_operations", "service_id", "trace_services")),
    ]
