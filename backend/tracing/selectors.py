"""Reads of the span store (the Jaeger/Zipkin query APIs build on these)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import connection

from backend.tracing.spans import StoredSpan

_SPAN_COLUMNS = """
    s.trace_id, s.span_id, s.parent_span_id, sv.name, op.name, s.kind, s.start_ns,
    s.duration_ns, s.status_code, s.status_message, s.attributes, s.events, s.links,
    r.attributes, s.scope, s.trace_state, s.flags
"""


def _spans_where(org_id: int, condition: str, params: list) -> list[StoredSpan]:
    if org_id is None:
        raise ValueError("span reads need an org")
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {_SPAN_COLUMNS} FROM trace_spans s "  # noqa: S608
            "JOIN trace_services sv ON sv.id = s.service_id "
            "JOIN trace_operations op ON op.id = s.operation_id "
            "JOIN trace_resources r ON r.id = s.resource_id "
            f"WHERE s.org_id = %s AND {condition} ORDER BY s.start_ns, s.span_id",
            [org_id, *params],
        )
        rows = cur.fetchall()
    # positional, in the field order of StoredSpan (the columns' order)
    return [
        StoredSpan(
            bytes(r[0]),
            bytes(r[1]),
            bytes(r[2]) if r[2] is not None else None,
            *r[3:10],
            _json(r[10], {}),
            _json(r[11], []),
            _json(r[12], []),
            _json(r[13], {}),
            *r[14:17],
        )
        for r in rows
    ]


def trace_get(*, org_id: int, trace_id: bytes) -> list[StoredSpan]:
    """Every stored span of one trace of the org, by start time."""
    return _spans_where(org_id, "s.trace_id = %s", [trace_id])


def _json(value, empty):
    # Django's raw cursors hand jsonb back as text.
    if value is None:
        return empty
    return json.loads(value) if isinstance(value, str) else value


def services_list(*, org_id: int) -> list[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT name FROM trace_services WHERE org_id = %s ORDER BY name", [org_id])
        return [row[0] for row in cur.fetchall()]


def span_count(*, org_id: int) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM trace_spans WHERE org_id = %s", [org_id])
        return cur.fetchone()[0]


@dataclass(frozen=True, slots=True)
class TracesOverview:
    services: int
    spans_last_hour: int
    pending_batches: int


def traces_overview(*, org_id: int, now_ns: int) -> TracesOverview:
    """What the dashboard shows about an org's trace ingest."""
    hour_ago = now_ns - 3600 * 10**9
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM trace_services WHERE org_id = %s", [org_id])
        (services,) = cur.fetchone()
        cur.execute(
            "SELECT count(*) FROM trace_spans WHERE org_id = %s AND start_ns >= %s",
            [org_id, hour_ago],
        )
        (spans,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM trace_batches WHERE org_id = %s", [org_id])
        (pending,) = cur.fetchone()
    return TracesOverview(services, spans, pending)


def operations_list(*, org_id: int, service: str, kind: int | None = None) -> list[tuple[str, int]]:
    """(operation name, OTLP kind) of one service of the org."""
    query = (
        "SELECT o.name, o.kind FROM trace_operations o JOIN trace_services s ON s.id = o.service_id"
        " WHERE o.org_id = %s AND s.org_id = %s AND s.name = %s"
    )
    params: list = [org_id, org_id, service]
    if kind is not None:
        query += " AND o.kind = %s"
        params.append(kind)
    with connection.cursor() as cur:
        cur.execute(query + " ORDER BY o.name, o.kind", params)
        return cur.fetchall()


@dataclass(frozen=True, slots=True)
class TraceQuery:
    service: str
    start_ns: int
    end_ns: int
    operation: str | None = None
    tags: tuple[tuple[str, str], ...] = ()  # every one must match, as text
    # (key, op, value) with op "=", "!=", "=~" or "!~" (regex fully anchored); an absent
    # attribute counts as "" (so it satisfies != and !~ of anything non-empty)
    tag_filters: tuple[tuple[str, str, str], ...] = ()
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    errors_only: bool = False
    status_code: int | None = None
    sort: str = "start"  # or "duration": the slowest traces first
    limit: int = 20


TAG_OPS = {"=": "=", "!=": "<>", "=~": "~", "!~": "!~"}
SORTS = {"start": "max(s.start_ns)", "duration": "max(s.duration_ns)"}


def traces_find(*, org_id: int, query: TraceQuery) -> list[bytes]:
    """Ids of the org's traces with a span matching the query, the most recent first."""
    where = ["s.org_id = %s", "sv.org_id = %s", "sv.name = %s", "s.start_ns BETWEEN %s AND %s"]
    params: list = [org_id, org_id, query.service, query.start_ns, query.end_ns]
    joins = "JOIN trace_services sv ON sv.id = s.service_id"
    if query.operation:
        joins += " JOIN trace_operations op ON op.id = s.operation_id"
        where.append("op.name = %s")
        params.append(query.operation)
    if query.min_duration_ns is not None:
        where.append("s.duration_ns >= %s")
        params.append(query.min_duration_ns)
    if query.max_duration_ns is not None:
        where.append("s.duration_ns <= %s")
        params.append(query.max_duration_ns)
    if query.errors_only:
        where.append("s.status_code = 2")
    if query.status_code is not None:
        where.append("s.status_code = %s")
        params.append(query.status_code)
    filters = [(k, "=", v) for k, v in query.tags] + list(query.tag_filters)
    for key, op, value in filters:
        if key == "error" and op == "=" and value == "true":
            where.append("(s.status_code = 2 OR s.attributes->>'error' = 'true')")
            continue
        # Tags match as text, whatever their stored type (Jaeger sends them as strings), on
        # the span's attributes first and its resource's second.
        if op in ("=~", "!~"):
            value = f"^(?:{value})$"
        where.append(f"coalesce(s.attributes->>%s, r.attributes->>%s, '') {TAG_OPS[op]} %s")
        params += [key, key, value]
        if "trace_resources r" not in joins:
            joins += " JOIN trace_resources r ON r.id = s.resource_id"
    sql_text = (
        f"SELECT s.trace_id FROM trace_spans s {joins} WHERE {' AND '.join(where)} "  # noqa: S608
        f"GROUP BY s.trace_id ORDER BY {SORTS[query.sort]} DESC LIMIT %s"
    )
    with connection.cursor() as cur:
        cur.execute(sql_text, [*params, query.limit])
        return [bytes(row[0]) for row in cur.fetchall()]


def traces_get(*, org_id: int, trace_ids: list[bytes]) -> dict[bytes, list[StoredSpan]]:
    """The spans of several traces of the org, by trace id (one query)."""
    spans = _spans_where(org_id, "s.trace_id = ANY(%s)", [trace_ids]) if trace_ids else []
    out: dict[bytes, list[StoredSpan]] = {}
    for span in spans:
        out.setdefault(span.trace_id, []).append(span)
    return out
