"""OTLP and Zipkin trace payloads as the tests send them, and posting them to /v1/traces."""

from __future__ import annotations

import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tests.helpers.credentials import bearer

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")


def kv(key, value):
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def otlp_request(spans, service="checkout") -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[kv("service.name", service), kv("k8s.namespace", "shop")]
                ),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    )


def span(span_id: str, parent: str = "", *, name="GET /cart", start=None, status=0, **attrs):
    start = start or time.time_ns() - 10**9
    return Span(
        trace_id=TRACE,
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent) if parent else b"",
        name=name,
        kind=2,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 5_000_000,
        attributes=[kv(k, v) for k, v in attrs.items()],
        status=Status(code=status),
    )


def post_otlp(client, body, token, content_type="application/x-protobuf", **extra):
    return client.post("/v1/traces", body, content_type=content_type, **bearer(token), **extra)


ENVOY_ZIPKIN = [
    {  # the client side, as Envoy's zipkin tracer reports it (B3, 128-bit trace id)
        "traceId": TRACE.hex(),
        "id": "a4a3a1a0b8c2d1e0",
        "kind": "CLIENT",
        "name": "productpage.default.svc.cluster.local:9080/*",
        "timestamp": None,
        "duration": 12873,
        "localEndpoint": {"serviceName": "istio-ingressgateway.istio-system", "ipv4": "10.44.1.7"},
        "remoteEndpoint": {"ipv4": "10.44.2.9", "port": 9080},
        "tags": {
            "component": "proxy",
            "http.method": "GET",
            "http.status_code": "200",
            "http.url": "http://shop.example.com/productpage",
            "node_id": "router~10.44.1.7~istio-ingressgateway-5f9d.istio-system"
            "~istio-system.svc.cluster.local",
            "upstream_cluster": "outbound|9080||productpage.default.svc.cluster.local",
            "response_flags": "-",
            "guid:x-request-id": "0f6c3e52-8a79-9d1c",
            "peer.address": "10.44.0.1",
            "istio.canonical_service": "istio-ingressgateway",
        },
    },
    {  # the server side sharing the span id (Envoy B3 single-span), 64-bit style parent
        "traceId": TRACE.hex(),
        "id": "a4a3a1a0b8c2d1e0",
        "kind": "SERVER",
        "shared": True,
        "name": "productpage.default.svc.cluster.local:9080/*",
        "timestamp": None,
        "duration": 11002,
        "localEndpoint": {"serviceName": "productpage.default", "ipv4": "10.44.2.9"},
        "tags": {
            "component": "proxy",
            "http.status_code": "500",
            "error": "true",
            "response_flags": "UF",
        },
        "annotations": [{"timestamp": None, "value": "retry"}],
    },
]
