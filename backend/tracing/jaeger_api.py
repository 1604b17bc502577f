"""Jaeger's query API (the HTTP JSON API Jaeger UI and Grafana's Jaeger data source call),
under ``/jaeger``: ``/api/services``, ``/api/services/{service}/operations``,
``/api/operations``, ``/api/traces`` (search) and ``/api/traces/{id}``.

Envelope ``{data, total, limit, offset, errors}``; times in µs; trace and span ids in hex.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from django.db import DataError
from rest_framework.response import Response

from backend.tenancy.api_base import OrgAPIView
from backend.tenancy.models import Scope
from backend.tracing import dependencies, selectors
from backend.tracing.critical_path import critical_path
from backend.tracing.selectors import StoredSpan, TraceQuery

KIND_NAMES = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
KIND_NUMBERS = {name: number for number, name in KIND_NAMES.items()}
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
DEFAULT_LOOKBACK_US = 3600 * 10**6
MAX_LIMIT = 1500


class BadRequest(ValueError):
    pass


def envelope(data, *, status: int = 200, errors: list | None = None) -> Response:
    total = len(data) if isinstance(data, list) else 0
    return Response(
        {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}, status=status
    )


def error(status: int, message: str) -> Response:
    return envelope(None, status=status, errors=[{"code": status, "msg": message}])


def go_duration_ns(text: str) -> int:
    """Go's time.ParseDuration for the units Jaeger accepts (``1.5s``, ``100ms``, ``2m30s``)."""
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise BadRequest(f"cannot parse duration {text!r}")
    return int(sum(float(n) * _UNIT_NS[u] for n, u in parts))


def _hex_trace_id(trace_id: bytes) -> str:
    # Jaeger prints 64-bit trace ids (upper half zero) as 16 hex digits.
    return (trace_id[8:] if trace_id[:8] == bytes(8) else trace_id).hex()


def _tag(key: str, value: Any) -> dict:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, dict) and set(value) == {"bytesValue"}:
        return {"key": key, "type": "binary", "value": value["bytesValue"]}
    if isinstance(value, list | dict):
        return {"key": key, "type": "string", "value": json.dumps(value)}
    return {"key": key, "type": "string", "value": "" if value is None else str(value)}


def _span_tags(span: StoredSpan) -> list[dict]:
    tags = [_tag(k, v) for k, v in span.attributes.items()]
    if span.kind in KIND_NAMES:
        tags.append(_tag("span.kind", KIND_NAMES[span.kind]))
    if span.status_code == 2:
        tags.append(_tag("error", True))
        tags.append(_tag("otel.status_code", "ERROR"))
        if span.status_message:
            tags.append(_tag("otel.status_description", span.status_message))
    elif span.status_code == 1:
        tags.append(_tag("otel.status_code", "OK"))
    if span.scope:
        name, _, version = span.scope.partition("@")
        tags.append(_tag("otel.library.name", name))
        if version:
            tags.append(_tag("otel.library.version", version))
    return tags


