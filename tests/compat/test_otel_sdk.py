"""The real OpenTelemetry Python SDK exporting to Canopy over OTLP/HTTP and OTLP/gRPC."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from backend.pipeline.drain import org_drain
from backend.tenancy.services import org_create, token_create, user_get_or_create
from backend.tracing.selectors import services_list, trace_get
from ingest.grpc.server import build_server

pytestmark = pytest.mark.compat


@pytest.fixture
def orgs(transactional_db):
    owner = user_get_or_create(username="ops")
    return (
        org_create(slug="acme", name="Acme", owner=owner),
        org_create(slug="globex", name="Globex", owner=owner),
    )


def _emit(exporter, service: str):
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "k8s.pod.name": "cart-7d9f"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("canopy.tests", "1.2.3")
    with (
        tracer.start_as_current_span(
            "GET /cart",
            kind=SpanKind.SERVER,
            attributes={"http.status_code": 200, "http.route": "/cart"},
        ) as root,
        tracer.start_as_current_span("SELECT carts", kind=SpanKind.CLIENT) as child,
    ):
        child.set_attribute("db.system", "postgresql")
        child.add_event("rows fetched", {"rows": 3})
        child.set_status(Status(StatusCode.ERROR, "timeout"))
    provider.shutdown()
    return root.get_span_context(), child.get_span_context()


def _check(org, root_ctx, child_ctx, service):
    org_drain(signal="traces", org_id=org.pk)
    spans = trace_get(org_id=org.pk, trace_id=root_ctx.trace_id.to_bytes(16, "big"))
    by_id = {s.span_id: s for s in spans}
    root = by_id[root_ctx.span_id.to_bytes(8, "big")]
    child = by_id[child_ctx.span_id.to_bytes(8, "big")]
    assert root.parent_span_id is None and child.parent_span_id == root.span_id
    assert root.service == service and root.resource["k8s.pod.name"] == "cart-7d9f"
    assert root.kind == 2 and child.kind == 3
    assert root.attributes == {"http.status_code": 200, "http.route": "/cart"}
    assert child.status_code == 2 and child.status_message == "timeout"
    assert child.events[0]["name"] == "rows fetched"
    assert child.events[0]["attributes"] == {"rows": 3}
    assert root.scope == "canopy.tests@1.2.3"
    assert child.start_ns >= root.start_ns and child.duration_ns <= root.duration_ns


def test_otlp_http_exporter(live_server, orgs):
    acme, globex = orgs
    _, secret = token_create(org=acme, name="otel", scopes=["traces:write"])
    exporter = HttpExporter(
        endpoint=f"{live_server.url}/v1/traces", headers={"authorization": f"Bearer {secret}"}
    )
    root, child = _emit(exporter, "cart-http")
    _check(acme, root, child, "cart-http")
    assert services_list(org_id=globex.pk) == []


def test_otlp_grpc_exporter(orgs):
    acme, globex = orgs
    _, secret = token_create(org=acme, name="otel", scopes=["traces:write"])
    server, port = build_server("127.0.0.1:0", workers=2)
    server.start()
    try:
        exporter = GrpcExporter(
            endpoint=f"127.0.0.1:{port}",
            insecure=True,
            headers=(("authorization", f"Bearer {secret}"),),
        )
        root, child = _emit(exporter, "cart-grpc")
        _check(acme, root, child, "cart-grpc")
        assert services_list(org_id=globex.pk) == []
    finally:
        server.stop(grace=1).wait()


def test_otlp_grpc_refuses_bad_tokens(orgs):
    acme, _ = orgs
    _, read_only = token_create(org=acme, name="ro", scopes=["traces:read"])
    server, port = build_server("127.0.0.1:0", workers=2)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            request = trace_service_pb2.ExportTraceServiceRequest()
            for metadata, code in (
                ((), grpc.StatusCode.UNAUTHENTICATED),
                ((("authorization", "Bearer cnp_nope"),), grpc.StatusCode.UNAUTHENTICATED),
                ((("authorization", f"Bearer {read_only}"),), grpc.StatusCode.PERMISSION_DENIED),
            ):
                with pytest.raises(grpc.RpcError) as err:
                    stub.Export(request, metadata=metadata, timeout=10)
                assert err.value.code() == code
    finally:
        server.stop(grace=1).wait()
