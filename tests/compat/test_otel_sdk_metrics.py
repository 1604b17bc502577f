"""The real OpenTelemetry Python SDK exporting metrics to Canopy over OTLP/HTTP and OTLP/gRPC,
then read back as Prometheus series with the names and labels Prometheus/Mimir would give."""

from __future__ import annotations

from io import StringIO

import pytest
import requests
from django.core.management import call_command
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpExporter,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from backend.metrics.labels import Matcher
from backend.metrics.selectors import metadata_list, samples_for_series
from backend.metrics.storage.reader import series_match
from backend.pipeline.drain import org_drain
from backend.tenancy.services import org_create, token_create, user_get_or_create
from ingest.grpc.server import build_server

pytestmark = pytest.mark.compat

RESOURCE = {
    "service.name": "checkout",
    "service.namespace": "shop",
    "service.instance.id": "checkout-7d9f",
    "k8s.pod.name": "checkout-7d9f-abc",
}


@pytest.fixture
def orgs(transactional_db):
    owner = user_get_or_create(username="ops")
    return (
        org_create(slug="acme", name="Acme", owner=owner),
        org_create(slug="globex", name="Globex", owner=owner),
    )


def _emit(exporter) -> None:
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create(RESOURCE), metric_readers=[reader])
    meter = provider.get_meter("canopy.tests", "1.0")
    requests = meter.create_counter("http.server.requests", unit="{request}", description="Reqs")
    duration = meter.create_histogram("http.server.duration", unit="ms", description="Latency")
    in_flight = meter.create_up_down_counter("http.server.active_requests", unit="{request}")
    for code, ms in (("200", 12.0), ("200", 80.0), ("500", 700.0)):
        attrs = {"http.response.status_code": code, "http.route": "/cart"}
        requests.add(1, attrs)
        duration.record(ms, attrs)
    in_flight.add(3, {"http.route": "/cart"})
    provider.force_flush()
    provider.shutdown()


def _series(org, name):
    org_drain(signal="metrics", org_id=org.pk)
    return series_match(org_id=org.pk, matchers=[Matcher("__name__", "=", name)])


def _check(org):
    target = {"job": "shop/checkout", "instance": "checkout-7d9f"}
    requests = _series(org, "http_server_requests_total")
    assert sorted(requests.values(), key=lambda labels: labels["http_response_status_code"]) == [
        {
            "__name__": "http_server_requests_total",
            "http_response_status_code": code,
            "http_route": "/cart",
            **target,
        }
        for code in ("200", "500")
    ]
    samples = samples_for_series(org_id=org.pk, series=requests, start_ms=0, end_ms=2**62)
    totals = {requests[s]["http_response_status_code"]: v[-1] for s, (_, v) in samples.items()}
    assert totals == {"200": 2.0, "500": 1.0}

    buckets = _series(org, "http_server_duration_milliseconds_bucket")
    ok = {
        labels["le"]: sid
        for sid, labels in buckets.items()
        if labels["http_response_status_code"] == "200"
    }
    assert {"5", "10", "25", "100", "1000", "+Inf"} <= set(ok)
    values = samples_for_series(org_id=org.pk, series=buckets, start_ms=0, end_ms=2**62)
    assert values[ok["10"]][1][-1] == 0.0 and values[ok["25"]][1][-1] == 1.0
    assert values[ok["100"]][1][-1] == 2.0 and values[ok["+Inf"]][1][-1] == 2.0
    for suffix in ("_sum", "_count"):
        assert len(_series(org, "http_server_duration_milliseconds" + suffix)) == 2
    (gauge,) = _series(org, "http_server_active_requests").values()
    assert gauge == {"__name__": "http_server_active_requests", "http_route": "/cart", **target}

    (info,) = _series(org, "target_info").values()
    assert info["k8s_pod_name"] == "checkout-7d9f-abc" and info["job"] == "shop/checkout"
    assert info["instance"] == "checkout-7d9f" and info["telemetry_sdk_language"] == "python"
    assert "service_name" not in info

    (meta,) = metadata_list(org_id=org.pk, metric="http_server_duration_milliseconds")
    assert meta[1:] == ("histogram", "Latency", "ms")


def test_otlp_http_metric_exporter(live_server, orgs):
    acme, globex = orgs
    _, secret = token_create(org=acme, name="otel", scopes=["metrics:write"])
    exporter = HttpExporter(
        endpoint=f"{live_server.url}/otlp/v1/metrics",
        headers={"authorization": f"Bearer {secret}"},
    )
    _emit(exporter)
    _check(acme)
    assert _series(globex, "target_info") == {}


