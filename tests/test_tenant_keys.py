"""Every tenant table's primary key and unique indexes lead with the org column, so the table can
be distributed on Citus by ``org_id`` and co-located with every other tenant table
(docs/scaling.md). Citus refuses a distributed table whose primary key or unique constraint does
not contain the distribution column; leading with it is the stricter form this project asks
for, because it also keeps each tenant's index entries together.

Two sources are checked, because neither covers the other:
- the Django models of the project's apps (``backend.*``): primary key, ``unique=True`` fields
  (one-to-one included), ``unique_together`` and ``UniqueConstraint``. A model key that
  PostgreSQL holds as (org_id, *key) instead passes: the tenant models keep Django's ``id``
  primary key and their one-to-one fields (a ForeignKey cannot target a CompositePrimaryKey in
  Django 5.2) while the migrations ``*_primary_keys_lead_with_org`` made the database's keys
  (org_id, id) and (org_id, column);
- PostgreSQL's catalog after every migration ran, which also holds the raw tables that
  migrations create with ``RunSQL`` (``metric_blocks``, ``trace_spans``, the outboxes, …):
  every ordinary or partitioned table of the ``public`` schema, its primary key and every
  unique index (unique constraints are backed by one).

Foreign keys are checked too: one between two tenant tables must carry the org
((org_id, x_id) → (org_id, id)), so both rows live on the same node; one to a reference
table (``REFERENCE_TABLES``) need not.

A table is a tenant table when it has an ``org_id`` column. Every other table of the schema must
be named in ``GLOBAL_TABLES`` (with why it is global), so a new tenant table cannot escape the
check by storing its org under another name or reaching it through a parent only.

What does not pass is listed in ``ALLOWED`` with the reason: only the reference tables' own
keys are left (docs/scaling.md, "What was changed").
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, models, transaction
from django.test.utils import isolate_apps

from backend.meshconfig.models import Cluster, ClusterStatus
from backend.tenancy.models import Organization
from backend.tracing.models import TraceOperation, TraceService

ORG_COLUMN = "org_id"
EXPRESSION = "<expression>"

# Tables without an org column that are global on purpose. On Citus they stay local tables on
# the coordinator, or become reference tables (copied to every node) where distributed tables
# join them.
GLOBAL_TABLE_PREFIXES = (
    "auth_",  # Django's users, groups, permissions: a user may belong to several orgs
    "django_",  # sessions, content types, admin log, migrations: the framework's own
    "axes_",  # django-axes' login lockouts: by username and address, before any org is known
)
GLOBAL_TABLES = {
    # The tenants themselves: the key everything else is distributed by. A reference table.
    "tenancy_organization": "the organizations (the tenants) themselves",
    # Kept after the org and its rows are gone: an operator's record, keyed by the old id.
    "tenancy_orgdeletion": "operator audit of deleted orgs (the org no longer exists)",
    # One row per beat job (watermarks of the dependency rollups), not per org.
    "trace_rollup_state": "global job state of the rollup scheduler",
}

# Known exceptions: (table, key columns) → why, and what Citus needs.
ALLOWED: dict[tuple[str, tuple[str, ...]], str] = {
    # Small, written rarely, read on every request: reference tables on Citus (copied to every
    # node), which keep their own keys. Tokens and invitations are found by their secret before
    # the org is known; a user's memberships are listed across orgs.
    **{
        (table, ("id",)): "reference table on Citus: keeps its id primary key"
        for table in (
            "tenancy_apitoken",
            "tenancy_invitation",
            "tenancy_membership",
            "tenancy_orglimits",
        )
    },
    # A token or invitation is found by its secret before the org is known (access.py), so the
    # look-up is global by nature: as reference tables they keep this global unique index.
    ("tenancy_apitoken", ("secret_hash",)): (
        "looked up by secret before the org is known: a reference table on Citus"
    ),
    ("tenancy_invitation", ("secret_hash",)): (
        "looked up by secret before the org is known: a reference table on Citus"
    ),
}


def _is_global(table: str) -> bool:
    return table in GLOBAL_TABLES or table.startswith(GLOBAL_TABLE_PREFIXES)


# ------------------------------------------------------------------------------- the checkers


def model_unique_keys(model: type[models.Model]) -> list[tuple[str, ...]]:
    """The column lists a model declares unique: its primary key, unique fields, unique_together
    and UniqueConstraints (an expression counts as EXPRESSION)."""
    meta = model._meta
    column = {f.name: f.column for f in meta.concrete_fields}
    keys: list[tuple[str, ...]] = [tuple(f.column for f in meta.pk_fields)]
    keys += [(f.column,) for f in meta.concrete_fields if f.unique and not f.primary_key]
    keys += [tuple(column[name] for name in names) for names in meta.unique_together]
    for constraint in meta.constraints:
        if isinstance(constraint, models.UniqueConstraint):
            if constraint.fields:
                keys.append(tuple(column[name] for name in constraint.fields))
            else:
                keys.append((EXPRESSION,))
    return keys


def model_violations(model_list, db_keys=None) -> set[tuple[str, tuple[str, ...]]]:
    """(table, key) of every tenant model's unique key that does not lead with org_id; and
    (table, ()) for a model without org_id whose table is not declared global.

    ``db_keys`` (``catalog_keys``), when given, holds the database's real keys: a model key
    that the database enforces as (org_id, *key) instead passes. That is how the tables that
    other tables point to keep Django's ``id`` primary key (a ForeignKey cannot target a
    CompositePrimaryKey in Django 5.2) while PostgreSQL holds PRIMARY KEY (org_id, id), and a
    one-to-one column UNIQUE (org_id, column) (the migrations *_primary_keys_lead_with_org)."""
    found = set()
    for model in model_list:
        meta = model._meta
        if not meta.managed or meta.proxy:
            continue
        table = meta.db_table
        if ORG_COLUMN not in {f.column for f in meta.concrete_fields}:
            if not _is_global(table):
                found.add((table, ()))
            continue
        held = (db_keys or {}).get(table, set())
        for key in model_unique_keys(model):
            if key[0] == ORG_COLUMN:
                continue
            if (ORG_COLUMN, *key) in held and key not in held:
                continue
            found.add((table, key))
    return found


# Tables (ordinary or partitioned, not partitions: they inherit their parent's indexes) of the
# public schema; for each, whether it has org_id, and its PK / unique indexes' key columns.
_CATALOG_SQL = """
SELECT c.relname,
       EXISTS (SELECT 1 FROM pg_attribute a
               WHERE a.attrelid = c.oid AND a.attname = %s AND NOT a.attisdropped),
       i.relname,
       ARRAY(SELECT coalesce(a.attname, %s)
             FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             WHERE k.n <= ix.indnkeyatts
             ORDER BY k.n)
