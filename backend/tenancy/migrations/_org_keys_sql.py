"""The SQL of the ``*_primary_keys_lead_with_org`` migrations (tenancy 0013, metrics 0007,
meshconfig 0003, rules 0003, tracing 0010), shared by them.

Frozen: migrations that already ran import this module, so it must never change what it
emits. A later change of keys gets its own functions (or its own module) instead. The leading
underscore keeps Django's migration loader from taking this module for a migration."""


def primary_key_sql(table):
    """(forward, reverse): the primary key (id) becomes (org_id, id); a plain index on id keeps
    Django's by-primary-key statements (save, delete, refresh_from_db) index-backed."""
    forward = f"""
DO $$ BEGIN
    EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', (
        SELECT conname FROM pg_constraint
        WHERE conrelid = '{table}'::regclass AND contype = 'p'));
END $$;
ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (org_id, id);
CREATE INDEX {table}_id_lookup ON {table} (id);
"""
    reverse = f"""
ALTER TABLE {table} DROP CONSTRAINT {table}_pkey;
DROP INDEX {table}_id_lookup;
ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id);
"""
    return forward, reverse


def foreign_key_sql(table, column, target):
    """(forward, reverse): the foreign key carries the org, (org_id, column) → target
    (org_id, id), deferred like Django's own; the Django field has db_constraint=False."""
    name = f"{table}_{column}_org_fk"
    forward = (
        f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY (org_id, {column})"
        f" REFERENCES {target} (org_id, id) DEFERRABLE INITIALLY DEFERRED;"
    )
    return forward, f"ALTER TABLE {table} DROP CONSTRAINT {name};"


def one_to_one_sql(table, column):
    """(forward, reverse): a one-to-one column's UNIQUE (column) becomes UNIQUE (org_id,
    column), the same rows since the composite foreign key ties the row's org to its target's;
    a plain index on column keeps the reverse look-up (``cluster.status``) index-backed."""
    forward = f"""
DO $$ BEGIN
    EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', (
        SELECT conname FROM pg_constraint
        WHERE conrelid = '{table}'::regclass AND contype = 'u'
          AND conkey = ARRAY[(SELECT attnum FROM pg_attribute
                              WHERE attrelid = '{table}'::regclass AND attname = '{column}')]));
END $$;
ALTER TABLE {table} ADD CONSTRAINT {table}_org_{column}_uniq UNIQUE (org_id, {column});
CREATE INDEX {table}_{column}_lookup ON {table} ({column});
"""
    reverse = f"""
ALTER TABLE {table} DROP CONSTRAINT {table}_org_{column}_uniq;
DROP INDEX {table}_{column}_lookup;
ALTER TABLE {table} ADD CONSTRAINT {table}_{column}_key UNIQUE ({column});
"""
    return forward, reverse
