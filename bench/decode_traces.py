"""Decode cost of trace export requests, on Envoy-shaped spans (no server, no database).

    .venv/bin/python bench/decode_traces.py
    .venv/bin/python bench/decode_traces.py --spans 200 --seconds 1 --gzip

Each request carries ``--spans`` spans (1,000 by default) as an Istio sidecar fleet reports them:
client/server pairs of the bookinfo services (3 pods each) with Envoy's ~20 tags (``node_id``,
``guid:x-request-id``, ``http.url``, ``upstream_cluster``, ``istio.*``...), 5% of them errors.
The same spans are encoded as OTLP protobuf and OTLP JSON (what Envoy's OpenTelemetry tracer
would send: one resource per service) and as Zipkin v2 JSON and protobuf (what Envoy's zipkin
tracer sends: 64- and 128-bit trace ids, shared server spans). Bodies are encoded (and gzipped
with ``--gzip``) before any timing.

Figures, per format: median, 90th percentile and best wall time per request, CPU time per
request (process time), and spans/s at the median and at the best (on a busy machine the best is
the closer to the decoder's own cost).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from bench.harness.timing import CallTimes
from ingest.decoders import otlp_traces, zipkin
from ingest.decoders.proto import zipkin_pb2
from ingest.decoders.spans import SpanLimits

# caller → callee hops of bookinfo
HOPS = [
    ("istio-ingressgateway", "istio-system", "productpage", 9080, "/productpage"),
    ("productpage", "default", "details", 9080, "/details/0"),
    ("productpage", "default", "reviews", 9080, "/reviews/0"),
    ("reviews", "default", "ratings", 9080, "/ratings/0"),
]
_KIND_NUMBERS = {"SERVER": 2, "CLIENT": 3}
PODS_PER_SERVICE = 3


def _pod(app: str, rng: random.Random) -> tuple[str, str]:
    """One of the few pods of ``app``: its name and (stable) IP."""
    n = rng.randrange(PODS_PER_SERVICE)
    return f"{app}-v1-7d9f8c{n}-x7k2p", f"10.0.{sum(map(ord, app)) % 256}.{10 + n}"


def envoy_spans(n_spans: int, seed: int, start_us: int = 1_700_000_000_000_000) -> list[dict]:
    """``n_spans`` Envoy sidecar spans (client/server pairs), format-neutral dicts."""
    rng = random.Random(seed)
    spans: list[dict] = []
    while len(spans) < n_spans:
        trace_id = rng.randbytes(16)
        if rng.random() < 0.5:  # a 64-bit B3 trace id, as older proxies propagate
            trace_id = bytes(8) + trace_id[8:]
        parent = None
        t0 = start_us + rng.randrange(60_000_000)
        for caller, namespace, callee, port, path in HOPS:
            if len(spans) >= n_spans:
                break
            client_id = rng.randbytes(8)
            duration = rng.randrange(300, 50_000)
            status = 503 if rng.random() < 0.05 else 200
            request_id = f"{rng.getrandbits(128):032x}"
            host = f"{callee}.default.svc.cluster.local:{port}"
            client_pod, client_ip = _pod(caller, rng)
            server_pod, server_ip = _pod(callee, rng)
            for kind in ("CLIENT", "SERVER"):
                if len(spans) >= n_spans:
                    break
                service = f"{caller}.{namespace}" if kind == "CLIENT" else f"{callee}.default"
                pod = client_pod if kind == "CLIENT" else server_pod
                tags = {
                    "node_id": f"sidecar~{client_ip if kind == 'CLIENT' else server_ip}~{pod}."
                    f"{service.split('.')[1]}~{service.split('.')[1]}.svc.cluster.local",
                    "zone": "us-east-1a",
                    "guid:x-request-id": request_id,
                    "http.url": f"http://{host}{path}",
                    "http.method": "GET",
                    "downstream_cluster": "-",
                    "user_agent": "python-requests/2.31.0",
                    "http.protocol": "HTTP/1.1",
                    "peer.address": client_ip if kind == "SERVER" else server_ip,
                    "request_size": "0",
                    "response_size": str(rng.randrange(200, 5000)),
                    "response_flags": "-" if status == 200 else "UF",
                    "upstream_cluster": f"outbound|{port}||{callee}.default.svc.cluster.local"
                    if kind == "CLIENT"
                    else f"inbound|{port}||",
                    "upstream_cluster.name": f"outbound|{port}||{callee}.default.svc.cluster.local",
                    "http.status_code": str(status),
                    "component": "proxy",
                    "istio.canonical_revision": "v1",
                    "istio.canonical_service": service.split(".")[0],
                    "istio.mesh_id": "cluster.local",
                    "istio.namespace": service.split(".")[1],
                }
                if status != 200:
                    tags["error"] = "true"
                spans.append(
                    {
                        "trace_id": trace_id,
                        # Zipkin B3: the server shares the client's span id; OTLP: its own
                        "span_id": client_id if kind == "CLIENT" else rng.randbytes(8),
                        "zipkin_id": client_id,
                        "parent_id": parent,
                        "kind": kind,
                        "name": f"{host}/*",
                        "start_us": t0 + (0 if kind == "CLIENT" else 150),
                        "duration_us": duration - (0 if kind == "CLIENT" else 300),
                        "service": service,
                        "local_ip": client_ip if kind == "CLIENT" else server_ip,
                        "local_port": 0 if kind == "CLIENT" else port,
                        "remote_ip": server_ip if kind == "CLIENT" else client_ip,
                        "remote_port": port if kind == "CLIENT" else rng.randrange(30000, 60000),
                        "tags": tags,
                        "error": status != 200,
                    }
                )
            parent = client_id
            t0 += rng.randrange(100, 2000)
    return spans


def otlp_request(spans: list[dict]) -> ExportTraceServiceRequest:
    """As Envoy's OpenTelemetry tracer would export them: one resource per service."""
    request = ExportTraceServiceRequest()
    by_service: dict[str, object] = {}
    for span in spans:
        scope_spans = by_service.get(span["service"])
        if scope_spans is None:
            resource_spans = request.resource_spans.add()
            resource_spans.resource.attributes.add(
                key="service.name", value=AnyValue(string_value=span["service"])
            )
            scope_spans = by_service[span["service"]] = resource_spans.scope_spans.add()
            scope_spans.scope.name = "envoy"
        out = scope_spans.spans.add(
            trace_id=span["trace_id"],
            span_id=span["span_id"],
            parent_span_id=span["parent_id"] or b"",
            name=span["name"],
            kind=_KIND_NUMBERS[span["kind"]],
            start_time_unix_nano=span["start_us"] * 1000,
            end_time_unix_nano=(span["start_us"] + span["duration_us"]) * 1000,
        )
        out.attributes.extend(
            KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in span["tags"].items()
        )
        if span["error"]:
            out.status.code = 2
    return request


