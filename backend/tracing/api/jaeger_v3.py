"""Jaeger's v3 query API (``/jaeger/api/v3/...``): the same reads, answered in OTLP JSON."""

from __future__ import annotations

import json

from rest_framework.response import Response

from backend.tracing import selectors
from backend.tracing.api.jaeger import MAX_LIMIT, JaegerView, operations_found
from backend.tracing.api.params import (
    BadRequest,
    go_duration_param_ns,
    limit_param,
    parse_trace_id,
    prefixed_params,
    rfc3339_ns,
)
from backend.tracing.selectors import TraceQuery
from backend.tracing.spans import StoredSpan


def any_value(value) -> dict:
    """An OTLP JSON ``AnyValue`` (64-bit ints as decimal strings, as the mapping requires)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        if set(value) == {"bytesValue"}:
            return {"bytesValue": value["bytesValue"]}
        return {"kvlistValue": {"values": key_values(value)}}
    return {"stringValue": "" if value is None else str(value)}


def key_values(attributes: dict) -> list[dict]:
    return [{"key": k, "value": any_value(v)} for k, v in attributes.items()]


def _otlp_span(span: StoredSpan) -> dict:
    out = {
        "traceId": span.trace_id.hex(),
        "spanId": span.span_id.hex(),
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.start_ns + span.duration_ns),
        "attributes": key_values(span.attributes),
        "events": [
            {
                "timeUnixNano": str(e["time_ns"]),
                "name": e["name"],
                "attributes": key_values(e["attributes"]),
            }
            for e in span.events
        ],
        "links": [
            {
                "traceId": ln["trace_id"],
                "spanId": ln["span_id"],
                "traceState": ln.get("trace_state", ""),
                "attributes": key_values(ln["attributes"]),
            }
            for ln in span.links
        ],
        "status": {"code": span.status_code, "message": span.status_message or ""},
        "flags": span.flags,
    }
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id.hex()
    if span.trace_state:
        out["traceState"] = span.trace_state
    return out


def otlp_traces(spans: list[StoredSpan]) -> dict:
    """``{"resourceSpans": [...]}``: spans grouped by resource, then by scope."""
    resources: dict[str, dict] = {}
    for span in spans:
        resource = {**span.resource, "service.name": span.service}
        key = json.dumps(resource, sort_keys=True, default=str)
        entry = resources.setdefault(
            key, {"resource": {"attributes": key_values(resource)}, "scopeSpans": {}}
        )
        name, _, version = (span.scope or "").partition("@")
        scope = entry["scopeSpans"].setdefault(
            span.scope or "", {"scope": {"name": name, "version": version}, "spans": []}
        )
        scope["spans"].append(_otlp_span(span))
    return {
        "resourceSpans": [
            {**r, "scopeSpans": list(r["scopeSpans"].values())} for r in resources.values()
        ]
    }


class ServicesView(JaegerView):
    def get(self, request):
        return Response({"services": selectors.services_list(org_id=self.org.pk)})


class OperationsView(JaegerView):
    def get(self, request):
        return Response({"operations": operations_found(self, "span_kind")})


class TraceView(JaegerView):
    def get(self, request, trace_id: str):
        spans = selectors.trace_get(org_id=self.org.pk, trace_id=parse_trace_id(trace_id))
        if not spans:
            return Response({"error": {"code": 404, "message": "trace not found"}}, status=404)
        return Response({"result": otlp_traces(spans)})


class TracesView(JaegerView):
    def get(self, request):
        p = request.query_params
        service = p.get("query.service_name")
        start = rfc3339_ns(p.get("query.start_time_min"), "query.start_time_min")
        end = rfc3339_ns(p.get("query.start_time_max"), "query.start_time_max")
        if not service or start is None or end is None:
            raise BadRequest(
                "query.service_name, query.start_time_min and query.start_time_max are required"
            )
        query = TraceQuery(
            service=service,
            operation=p.get("query.operation_name") or None,
            start_ns=start,
            end_ns=end,
            tags=prefixed_params(p, "query.attributes."),
            min_duration_ns=go_duration_param_ns(p, "query.duration_min"),
            max_duration_ns=go_duration_param_ns(p, "query.duration_max"),
            limit=limit_param(p, "query.num_traces", default=20, maximum=MAX_LIMIT),
        )
        ids = selectors.traces_find(org_id=self.org.pk, query=query)
        found = selectors.traces_get(org_id=self.org.pk, trace_ids=ids)
        return Response({"result": otlp_traces([s for t in ids for s in found.get(t, [])])})
