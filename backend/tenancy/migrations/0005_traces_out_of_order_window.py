from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0004_query_limits")]

    operations = [
        migrations.AddField(
            model_name="orglimits",
            name="traces_out_of_order_window_seconds",
            field=models.PositiveIntegerField(
                default=600,
                help_text="spans arriving up to this long after their start are still counted "
                "in the service graph, dependencies and span metrics",
            ),
        ),
    ]