FROM pg_class c
JOIN pg_namespace ns ON ns.oid = c.relnamespace
LEFT JOIN pg_index ix ON ix.indrelid = c.oid AND (ix.indisunique OR ix.indisprimary)
LEFT JOIN pg_class i ON i.oid = ix.indexrelid
WHERE ns.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY 1, 3
"""


def catalog_violations(cursor) -> set[tuple[str, tuple[str, ...]]]:
    """The same check over what PostgreSQL holds, RunSQL tables included."""
    cursor.execute(_CATALOG_SQL, [ORG_COLUMN, EXPRESSION])
    found = set()
    for table, has_org, index, key in cursor.fetchall():
        if not has_org:
            if not _is_global(table):
                found.add((table, ()))
            continue
        if index is not None and key[0] != ORG_COLUMN:
            found.add((table, tuple(key)))
    return found


def catalog_keys(cursor) -> dict[str, set[tuple[str, ...]]]:
    """table → the key columns of its primary key and unique indexes, as PostgreSQL holds them."""
    cursor.execute(_CATALOG_SQL, [ORG_COLUMN, EXPRESSION])
    keys: dict[str, set[tuple[str, ...]]] = {}
    for table, _has_org, index, key in cursor.fetchall():
        if index is not None:
            keys.setdefault(table, set()).add(tuple(key))
    return keys


# Tables keyed by org that stay whole on every node on Citus (reference tables, ALLOWED above):
# a foreign key to one needs no org column.
REFERENCE_TABLES = {
    "tenancy_apitoken",
    "tenancy_invitation",
    "tenancy_membership",
    "tenancy_orglimits",
}

# Every foreign key between two tables with org_id: its (column → column) pairs.
_FOREIGN_KEYS_SQL = """
SELECT con.conname, src.relname, dst.relname,
       ARRAY(SELECT a.attname || '>' || b.attname
             FROM unnest(con.conkey, con.confkey) AS k(s, d)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.s
             JOIN pg_attribute b ON b.attrelid = con.confrelid AND b.attnum = k.d)
FROM pg_constraint con
JOIN pg_class src ON src.oid = con.conrelid
JOIN pg_class dst ON dst.oid = con.confrelid
JOIN pg_namespace ns ON ns.oid = src.relnamespace
WHERE con.contype = 'f' AND ns.nspname = 'public'
  AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = src.oid AND attname = %s)
  AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = dst.oid AND attname = %s)