def jaeger_trace(spans: list[StoredSpan]) -> dict:
    """One trace in Jaeger's JSON model, processes de-duplicated as Jaeger does."""
    processes: dict[str, dict] = {}
    process_ids: dict[str, str] = {}
    out_spans = []
    ids = {s.span_id for s in spans}
    for span in spans:
        key = json.dumps([span.service, span.resource], sort_keys=True, default=str)
        if key not in process_ids:
            process_ids[key] = f"p{len(process_ids) + 1}"
            processes[process_ids[key]] = {
                "serviceName": span.service,
                "tags": [_tag(k, v) for k, v in span.resource.items() if k != "service.name"],
            }
        references = []
        if span.parent_span_id:
            references.append(
                {
                    "refType": "CHILD_OF",
                    "traceID": _hex_trace_id(span.trace_id),
                    "spanID": span.parent_span_id.hex(),
                }
            )
        for link in span.links:
            references.append(
                {
                    "refType": "FOLLOWS_FROM",
                    "traceID": _hex_trace_id(bytes.fromhex(link["trace_id"])),
                    "spanID": link["span_id"],
                }
            )
        warnings = None
        if span.parent_span_id and span.parent_span_id not in ids:
            warnings = [
                f"invalid parent span IDs={span.parent_span_id.hex()}; skipping clock "
                "skew adjustment"
            ]
        out_spans.append(
            {
                "traceID": _hex_trace_id(span.trace_id),
                "spanID": span.span_id.hex(),
                "flags": span.flags & 0xFF or 1,
                "operationName": span.name,
                "references": references,
                "startTime": span.start_ns // 1000,
                "duration": span.duration_ns // 1000,
                "tags": _span_tags(span),
                "logs": [
                    {
                        "timestamp": e["time_ns"] // 1000,
                        "fields": [_tag("event", e["name"])]
                        + [_tag(k, v) for k, v in e["attributes"].items()],
                    }
                    for e in span.events
                ],
                "processID": process_ids[key],
                "warnings": warnings,
            }
        )
    return {
        "traceID": _hex_trace_id(spans[0].trace_id),
        "spans": out_spans,
        "processes": processes,
        "warnings": None,
    }


def parse_trace_id(text: str) -> bytes:
    text = text.strip().lower()
    if not text or len(text) > 32 or not re.fullmatch(r"[0-9a-f]+", text):
        raise BadRequest(f"malformed trace id {text!r}")
    return bytes.fromhex(text.rjust(32, "0"))


class JaegerView(OrgAPIView):
    scopes = {"GET": [Scope.TRACES_READ]}

    def handle_exception(self, exc):
        if isinstance(exc, BadRequest):
            return error(400, str(exc))
        return super().handle_exception(exc)


class ServicesView(JaegerView):
    def get(self, request):
        return envelope(selectors.services_list(org_id=self.org.pk))


class ServiceOperationsView(JaegerView):
    def get(self, request, service: str):
        names = sorted(
            {name for name, _ in selectors.operations_list(org_id=self.org.pk, service=service)}
        )
        return envelope(names)


class OperationsView(JaegerView):
    def get(self, request):
        service = request.query_params.get("service", "")
        kind_name = request.query_params.get("spanKind", "")
        if kind_name and kind_name not in KIND_NUMBERS:
            raise BadRequest(f"unknown spanKind {kind_name!r}")
        found = selectors.operations_list(
            org_id=self.org.pk, service=service, kind=KIND_NUMBERS.get(kind_name)
        )
        return envelope(
            [{"name": name, "spanKind": KIND_NAMES.get(kind, "")} for name, kind in found]
        )


class TraceView(JaegerView):
    def get(self, request, trace_id: str):
        spans = selectors.trace_get(org_id=self.org.pk, trace_id=parse_trace_id(trace_id))
        if not spans:
            return error(404, "trace not found")
        return envelope([jaeger_trace(spans)])


def int_param(params, name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer, not {raw!r}") from exc


STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}


def _tag_filters(raw: str | None) -> tuple[tuple[str, str, str], ...]:
    """Canopy's extension: ``tagFilters=[["http.status_code", "=~", "5.."], ["env", "!=",
    "dev"]]`` (every filter must hold)."""
    if not raw:
        return ()
    try:
        filters = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"tagFilters must be a JSON list: {exc}") from exc
    if not isinstance(filters, list) or not all(
        isinstance(f, list) and len(f) == 3 and f[1] in selectors.TAG_OPS for f in filters
    ):
        raise BadRequest("tagFilters is a list of [key, op, value], op one of = != =~ !~")
    for _, op, value in filters:
        if op in ("=~", "!~"):
            try:
                re.compile(str(value))
            except re.error as exc:
                raise BadRequest(f"invalid regex {value!r}: {exc}") from exc
    return tuple((str(k), op, str(v)) for k, op, v in filters)


