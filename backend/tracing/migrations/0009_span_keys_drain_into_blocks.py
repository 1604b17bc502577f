from django.db import migrations

FORWARD = """
-- The drain now encodes span blocks straight from the outbox. What the rollups (dependencies,
-- service graph, span metrics) and the drain's de-duplication need of recent spans is kept
-- in this thin head: a few fixed-width columns per span, no attributes, pruned once the
-- rollups have counted the spans and the out-of-order window plus a margin has passed.
CREATE TABLE trace_span_keys (
    org_id         bigint   NOT NULL,
    trace_id       bytea    NOT NULL,
    span_id        bytea    NOT NULL,
    parent_span_id bytea,
    service_id     integer  NOT NULL,
    operation_id   integer  NOT NULL,
    kind           smallint NOT NULL,
    start_ns       bigint   NOT NULL,
    duration_ns    bigint   NOT NULL,
    status_code    smallint NOT NULL,
    peer_service   text,
    seq            bigint   NOT NULL
);
CREATE UNIQUE INDEX trace_span_keys_identity
    ON trace_span_keys (org_id, trace_id, span_id, kind, start_ns);
CREATE INDEX trace_span_keys_org_seq ON trace_span_keys (org_id, seq);
CREATE INDEX trace_span_keys_org_start ON trace_span_keys (org_id, start_ns);

-- Per org: keys of spans starting before pruned_before_ns may have been pruned; a drained
-- span that old is looked up in the blocks (trace index) as well.
CREATE TABLE trace_span_horizon (
    org_id           bigint PRIMARY KEY,
    pruned_before_ns bigint NOT NULL
);

-- Existing data: the row head's spans get their keys (same drain rounds), and the spans
-- already in blocks are behind each org's horizon.
INSERT INTO trace_span_keys
SELECT org_id, trace_id, span_id, parent_span_id, service_id, operation_id, kind, start_ns,
       duration_ns, status_code, left(attributes->>'peer.service', 512), seq
FROM trace_spans;
INSERT INTO trace_span_horizon
SELECT org_id, max(max_start_ns) + 1 FROM trace_blocks GROUP BY org_id;
"""

BACKWARD = "DROP TABLE trace_span_horizon; DROP TABLE trace_span_keys;"


class Migration(migrations.Migration):
    dependencies = [("tracing", "0008_tenant_keys_lead_with_org")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
