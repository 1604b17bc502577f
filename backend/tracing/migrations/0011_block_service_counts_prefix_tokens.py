from django.db import migrations

FORWARD = """
-- Block summaries for the trace search page's helpers (issue 17): the spans of each of the
-- block's services (parallel to service_ids), so the busiest-service count reads blocks wholly
-- inside its window from the summary; and the short-id tokens of the block's traces
-- (storage/encoding.py: prefix_tokens), so the "go to trace" box's prefix lookup decodes only
-- the blocks that may hold a match. Not indexed: scanning the tokens of a day's blocks costs
-- tens of milliseconds at millions of spans, a GIN index of them ~20 B/span (issue 14's
-- budget). NULL in blocks written before: readers decode those blocks as before (they age
-- out with their daily partitions).
ALTER TABLE trace_blocks ADD COLUMN service_counts integer[];
ALTER TABLE trace_blocks ADD COLUMN prefix_tokens integer[];
ALTER TABLE trace_blocks ALTER COLUMN prefix_tokens SET STORAGE EXTERNAL;
"""

BACKWARD = """
ALTER TABLE trace_blocks DROP COLUMN prefix_tokens;
ALTER TABLE trace_blocks DROP COLUMN service_counts;
"""


class Migration(migrations.Migration):
    dependencies = [("tracing", "0010_primary_keys_lead_with_org")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