class TracesView(JaegerView):
    """Jaeger's search, plus Canopy's extensions: ``tagFilters`` (negation and regexes),
    ``errorsOnly=true``, ``statusCode=UNSET|OK|ERROR`` and ``sortBy=start|duration``."""

    def get(self, request):
        params = request.query_params
        ids = params.getlist("traceID")
        if ids:
            found = selectors.traces_get(
                org_id=self.org.pk, trace_ids=[parse_trace_id(t) for t in ids]
            )
            return envelope([jaeger_trace(spans) for spans in found.values()])
        service = params.get("service")
        if not service:
            raise BadRequest("parameter 'service' is required")
        end_us = int_param(params, "end") or time.time_ns() // 1000
        lookback = params.get("lookback")
        default_start = end_us - (
            go_duration_ns(lookback) // 1000
            if lookback and lookback != "custom"
            else DEFAULT_LOOKBACK_US
        )
        start_us = int_param(params, "start") or default_start
        try:
            tags = json.loads(params.get("tags") or "{}")
        except json.JSONDecodeError as exc:
            raise BadRequest(f"tags must be a JSON map: {exc}") from exc
        if not isinstance(tags, dict):
            raise BadRequest("tags must be a JSON map")
        limit = min(int_param(params, "limit") or 20, MAX_LIMIT)
        operation = params.get("operation") or None
        tag_filters = _tag_filters(params.get("tagFilters"))
        status = params.get("statusCode")
        if status is not None and status.upper() not in STATUS_CODES:
            raise BadRequest("statusCode is one of UNSET, OK, ERROR")
        sort = params.get("sortBy", "start")
        if sort not in selectors.SORTS:
            raise BadRequest("sortBy is start or duration")
        query = TraceQuery(
            service=service,
            operation=None if operation == "all" else operation,
            start_ns=start_us * 1000,
            end_ns=end_us * 1000,
            tags=tuple((str(k), str(v)) for k, v in tags.items()),
            tag_filters=tag_filters,
            errors_only=params.get("errorsOnly", "").lower() == "true",
            status_code=STATUS_CODES[status.upper()] if status else None,
            sort=sort,
            min_duration_ns=go_duration_ns(params["minDuration"])
            if params.get("minDuration")
            else None,
            max_duration_ns=go_duration_ns(params["maxDuration"])
            if params.get("maxDuration")
            else None,
            limit=limit,
        )
        try:
            trace_ids = selectors.traces_find(org_id=self.org.pk, query=query)
        except DataError as exc:  # a regex Python accepted but PostgreSQL's engine did not
            raise BadRequest(f"invalid tag filter: {exc}") from exc
        found = selectors.traces_get(org_id=self.org.pk, trace_ids=trace_ids)
        return envelope([jaeger_trace(found[t]) for t in trace_ids if t in found])


class DependenciesView(JaegerView):
    """``/api/dependencies?endTs=<ms>&lookback=<ms>`` → ``[{parent, child, callCount}]``."""

    def get(self, request):
        end_ms = int_param(request.query_params, "endTs") or time.time_ns() // 10**6
        lookback = int_param(request.query_params, "lookback") or 24 * 3600 * 1000
        edges = dependencies.dependencies_get(
            org_id=self.org.pk, start_ms=end_ms - lookback, end_ms=end_ms
        )
        return envelope(
            [
                {"parent": e["parent"], "child": e["child"], "callCount": e["callCount"]}
                for e in edges
            ]
        )


class CriticalPathView(JaegerView):
    """``/api/traces/{id}/critical-path`` → chronological ``[{spanID, startTime, endTime}]``
    (µs): the dashboard highlights these; their durations add up to the trace's."""

    def get(self, request, trace_id: str):
        spans = selectors.trace_get(org_id=self.org.pk, trace_id=parse_trace_id(trace_id))
        if not spans:
            return error(404, "trace not found")
        return envelope(
            [
                {"spanID": sid.hex(), "startTime": start // 1000, "endTime": end // 1000}
                for sid, start, end in critical_path(spans)
            ]
        )
