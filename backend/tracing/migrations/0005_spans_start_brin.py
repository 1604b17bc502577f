from django.db import migrations

# The per-minute rollups (dependencies, span metrics) select spans by start time across orgs:
# a BRIN index on the time-ordered start column serves that at a few pages per partition.
FORWARD = "CREATE INDEX trace_spans_start_brin ON trace_spans USING brin (start_ns);"
BACKWARD = "DROP INDEX trace_spans_start_brin;"


class Migration(migrations.Migration):
    dependencies = [("tracing", "0004_metric_totals")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