def otlp_json(spans: list[dict]) -> bytes:
    """The same as OTLP JSON, by the specification's rules (hex ids, int64 as strings)."""
    by_service: dict[str, list] = {}
    for span in spans:
        out = {
            "traceId": span["trace_id"].hex(),
            "spanId": span["span_id"].hex(),
            "name": span["name"],
            "kind": _KIND_NUMBERS[span["kind"]],
            "startTimeUnixNano": str(span["start_us"] * 1000),
            "endTimeUnixNano": str((span["start_us"] + span["duration_us"]) * 1000),
            "attributes": [
                {"key": k, "value": {"stringValue": v}} for k, v in span["tags"].items()
            ],
            "status": {"code": 2} if span["error"] else {},
        }
        if span["parent_id"]:
            out["parentSpanId"] = span["parent_id"].hex()
        by_service.setdefault(span["service"], []).append(out)
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": "envoy"}, "spans": service_spans}],
            }
            for service, service_spans in by_service.items()
        ]
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _zipkin_trace_id(trace_id: bytes) -> bytes:
    return trace_id[8:] if trace_id[:8] == bytes(8) else trace_id


def zipkin_json(spans: list[dict]) -> bytes:
    """As Envoy's zipkin tracer sends them (HTTP_JSON, shared span context)."""
    out = []
    for span in spans:
        one = {
            "traceId": _zipkin_trace_id(span["trace_id"]).hex(),
            "id": span["zipkin_id"].hex(),
            "kind": span["kind"],
            "name": span["name"],
            "timestamp": span["start_us"],
            "duration": span["duration_us"],
            "localEndpoint": {"serviceName": span["service"], "ipv4": span["local_ip"]},
            "remoteEndpoint": {"ipv4": span["remote_ip"], "port": span["remote_port"]},
            "tags": span["tags"],
        }
        if span["local_port"]:
            one["localEndpoint"]["port"] = span["local_port"]
        if span["parent_id"]:
            one["parentId"] = span["parent_id"].hex()
        if span["kind"] == "SERVER":
            one["shared"] = True
        out.append(one)
    return json.dumps(out, separators=(",", ":")).encode()


