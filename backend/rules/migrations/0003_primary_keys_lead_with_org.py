"""Every tenant table's primary key leads with the org column: (org_id, id) instead of id, so
the tables can be distributed by org_id on Citus and co-located (docs/scaling.md). Django's
model state keeps id as the primary key (a ForeignKey cannot target a CompositePrimaryKey in
Django 5.2); tests/test_tenant_keys.py reads the real keys from the catalog."""

import django.db.models.deletion
from django.db import migrations, models

from backend.tenancy.migrations._org_keys_sql import foreign_key_sql, primary_key_sql


TABLES = [
    "rule_alerting_config",
    "rule_alerts",
    "rule_delivery_status",
    "rule_groups",
    "rule_notifications",
]


class Migration(migrations.Migration):
    dependencies = [("rules", "0002_tenant_keys_lead_with_org")]

    operations = [
        # Drops the single-column foreign key (which depends on rule_groups' id primary key).
        migrations.AlterField(
            model_name="alertstate",
            name="group",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="alerts",
                to="rules.rulegroup",
            ),
        ),
        *(migrations.RunSQL(*primary_key_sql(table)) for table in TABLES),
        migrations.RunSQL(*foreign_key_sql("rule_alerts", "group_id", "rule_groups")),
    ]
