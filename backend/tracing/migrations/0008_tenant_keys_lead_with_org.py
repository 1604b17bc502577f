"""The outbox ``trace_batches``' primary key leads with org_id: (org_id, id), which also
replaces its (org_id, id) index (tests/test_tenant_keys.py, docs/scaling.md). The drain names
the org in every statement on it."""

from django.db import migrations

FORWARD = """
ALTER TABLE trace_batches DROP CONSTRAINT trace_batches_pkey;
ALTER TABLE trace_batches ADD CONSTRAINT trace_batches_pkey PRIMARY KEY (org_id, id);
DROP INDEX trace_batches_org_id;
"""
BACKWARD = """
CREATE INDEX trace_batches_org_id ON trace_batches (org_id, id);
ALTER TABLE trace_batches DROP CONSTRAINT trace_batches_pkey;
ALTER TABLE trace_batches ADD CONSTRAINT trace_batches_pkey PRIMARY KEY (id);
"""


class Migration(migrations.Migration):
    dependencies = [("tracing", "0007_span_blocks")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