def zipkin_proto(spans: list[dict]) -> bytes:
    """The same as Zipkin ``ListOfSpans`` (HTTP_PROTO)."""
    message = zipkin_pb2.ListOfSpans()
    for span in spans:
        out = message.spans.add(
            trace_id=_zipkin_trace_id(span["trace_id"]),
            id=span["zipkin_id"],
            parent_id=span["parent_id"] or b"",
            kind=zipkin_pb2.Span.Kind.Value(span["kind"]),
            name=span["name"],
            timestamp=span["start_us"],
            duration=span["duration_us"],
            shared=span["kind"] == "SERVER",
        )
        out.local_endpoint.service_name = span["service"]
        out.local_endpoint.ipv4 = bytes(int(part) for part in span["local_ip"].split("."))
        out.local_endpoint.port = span["local_port"]
        out.remote_endpoint.ipv4 = bytes(int(part) for part in span["remote_ip"].split("."))
        out.remote_endpoint.port = span["remote_port"]
        out.tags.update(span["tags"])
    return message.SerializeToString()


FORMATS = {
    "otlp-proto": (otlp_traces.decode_otlp_traces, "application/x-protobuf"),
    "otlp-json": (otlp_traces.decode_otlp_traces, "application/json"),
    "zipkin-json": (zipkin.decode_zipkin_spans, "application/json"),
    "zipkin-proto": (zipkin.decode_zipkin_spans, "application/x-protobuf"),
}


def encode(name: str, spans: list[dict]) -> bytes:
    if name == "otlp-proto":
        return otlp_request(spans).SerializeToString()
    if name == "otlp-json":
        return otlp_json(spans)
    if name == "zipkin-json":
        return zipkin_json(spans)
    return zipkin_proto(spans)


def measure(name: str, bodies: list[bytes], *, encoding: str | None, seconds: float) -> dict:
    decode, content_type = FORMATS[name]
    limits = SpanLimits()
    spans = 0
    calls = CallTimes(seconds=seconds, min_calls=10)
    i = 0
    while calls.more():
        body = bodies[i % len(bodies)]
        i += 1
        batch = calls.time(
            partial(
                decode,
                body,
                content_type=content_type,
                content_encoding=encoding,
                max_size=64 << 20,
                limits=limits,
            )
        )
        spans = len(batch.spans)
        if batch.rejected:
            raise SystemExit(f"unexpected rejections: {batch.rejected}")
    return {
        "requests": len(calls.walls),
        "spans": spans,
        "median_us": calls.median * 1e6,
        "p90_us": calls.p90 * 1e6,
        "best_us": calls.best * 1e6,
        "cpu_us": calls.mean_cpu * 1e6,
        "spans_per_s": spans / calls.median,
        "best_spans_per_s": spans / calls.best,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=1000, help="spans per request")
    parser.add_argument("--requests", type=int, default=5, help="distinct requests to cycle")
    parser.add_argument("--seconds", type=float, default=3.0, help="per figure")
    parser.add_argument("--gzip", action="store_true", help="gzip the bodies (Content-Encoding)")
    parser.add_argument("--format", choices=[*FORMATS, "all"], default="all")
    args = parser.parse_args(argv)

    batches = [envoy_spans(args.spans, seed) for seed in range(args.requests)]
    chosen = list(FORMATS) if args.format == "all" else [args.format]
    print(f"{args.spans} Envoy spans per request, {args.requests} distinct requests")
    print(
        f"{'':13} {'KiB':>6} {'median':>9} {'p90':>9} {'best':>9} {'cpu':>9} "
        f"{'spans/s':>9} {'(best)':>9}"
    )
    for name in chosen:
        bodies = [encode(name, spans) for spans in batches]
        size = len(bodies[0])
        if args.gzip:
            bodies = [gzip.compress(body, 6) for body in bodies]
        figures = measure(
            name, bodies, encoding="gzip" if args.gzip else None, seconds=args.seconds
        )
        print(
            f"{name:13} {size / 1024:6.0f} {figures['median_us'] / 1000:7.1f}ms "
            f"{figures['p90_us'] / 1000:7.1f}ms {figures['best_us'] / 1000:7.1f}ms "
            f"{figures['cpu_us'] / 1000:7.1f}ms {figures['spans_per_s']:9,.0f} "
            f"{figures['best_spans_per_s']:9,.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
