"""Zipkin's v2 query API (what Grafana's Zipkin data source calls), under ``/zipkin``."""

from __future__ import annotations

import json
import time

from rest_framework.response import Response

from backend.tracing import dependencies, selectors
from backend.tracing.api.base import TraceAPIView
from backend.tracing.api.params import (
    MAX_DURATION_NS,
    BadRequest,
    annotation_query,
    int_param,
    limit_param,
    parse_trace_id,
    trace_id_hex,
    window_ms,
)
from backend.tracing.selectors import TraceQuery
from backend.tracing.spans import KIND_ZIPKIN_NAMES, STATUS_ERROR, StoredSpan

DEFAULT_LOOKBACK_MS = 24 * 3600 * 1000
MAX_LIMIT = 1000


def _tag_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def zipkin_span(span: StoredSpan) -> dict:
    out = {
        "traceId": trace_id_hex(span.trace_id),
        "id": span.span_id.hex(),
        "name": span.name,
        "timestamp": span.start_ns // 1000,
        "duration": span.duration_ns // 1000,
        "localEndpoint": {"serviceName": span.service},
        "tags": {k: _tag_text(v) for k, v in span.attributes.items()},
    }
    if span.parent_span_id:
        out["parentId"] = span.parent_span_id.hex()
    if span.kind in KIND_ZIPKIN_NAMES:
        out["kind"] = KIND_ZIPKIN_NAMES[span.kind]
    if span.status_code == STATUS_ERROR:
        out["tags"]["error"] = span.status_message or "true"
    if "peer.service" in span.attributes:
        out["remoteEndpoint"] = {"serviceName": str(span.attributes["peer.service"])}
    if span.events:
        out["annotations"] = [
            {"timestamp": e["time_ns"] // 1000, "value": e["name"]} for e in span.events
        ]
    return out


class ZipkinView(TraceAPIView):
    def bad_request(self, message: str):
        return Response(message, status=400)

    def timed_out(self, message: str):
        return Response(message, status=422)


class ServicesView(ZipkinView):
    def get(self, request):
        return Response(selectors.services_list(org_id=self.org.pk))


class SpanNamesView(ZipkinView):
    def get(self, request):
        service = request.query_params.get("serviceName", "")
        names = {n for n, _ in selectors.operations_list(org_id=self.org.pk, service=service)}
        return Response(sorted(names))


class RemoteServicesView(ZipkinView):
    def get(self, request):
        service = request.query_params.get("serviceName", "")
        now_ms = time.time_ns() // 10**6
        edges = dependencies.dependencies_get(
            org_id=self.org.pk, start_ms=now_ms - DEFAULT_LOOKBACK_MS, end_ms=now_ms
        )
        return Response(sorted({e["child"] for e in edges if e["parent"] == service}))


class TraceView(ZipkinView):
    def get(self, request, trace_id: str):
        spans = selectors.trace_get(org_id=self.org.pk, trace_id=parse_trace_id(trace_id))
        if not spans:
            return Response(f"trace {trace_id} not found", status=404)
        return Response([zipkin_span(s) for s in spans])


class TracesView(ZipkinView):
    def get(self, request):
        params = request.query_params
        start_ms, end_ms = window_ms(params, default_lookback_ms=DEFAULT_LOOKBACK_MS)
        tags, errors_only = annotation_query(params.get("annotationQuery", ""))
        min_us = int_param(params, "minDuration", maximum=MAX_DURATION_NS // 1000)
        max_us = int_param(params, "maxDuration", maximum=MAX_DURATION_NS // 1000)
        service = params.get("serviceName")
        if not service:
            raise BadRequest("serviceName is required")
        span_name = params.get("spanName")
        query = TraceQuery(
            service=service,
            operation=None if span_name in (None, "", "all") else span_name,
            start_ns=start_ms * 10**6,
            end_ns=end_ms * 10**6,
            tags=tags,
            errors_only=errors_only,
            min_duration_ns=min_us * 1000 if min_us is not None else None,
            max_duration_ns=max_us * 1000 if max_us is not None else None,
            limit=limit_param(params, "limit", default=10, maximum=MAX_LIMIT),
        )
        ids = selectors.traces_find(org_id=self.org.pk, query=query)
        found = selectors.traces_get(org_id=self.org.pk, trace_ids=ids)
        return Response([[zipkin_span(s) for s in found[t]] for t in ids if t in found])


class DependenciesView(ZipkinView):
    def get(self, request):
        start_ms, end_ms = window_ms(request.query_params, default_lookback_ms=DEFAULT_LOOKBACK_MS)
        return Response(
            dependencies.dependencies_get(org_id=self.org.pk, start_ms=start_ms, end_ms=end_ms)
        )
