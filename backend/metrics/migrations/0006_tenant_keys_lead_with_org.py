"""The raw tables' primary keys lead with org_id (tests/test_tenant_keys.py, docs/scaling.md):
``metric_blocks`` (partitioned by ``window_start``, which PostgreSQL requires in the key)
becomes (org_id, window_start, id); the outbox ``metric_batches`` becomes (org_id, id), which
also replaces its (org_id, id) index. Every statement that finds rows of these tables by id
names the org too (the drain, compaction)."""

from django.db import migrations

FORWARD = """
ALTER TABLE metric_blocks DROP CONSTRAINT metric_blocks_pkey;
ALTER TABLE metric_blocks ADD CONSTRAINT metric_blocks_pkey PRIMARY KEY (org_id, window_start, id);
ALTER TABLE metric_batches DROP CONSTRAINT metric_batches_pkey;
ALTER TABLE metric_batches ADD CONSTRAINT metric_batches_pkey PRIMARY KEY (org_id, id);
DROP INDEX metric_batches_org_id;
"""
BACKWARD = """
CREATE INDEX metric_batches_org_id ON metric_batches (org_id, id);
ALTER TABLE metric_batches DROP CONSTRAINT metric_batches_pkey;
ALTER TABLE metric_batches ADD CONSTRAINT metric_batches_pkey PRIMARY KEY (id);
ALTER TABLE metric_blocks DROP CONSTRAINT metric_blocks_pkey;
ALTER TABLE metric_blocks ADD CONSTRAINT metric_blocks_pkey PRIMARY KEY (window_start, id);
"""


class Migration(migrations.Migration):
    dependencies = [("metrics", "0005_metricexemplar")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
