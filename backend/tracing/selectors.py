"""Reads of the span store (the Jaeger/Zipkin query APIs build on these)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from backend.tracing.spans import StoredSpan
from backend.tracing.storage import reader


def trace_get(*, org_id: int, trace_id: bytes) -> list[StoredSpan]:
    """Every stored span of one trace of the org, by start time."""
    return reader.spans_of_traces(org_id=org_id, trace_ids=[trace_id])


def services_list(*, org_id: int) -> list[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT name FROM trace_services WHERE org_id = %s ORDER BY name", [org_id])
        return [row[0] for row in cur.fetchall()]


def span_count(*, org_id: int) -> int:
    """Stored spans of the org, in the head and in blocks."""
    return reader.span_count(org_id=org_id)


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
        cur.execute("SELECT count(*) FROM trace_batches WHERE org_id = %s", [org_id])
        (pending,) = cur.fetchone()
    spans = reader.span_count(org_id=org_id, since_ns=hour_ago)
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


TAG_OPS = reader.TAG_OPS
SORTS = reader.SORTS


def traces_find(*, org_id: int, query: TraceQuery) -> list[bytes]:
    """Ids of the org's traces with a span matching the query, the most recent first (or
    the slowest first), from the head and the blocks."""
    return reader.traces_find(org_id=org_id, query=query)


def traces_get(*, org_id: int, trace_ids: list[bytes]) -> dict[bytes, list[StoredSpan]]:
    """The spans of several traces of the org, by trace id (one query)."""
    spans = reader.spans_of_traces(org_id=org_id, trace_ids=trace_ids)
    out: dict[bytes, list[StoredSpan]] = {}
    for span in spans:
        out.setdefault(span.trace_id, []).append(span)
    return out
