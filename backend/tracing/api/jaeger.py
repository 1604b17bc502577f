"""Jaeger's query API (the HTTP JSON API Jaeger UI and Grafana's Jaeger data source call),
under ``/jaeger``: ``/api/services``, ``/api/services/{service}/operations``,
``/api/operations``, ``/api/traces`` (search) and ``/api/traces/{id}``.

Envelope ``{data, total, limit, offset, errors}``; times in µs; trace and span ids in hex.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import DataError
from rest_framework.response import Response

from backend.tracing import dependencies, selectors
from backend.tracing.api.base import TraceAPIView
from backend.tracing.api.params import (
    STATUS_CODES,
    BadRequest,
    go_duration_param_ns,
    limit_param,
    parse_trace_id,
    search_window_us,
    span_kind_param,
    tag_filters,
    tags_json,
    trace_id_hex,
    window_ms,
)
from backend.tracing.critical_path import critical_path
from backend.tracing.selectors import TraceQuery
from backend.tracing.spans import (
    KIND_JAEGER_NAMES,
    STATUS_ERROR,
    STATUS_OK,
    StoredSpan,
)

DEFAULT_LOOKBACK_US = 3600 * 10**6
DEPENDENCIES_LOOKBACK_MS = 24 * 3600 * 1000
MAX_LIMIT = 1500


def envelope(data, *, status: int = 200, errors: list | None = None) -> Response:
    total = len(data) if isinstance(data, list) else 0
    return Response(
        {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}, status=status
    )


def error(status: int, message: str) -> Response:
    return envelope(None, status=status, errors=[{"code": status, "msg": message}])


def _tag(key: str, value: Any) -> dict:
    if type(value) is str:  # the usual case first
        return {"key": key, "type": "string", "value": value}
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
    if span.kind in KIND_JAEGER_NAMES:
        tags.append(_tag("span.kind", KIND_JAEGER_NAMES[span.kind]))
    if span.status_code == STATUS_ERROR:
        tags.append(_tag("error", True))
        tags.append(_tag("otel.status_code", "ERROR"))
        if span.status_message:
            tags.append(_tag("otel.status_description", span.status_message))
    elif span.status_code == STATUS_OK:
        tags.append(_tag("otel.status_code", "OK"))
    if span.scope:
        name, _, version = span.scope.partition("@")
        tags.append(_tag("otel.library.name", name))
        if version:
            tags.append(_tag("otel.library.version", version))
    return tags


def jaeger_trace(spans: list[StoredSpan], keys: dict[tuple[str, int], str] | None = None) -> dict:
    """One trace in Jaeger's JSON model, processes de-duplicated as Jaeger does.

    ``keys`` may be shared by the traces of one answer (while their spans are alive): spans
    read together share their resource's dict, whose process key is then made once."""
    processes: dict[str, dict] = {}
    process_ids: dict[str, str] = {}
    out_spans = []
    ids = {s.span_id for s in spans}
    keys = {} if keys is None else keys
    for span in spans:
        key = keys.get((span.service, id(span.resource)))
        if key is None:
            key = json.dumps([span.service, span.resource], sort_keys=True, default=str)
            keys[(span.service, id(span.resource))] = key
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
                    "traceID": trace_id_hex(span.trace_id),
                    "spanID": span.parent_span_id.hex(),
                }
            )
        for link in span.links:
            references.append(
                {
                    "refType": "FOLLOWS_FROM",
                    "traceID": trace_id_hex(bytes.fromhex(link["trace_id"])),
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
                "traceID": trace_id_hex(span.trace_id),
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
        "traceID": trace_id_hex(spans[0].trace_id),
        "spans": out_spans,
        "processes": processes,
        "warnings": None,
    }


class JaegerView(TraceAPIView):
    def bad_request(self, message: str):
        return error(400, message)

    def timed_out(self, message: str):
        return error(422, message)


class ServicesView(JaegerView):
    def get(self, request):
        return envelope(selectors.services_list(org_id=self.org.pk))


class ServiceOperationsView(JaegerView):
    def get(self, request, service: str):
        names = sorted(
            {name for name, _ in selectors.operations_list(org_id=self.org.pk, service=service)}
        )
        return envelope(names)


def operations_found(view: JaegerView, kind_param: str) -> list[dict]:
    """A service's operations with their span kinds (``?service=``, the kind parameter named
    as the API version names it), as both Jaeger APIs list them."""
    found = selectors.operations_list(
        org_id=view.org.pk,
        service=view.request.query_params.get("service", ""),
        kind=span_kind_param(view.request.query_params, kind_param),
    )
    return [{"name": name, "spanKind": KIND_JAEGER_NAMES.get(kind, "")} for name, kind in found]


class OperationsView(JaegerView):
    def get(self, request):
        return envelope(operations_found(self, "spanKind"))


class TraceView(JaegerView):
    def get(self, request, trace_id: str):
        spans = selectors.trace_get(org_id=self.org.pk, trace_id=parse_trace_id(trace_id))
        if not spans:
            return error(404, "trace not found")
        return envelope([jaeger_trace(spans)])


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
        start_us, end_us = search_window_us(params, default_lookback_us=DEFAULT_LOOKBACK_US)
        tags = tags_json(params.get("tags"))
        limit = limit_param(params, "limit", default=20, maximum=MAX_LIMIT)
        operation = params.get("operation") or None
        filters = tag_filters(params.get("tagFilters"))
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
            tags=tags,
            tag_filters=filters,
            errors_only=params.get("errorsOnly", "").lower() == "true",
            status_code=STATUS_CODES[status.upper()] if status else None,
            sort=sort,
            min_duration_ns=go_duration_param_ns(params, "minDuration"),
            max_duration_ns=go_duration_param_ns(params, "maxDuration"),
            limit=limit,
        )
        try:
            trace_ids = selectors.traces_find(org_id=self.org.pk, query=query)
        except DataError as exc:  # a regex Python accepted but PostgreSQL's engine did not
            raise BadRequest(f"invalid tag filter: {exc}") from exc
        found = selectors.traces_get(org_id=self.org.pk, trace_ids=trace_ids)
        keys: dict[tuple[str, int], str] = {}
        return envelope([jaeger_trace(found[t], keys) for t in trace_ids if t in found])


class DependenciesView(JaegerView):
    """``/api/dependencies?endTs=<ms>&lookback=<ms>`` → ``[{parent, child, callCount}]``."""

    def get(self, request):
        start_ms, end_ms = window_ms(
            request.query_params, default_lookback_ms=DEPENDENCIES_LOOKBACK_MS
        )
        edges = dependencies.dependencies_get(org_id=self.org.pk, start_ms=start_ms, end_ms=end_ms)
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
