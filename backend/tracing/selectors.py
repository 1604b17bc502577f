"""Reads of the span store (the Jaeger/Zipkin query APIs build on these)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import connection


@dataclass(slots=True)
class StoredSpan:
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes | None
    service: str
    name: str
    kind: int
    start_ns: int
    duration_ns: int
    status_code: int
    status_message: str | None
    resource: dict[str, Any]
    scope: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]
    flags: int
    trace_state: str | None


def trace_get(*, org_id: int, trace_id: bytes) -> list[StoredSpan]:
    """Every stored span of one trace of the org, by start time."""
    if org_id is None:
        raise ValueError("trace_get needs an org")
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT s.trace_id, s.span_id, s.parent_span_id, sv.name, op.name, s.kind,
                   s.start_ns, s.duration_ns, s.status_code, s.status_message, r.attributes,
                   s.scope, s.attributes, s.events, s.links, s.flags, s.trace_state
            FROM trace_spans s
            JOIN trace_services sv ON sv.id = s.service_id
            JOIN trace_operations op ON op.id = s.operation_id
            JOIN trace_resources r ON r.id = s.resource_id
            WHERE s.org_id = %s AND s.trace_id = %s
            ORDER BY s.start_ns, s.span_id
            """,
            [org_id, trace_id],
        )
        rows = cur.fetchall()
    return [
        StoredSpan(
            bytes(r[0]),
            bytes(r[1]),
            bytes(r[2]) if r[2] is not None else None,
            *r[3:10],
            _json(r[10], {}),
            r[11],
            _json(r[12], {}),
            _json(r[13], []),
            _json(r[14], []),
            r[15],
            r[16],
        )
        for r in rows
    ]


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