def test_otlp_grpc_metric_exporter(orgs):
    acme, globex = orgs
    _, secret = token_create(org=acme, name="otel", scopes=["metrics:write"])
    server, port = build_server("127.0.0.1:0", workers=2)
    server.start()
    try:
        exporter = GrpcExporter(
            endpoint=f"127.0.0.1:{port}",
            insecure=True,
            headers=(("authorization", f"Bearer {secret}"),),
        )
        _emit(exporter)
        _check(acme)
        assert _series(globex, "target_info") == {}
    finally:
        server.stop(grace=1).wait()


def test_delta_temporality_is_refused_with_a_partial_success(live_server, orgs):
    acme, _ = orgs
    _, secret = token_create(org=acme, name="otel", scopes=["metrics:write"])
    reader = InMemoryMetricReader(preferred_temporality={Counter: AggregationTemporality.DELTA})
    provider = MeterProvider(resource=Resource.create(RESOURCE), metric_readers=[reader])
    meter = provider.get_meter("canopy.tests")
    meter.create_counter("jobs.done").add(5)
    meter.create_histogram("job.seconds", unit="s").record(1.5)
    body = encode_metrics(reader.get_metrics_data()).SerializeToString()
    provider.shutdown()
    response = requests.post(
        f"{live_server.url}/otlp/v1/metrics",
        data=body,
        headers={"content-type": "application/x-protobuf", "authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert response.status_code == 200
    partial = ExportMetricsServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_data_points == 1
    assert "invalid_temporality" in partial.error_message and "jobs.done" in partial.error_message
    assert _series(acme, "jobs_done_total") == {}
    # the cumulative histogram of the same request was stored
    assert len(_series(acme, "job_seconds_bucket")) > 2


def test_sdk_exemplars_link_the_histogram_bucket_to_the_trace(live_server, orgs, client):
    """The SDK's default exemplar filter (trace-based) samples measurements made inside a
    sampled span; Canopy stores them on the bucket series and serves them back."""
    acme, _ = orgs
    _, secret = token_create(org=acme, name="otel", scopes=["metrics:write"])
    exporter = HttpExporter(
        endpoint=f"{live_server.url}/otlp/v1/metrics",
        headers={"authorization": f"Bearer {secret}"},
    )
    tracer = TracerProvider().get_tracer("canopy.tests")
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create(RESOURCE), metric_readers=[reader])
    duration = provider.get_meter("canopy.tests").create_histogram("rpc.duration", unit="ms")
    with tracer.start_as_current_span("GET /cart") as span:
        duration.record(42.0, {"rpc.method": "GetCart"})
    provider.force_flush()
    provider.shutdown()
    trace_id = format(span.get_span_context().trace_id, "032x")
    span_id = format(span.get_span_context().span_id, "016x")

    _, read = token_create(org=acme, name="grafana", scopes=["metrics:read"])
    answer = client.get(
        "/prometheus/api/v1/query_exemplars",
        {"query": "histogram_quantile(0.9, rate(rpc_duration_milliseconds_bucket[5m]))"},
        HTTP_AUTHORIZATION=f"Bearer {read}",
    ).json()
    (series,) = answer["data"]
    assert series["seriesLabels"]["le"] == "50"  # the bucket 42 ms falls in
    assert series["seriesLabels"]["rpc_method"] == "GetCart"
    (exemplar,) = series["exemplars"]
    assert exemplar["labels"] == {"trace_id": trace_id, "span_id": span_id}
    assert exemplar["value"] == "42"


PROMOTING_RESOURCE = {
    **RESOURCE,
    "deployment.environment": "prod",
    "cloud.region": "eu-west-1",
    "http.route": "/from-the-resource",  # a data point attribute of the same name wins
}


def _emit_promoting(exporter) -> None:
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create(PROMOTING_RESOURCE), metric_readers=[reader])
    meter = provider.get_meter("canopy.tests")
    meter.create_counter("orders.placed").add(2, {"http.route": "/cart"})
    meter.create_histogram("order.value", unit="By").record(300, {"http.route": "/cart"})
    provider.force_flush()
    provider.shutdown()


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_promoted_resource_attributes_label_every_series_of_the_org_that_asked(
    live_server, orgs, transport
):
    acme, globex = orgs
    call_command(
        "set_limits",
        "--org",
        "acme",
        "promote_otel_resource_attributes=deployment.environment,http.route,absent.attr",
        stdout=StringIO(),
    )
    server = None
    exporters = {}
    if transport == "grpc":
        server, port = build_server("127.0.0.1:0", workers=2)
        server.start()
    try:
        for org in orgs:
            _, secret = token_create(org=org, name="otel", scopes=["metrics:write"])
            if server is None:
                exporters[org.slug] = HttpExporter(
                    endpoint=f"{live_server.url}/otlp/v1/metrics",
                    headers={"authorization": f"Bearer {secret}"},
                )
            else:
                exporters[org.slug] = GrpcExporter(
                    endpoint=f"127.0.0.1:{port}",
                    insecure=True,
                    headers=(("authorization", f"Bearer {secret}"),),
                )
            _emit_promoting(exporters[org.slug])
    finally:
        if server is not None:
            server.stop(grace=1).wait()

    target = {"job": "shop/checkout", "instance": "checkout-7d9f"}
    (orders,) = _series(acme, "orders_placed_total").values()
    assert orders == {
        "__name__": "orders_placed_total",
        "deployment_environment": "prod",  # promoted, sanitised like any label
        "http_route": "/cart",  # the point's own attribute, not the resource's
        **target,
    }
    buckets = _series(acme, "order_value_bytes_bucket").values()
    assert buckets and all(b["deployment_environment"] == "prod" for b in buckets)
    for suffix in ("_sum", "_count"):
        (series,) = _series(acme, "order_value_bytes" + suffix).values()
        assert series["deployment_environment"] == "prod"
        assert "cloud_region" not in series  # not asked for
    (info,) = _series(acme, "target_info").values()
    assert info["deployment_environment"] == "prod" and info["cloud_region"] == "eu-west-1"

    # globex left the setting at its default (empty): nothing promoted there
    (plain,) = _series(globex, "orders_placed_total").values()
    assert plain == {"__name__": "orders_placed_total", "http_route": "/cart", **target}


