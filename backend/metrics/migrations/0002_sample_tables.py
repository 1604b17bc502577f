from django.db import migrations

# Samples bypass the ORM: the write path COPYs arrays and the read path decodes them with numpy.
# bytea columns hold already-compact data, so STORAGE EXTERNAL skips PostgreSQL's own pglz pass.
FORWARD = """
-- Series arrive in bursts; the GIN pending list (fastupdate) would leave the postings index
-- about ten times larger than a rebuilt one. Direct insertion keeps it compact.
ALTER INDEX series_label_ids_gin SET (fastupdate = off);

CREATE TABLE metric_batches (
    id          bigserial PRIMARY KEY,
    org_id      bigint      NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    n_samples   integer     NOT NULL,
    series_ids  bytea       NOT NULL,
    timestamps  bytea       NOT NULL,
    "values"    bytea       NOT NULL
);
CREATE INDEX metric_batches_org_id ON metric_batches (org_id, id);
ALTER TABLE metric_batches ALTER COLUMN series_ids SET STORAGE EXTERNAL,
    ALTER COLUMN timestamps SET STORAGE EXTERNAL, ALTER COLUMN "values" SET STORAGE EXTERNAL;

CREATE TABLE metric_blocks (
    id           bigserial,
    org_id       bigint      NOT NULL,
    metric_name  text        NOT NULL,
    window_start bigint      NOT NULL,
    min_ts       bigint      NOT NULL,
    max_ts       bigint      NOT NULL,
    n_series     integer     NOT NULL,
    n_samples    integer     NOT NULL,
    value_mode   smallint    NOT NULL,
    series       bytea       NOT NULL,
    timestamps   bytea       NOT NULL,
    "values"     bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, id)
) PARTITION BY RANGE (window_start);
CREATE INDEX metric_blocks_lookup ON metric_blocks (org_id, metric_name, window_start);
ALTER TABLE metric_blocks ALTER COLUMN series SET STORAGE EXTERNAL,
    ALTER COLUMN timestamps SET STORAGE EXTERNAL, ALTER COLUMN "values" SET STORAGE EXTERNAL;
"""

BACKWARD = "DROP TABLE metric_blocks; DROP TABLE metric_batches;"


class Migration(migrations.Migration):
    dependencies = [("metrics", "0001_initial"), ("tenancy", "0002_org_limits")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