ORDER BY 1
"""


def foreign_key_violations(cursor, model_list) -> set[tuple[str, str]]:
    """(table, what) of every foreign key between tenant tables that does not carry the org.

    In the catalog: a constraint from a tenant table to a distributed one (not a reference
    table) must pair org_id with org_id, so both rows sit on the same node. In the models: a
    ForeignKey between such tables declared ``db_constraint=False`` must be held by the
    database as (org_id, column) → (org_id, target's key), which is why it was declared so."""
    cursor.execute(_FOREIGN_KEYS_SQL, [ORG_COLUMN, ORG_COLUMN])
    found = set()
    pairs_of = {}
    for name, table, target, pairs in cursor.fetchall():
        pairs_of.setdefault((table, target), []).append(set(pairs))
        if target not in REFERENCE_TABLES and f"{ORG_COLUMN}>{ORG_COLUMN}" not in pairs:
            found.add((table, name))
    for model in model_list:
        meta = model._meta
        if not meta.managed or meta.proxy:
            continue
        for field in meta.concrete_fields:
            if not field.is_relation or field.db_constraint:
                continue
            target = field.related_model._meta
            if ORG_COLUMN not in {f.column for f in target.concrete_fields}:
                continue  # to a global table (the organization): nothing to carry
            wanted = {f"{ORG_COLUMN}>{ORG_COLUMN}", f"{field.column}>{field.target_field.column}"}
            if wanted not in pairs_of.get((meta.db_table, target.db_table), []):
                found.add((meta.db_table, field.column))
    return found


def _project_models():
    return [
        model
        for config in apps.get_app_configs()
        if config.name.startswith("backend.")
        for model in config.get_models()
    ]


def _unexpected(found):
    return sorted(v for v in found if v not in ALLOWED)


# ---------------------------------------------------------------------------------- the tests


@pytest.mark.django_db
def test_project_models_keys_lead_with_org():
    with connection.cursor() as cursor:
        found = model_violations(_project_models(), catalog_keys(cursor))
    assert _unexpected(found) == [], "tenant keys not led by org_id (docs/scaling.md)"


@pytest.mark.django_db
def test_database_tables_keys_lead_with_org():
    with connection.cursor() as cursor:
        found = catalog_violations(cursor)
    assert _unexpected(found) == [], "tenant keys not led by org_id (docs/scaling.md)"


@pytest.mark.django_db
def test_allow_list_has_no_stale_entries():
    # An entry whose index is gone (fixed, renamed) must leave the list, so it keeps saying
    # exactly what is left to do.
    with connection.cursor() as cursor:
        found = catalog_violations(cursor) | model_violations(
            _project_models(), catalog_keys(cursor)
        )
        cursor.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace"
            " WHERE ns.nspname = 'public' AND c.relkind IN ('r', 'p')"
        )
        tables = {row[0] for row in cursor.fetchall()}
    assert sorted(set(ALLOWED) - found) == []
    assert sorted(set(GLOBAL_TABLES) - tables) == []


@pytest.mark.django_db
def test_foreign_keys_between_tenant_tables_carry_the_org():
    with connection.cursor() as cursor:
        found = foreign_key_violations(cursor, _project_models())
    assert sorted(found) == [], "foreign keys without org_id (docs/scaling.md)"


@pytest.mark.django_db
def test_database_keys_are_the_ones_the_migrations_made():
    # What the model checker accepts in place of Django's keys, read back from the catalog.
    with connection.cursor() as cursor:
        keys = catalog_keys(cursor)
    assert ("org_id", "id") in keys["mesh_clusters"]
    assert ("id",) not in keys["mesh_clusters"]
    assert ("org_id", "cluster_id") in keys["mesh_cluster_status"]
    assert ("cluster_id",) not in keys["mesh_cluster_status"]
    assert ("org_id", "agent_token_id") in keys["mesh_clusters"]
    assert ("id",) in keys["tenancy_apitoken"]  # a reference table keeps its own key