def _emit_scoped(exporter) -> None:
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create(RESOURCE), metric_readers=[reader])
    library = provider.get_meter(
        "io.canopy.shop",
        "2.1.0",
        schema_url="https://opentelemetry.io/schemas/1.21.0",
        attributes={"library.tier": "core"},
    )
    library.create_counter("orders.placed").add(2, {"http.route": "/cart"})
    library.create_histogram("order.value", unit="By").record(300, {"http.route": "/cart"})
    provider.get_meter("cache").create_gauge("cache.size").set(5)
    provider.force_flush()
    provider.shutdown()


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_scope_metadata_labels_every_series_of_the_org_that_asked(live_server, orgs, transport):
    acme, globex = orgs
    call_command(
        "set_limits", "--org", "acme", "promote_otel_scope_metadata=true", stdout=StringIO()
    )
    server = None
    if transport == "grpc":
        server, port = build_server("127.0.0.1:0", workers=2)
        server.start()
    try:
        for org in orgs:
            _, secret = token_create(org=org, name="otel", scopes=["metrics:write"])
            if server is None:
                exporter = HttpExporter(
                    endpoint=f"{live_server.url}/otlp/v1/metrics",
                    headers={"authorization": f"Bearer {secret}"},
                )
            else:
                exporter = GrpcExporter(
                    endpoint=f"127.0.0.1:{port}",
                    insecure=True,
                    headers=(("authorization", f"Bearer {secret}"),),
                )
            _emit_scoped(exporter)
    finally:
        if server is not None:
            server.stop(grace=1).wait()

    target = {"job": "shop/checkout", "instance": "checkout-7d9f"}
    scope = {
        "otel_scope_name": "io.canopy.shop",
        "otel_scope_version": "2.1.0",
        "otel_scope_schema_url": "https://opentelemetry.io/schemas/1.21.0",
        "otel_scope_library_tier": "core",
    }
    (orders,) = _series(acme, "orders_placed_total").values()
    assert orders == {"__name__": "orders_placed_total", "http_route": "/cart", **scope, **target}
    buckets = _series(acme, "order_value_bytes_bucket").values()
    assert len(buckets) > 1
    for series in [*buckets, *_series(acme, "order_value_bytes_count").values()]:
        assert {k: v for k, v in series.items() if k.startswith("otel_scope_")} == scope
    # a scope with a name only: no empty version or schema URL labels
    (cache,) = _series(acme, "cache_size").values()
    assert cache == {"__name__": "cache_size", "otel_scope_name": "cache", **target}
    (info,) = _series(acme, "target_info").values()
    assert not any(name.startswith("otel_scope_") for name in info)

    # globex left the setting at its default (off, as in Prometheus): no scope labels
    (plain,) = _series(globex, "orders_placed_total").values()
    assert plain == {"__name__": "orders_placed_total", "http_route": "/cart", **target}
    (cache,) = _series(globex, "cache_size").values()
    assert cache == {"__name__": "cache_size", **target}
