from django.db import migrations

FORWARD = """
-- Each drain round stamps its spans with a number from this sequence: the rollups count the
-- head's spans by (drain round, start time) watermarks, per org (trace_rollup_orgs).
CREATE SEQUENCE trace_drain_seq;
ALTER TABLE trace_spans ADD COLUMN seq bigint NOT NULL DEFAULT 0;
CREATE INDEX trace_spans_org_seq ON trace_spans (org_id, seq);

-- Columnar span blocks (backend/tracing/storage/encoding.py), with their summaries and the
-- trace index (the 64-bit keys of their traces, GIN indexed).
CREATE TABLE trace_blocks (
    id              bigserial,
    org_id          bigint   NOT NULL,
    window_ns       bigint   NOT NULL,
    min_start_ns    bigint   NOT NULL,
    max_start_ns    bigint   NOT NULL,
    n_spans         integer  NOT NULL,
    n_traces        integer  NOT NULL,
    min_duration_ns bigint   NOT NULL,
    max_duration_ns bigint   NOT NULL,
    has_error       boolean  NOT NULL,
    service_ids     integer[] NOT NULL,
    operation_ids   integer[] NOT NULL,
    attribute_keys  text[]   NOT NULL,
    trace_keys      bigint[] NOT NULL,
    payload         bytea    NOT NULL
) PARTITION BY RANGE (window_ns);
ALTER TABLE trace_blocks ALTER COLUMN payload SET STORAGE EXTERNAL;
ALTER TABLE trace_blocks ALTER COLUMN trace_keys SET STORAGE EXTERNAL;
CREATE INDEX trace_blocks_org_time ON trace_blocks (org_id, max_start_ns);
CREATE INDEX trace_blocks_id ON trace_blocks (id);
CREATE INDEX trace_blocks_trace_keys ON trace_blocks USING gin (trace_keys)
    WITH (fastupdate = off);

-- Per org: spans of drain rounds up to counted_seq starting before ready_until_ms are
-- counted by the rollups (dependencies, service graph, span metrics).
CREATE TABLE trace_rollup_orgs (
    org_id         bigint PRIMARY KEY,
    counted_seq    bigint NOT NULL,
    ready_until_ms bigint NOT NULL
);
"""

BACKWARD = """
DROP TABLE trace_rollup_orgs;
DROP TABLE trace_blocks;
DROP INDEX trace_spans_org_seq;
ALTER TABLE trace_spans DROP COLUMN seq;
DROP SEQUENCE trace_drain_seq;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("tracing", "0006_edge_latency_histograms"),
        ("tenancy", "0005_traces_out_of_order_window"),
    ]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
