from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tenancy', '0011_orglimits_promote_otel_resource_attributes'),
    ]

    operations = [
        migrations.AddField(
            model_name='orglimits',
            name='promote_otel_scope_metadata',
            field=models.BooleanField(default=False, help_text='OTLP instrumentation scope (name, version, schema URL, attributes) added as otel_scope_* labels to every series of the scope'),
        ),
    ]