@pytest.mark.django_db
def test_a_row_cannot_point_at_another_orgs_row():
    # What the composite foreign keys add: the database refuses a child in one org pointing at
    # a parent of another (a single-column key to the parent's id accepted it).
    a = Organization.objects.create(slug="keys-a", name="A")
    b = Organization.objects.create(slug="keys-b", name="B")
    service = TraceService.objects.for_org(a).create(org=a, name="checkout")
    cluster = Cluster.objects.for_org(a).create(org=a, name="east")
    TraceOperation.objects.for_org(a).create(org=a, service=service, name="GET /", kind=2)
    for make in (
        lambda: TraceOperation.objects.for_org(b).create(org=b, service=service, name="x", kind=2),
        lambda: ClusterStatus.objects.for_org(b).create(org=b, cluster=cluster),
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # not at the test's end
            make()


@pytest.mark.django_db
def test_foreign_key_checker_flags_a_key_without_the_org():
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE probe_parent (id bigint NOT NULL UNIQUE, org_id bigint NOT NULL,"
            " PRIMARY KEY (org_id, id))"
        )
        cursor.execute(
            "CREATE TABLE probe_kid (id bigint, org_id bigint NOT NULL, parent_id bigint,"
            " CONSTRAINT probe_kid_good FOREIGN KEY (org_id, parent_id)"
            "   REFERENCES probe_parent (org_id, id),"
            " CONSTRAINT probe_kid_bad FOREIGN KEY (parent_id) REFERENCES probe_parent (id))"
        )
        flagged = foreign_key_violations(cursor, [])
    assert {v for v in flagged if v[0].startswith("probe_")} == {("probe_kid", "probe_kid_bad")}


@pytest.mark.django_db
@isolate_apps("backend.tracing")
def test_foreign_key_checker_flags_an_unconstrained_model_key():
    # db_constraint=False between tenant models with no composite key in the database
    class Parent(models.Model):  # noqa: DJ008 (a probe, never shown)
        org = models.ForeignKey(Organization, on_delete=models.CASCADE)

        class Meta:
            app_label = "tracing"
            db_table = "probe_fk_parent"

    class Kid(models.Model):  # noqa: DJ008 (a probe, never shown)
        org = models.ForeignKey(Organization, on_delete=models.CASCADE, db_constraint=False)
        parent = models.ForeignKey(Parent, on_delete=models.CASCADE, db_constraint=False)

        class Meta:
            app_label = "tracing"
            db_table = "probe_fk_kid"

    with connection.cursor() as cursor:
        assert foreign_key_violations(cursor, [Parent, Kid]) == {("probe_fk_kid", "parent_id")}


@pytest.mark.django_db
def test_catalog_checker_flags_a_new_raw_tenant_table():
    # Created inside the test's transaction, rolled back after it.
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE probe_tenant_rows (id bigserial, org_id bigint NOT NULL,"
            " name text NOT NULL, PRIMARY KEY (org_id, id))"
        )
        cursor.execute("CREATE UNIQUE INDEX probe_good ON probe_tenant_rows (org_id, name)")
        assert {v for v in catalog_violations(cursor) if v[0].startswith("probe_")} == set()

        cursor.execute("CREATE UNIQUE INDEX probe_bad ON probe_tenant_rows (name, org_id)")
        cursor.execute("CREATE UNIQUE INDEX probe_expr ON probe_tenant_rows (lower(name))")
        cursor.execute(
            "CREATE TABLE probe_partitioned (org_id bigint, ts bigint, PRIMARY KEY (ts, org_id))"
            " PARTITION BY RANGE (ts)"
        )
        cursor.execute("CREATE TABLE probe_child_rows (parent_id bigint PRIMARY KEY)")
        flagged = catalog_violations(cursor)
        assert {v for v in flagged if v[0].startswith("probe_")} == {
            ("probe_tenant_rows", ("name", "org_id")),
            ("probe_tenant_rows", (EXPRESSION,)),
            ("probe_partitioned", ("ts", "org_id")),
            ("probe_child_rows", ()),  # no org column and not declared global
        }
        assert _unexpected(flagged) != []


@isolate_apps("backend.tracing")
def test_model_checker_flags_a_new_tenant_model():
    class GoodModel(models.Model):  # noqa: DJ008 (a probe, never shown)
        org = models.ForeignKey(Organization, on_delete=models.CASCADE)
        name = models.CharField(max_length=10)
        pk = models.CompositePrimaryKey("org", "name")

        class Meta:
            app_label = "tracing"
            db_table = "probe_good"

    class BadModel(models.Model):  # noqa: DJ008 (a probe, never shown)
        org = models.ForeignKey(Organization, on_delete=models.CASCADE)
        name = models.CharField(max_length=10, unique=True)
        kind = models.IntegerField()

        class Meta:
            app_label = "tracing"
            db_table = "probe_bad"
            unique_together = [("kind", "org")]
            constraints = [
                models.UniqueConstraint(fields=["org", "kind", "name"], name="probe_ok"),
                models.UniqueConstraint(models.F("name"), name="probe_expr"),
            ]

    class ChildModel(models.Model):  # noqa: DJ008 (a probe, never shown)
        parent = models.ForeignKey(BadModel, on_delete=models.CASCADE)

        class Meta:
            app_label = "tracing"
            db_table = "probe_child"

    assert model_violations([GoodModel, BadModel, ChildModel]) == {
        ("probe_bad", ("id",)),
        ("probe_bad", ("name",)),
        ("probe_bad", ("kind", "org_id")),
        ("probe_bad", (EXPRESSION,)),
        ("probe_child", ()),
    }
    # A key the database holds with org_id in front passes, unless it also holds it alone.
    held = {"probe_bad": {("org_id", "id"), ("org_id", "name")}}
    assert ("probe_bad", ("id",)) not in model_violations([BadModel], held)
    assert ("probe_bad", ("name",)) not in model_violations([BadModel], held)
    held["probe_bad"].add(("id",))
    assert ("probe_bad", ("id",)) in model_violations([BadModel], held)
