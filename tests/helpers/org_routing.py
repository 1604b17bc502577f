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


_JOIN = re.compile(r'\bJOIN\s+"?(\w+)"?')


def unrouted_joins(queries: list[dict], tables: tuple[str, ...]) -> list[str]:
    """Statements that join one of ``tables`` without ``org_id`` in the join's condition
    (from its ``JOIN`` to the next ``JOIN`` or ``WHERE``): the WHERE names only the first
    table's org, so ``a JOIN b ON a.b_id = b.id`` reads ``b`` of every shard. Coarse, like
    ``unrouted``."""
    bad = []
    for q in queries:
        sql = q["sql"]
        for m in _JOIN.finditer(sql):
            if m.group(1) not in tables:
                continue
            rest = sql[m.end() :]
            ends = [i for i in (rest.find(" JOIN "), rest.find(" WHERE ")) if i >= 0]
            if "org_id" not in rest[: min(ends) if ends else len(rest)]:
                bad.append(sql)
                break
    return bad
