from django.db import migrations

FORWARD = """
-- The ingest outbox: one row per accepted request, the spans already shaped as table rows
-- (zstd'ed JSON), so the worker's only job is COPY + de-duplication.
CREATE TABLE trace_batches (
    id          bigserial PRIMARY KEY,
    org_id      bigint      NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    n_spans     integer     NOT NULL,
    min_start_ns bigint     NOT NULL,
    max_start_ns bigint     NOT NULL,
    payload     bytea       NOT NULL
);
CREATE INDEX trace_batches_org_id ON trace_batches (org_id, id);
ALTER TABLE trace_batches ALTER COLUMN payload SET STORAGE EXTERNAL;

CREATE TABLE trace_spans (
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
    status_message text,
    resource_id    integer  NOT NULL,
    scope          text,
    attributes     jsonb,
    events         jsonb,
    links          jsonb,
    flags          integer  NOT NULL DEFAULT 0,
    trace_state    text
) PARTITION BY RANGE (start_ns);
-- One row per (org, trace, span, kind): a retried export stores nothing twice, while a
-- Zipkin client and server span sharing one span id (B3 single-span) are both kept. The
-- index also serves trace-by-id look-ups.
CREATE UNIQUE INDEX trace_spans_identity ON trace_spans (org_id, trace_id, span_id, kind, start_ns);
CREATE INDEX trace_spans_service_time ON trace_spans (org_id, service_id, start_ns);
CREATE INDEX trace_spans_operation_time ON trace_spans (org_id, operation_id, start_ns);
"""

BACKWARD = "DROP TABLE trace_spans; DROP TABLE trace_batches;"


class Migration(migrations.Migration):
    dependencies = [("tracing", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
