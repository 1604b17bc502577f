"""Does every statement on a tenant table name the org? What a Citus-style distribution by
``org_id`` needs to route a statement to one shard (docs/scaling.md). A check over the SQL of
``django.test.utils.CaptureQueriesContext``: coarse (the WHERE clause must mention
``org_id``), which is enough to catch Django's ``save()``/``delete()`` by bare id and look-ups
by ``pk`` alone."""

from __future__ import annotations

import re


def tables_named(sql: str, tables: tuple[str, ...]) -> set[str]:
    return {t for t in tables if re.search(rf'(?<![\w.])"?{t}"?(?!\w)', sql)}


def unrouted(queries: list[dict], tables: tuple[str, ...]) -> list[str]:
    """Statements on ``tables`` whose WHERE clause does not name ``org_id`` (an INSERT: whose
    columns do not include it)."""
    bad = []
    for q in queries:
        sql = q["sql"]
        if not tables_named(sql, tables):
            continue
        if sql.lstrip().upper().startswith("INSERT"):
            if "org_id" not in sql:
                bad.append(sql)
            continue
        _, _, where = sql.partition(" WHERE ")
        if "org_id" not in where:
            bad.append(sql)
    return bad
