"""OTLP metric export requests built from the proto classes, for decoder and receiver tests."""

from __future__ import annotations

import time

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from tests.helpers.otlp import kv

CUMULATIVE = m.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = m.AGGREGATION_TEMPORALITY_DELTA


def now_ns() -> int:
    return time.time_ns()


def metrics_request(metrics, resource=None) -> ExportMetricsServiceRequest:
    resource = resource if resource is not None else {"service.name": "checkout"}
    return ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                resource=Resource(attributes=[kv(k, v) for k, v in resource.items()]),
                scope_metrics=[m.ScopeMetrics(metrics=metrics)],
            )
        ]
    )


def counter(name, value, *, unit="", ts=None, temporality=CUMULATIVE, exemplars=(), attrs=None):
    point = m.NumberDataPoint(
        time_unix_nano=ts or now_ns(),
        as_double=value,
        attributes=[kv(k, v) for k, v in (attrs or {}).items()],
        exemplars=list(exemplars),
    )
    return m.Metric(
        name=name,
        unit=unit,
        sum=m.Sum(data_points=[point], aggregation_temporality=temporality, is_monotonic=True),
    )


def gauge(name, value, *, unit="", ts=None, flags=0, attrs=None):
    point = m.NumberDataPoint(
        time_unix_nano=ts or now_ns(),
        as_int=value,
        flags=flags,
        attributes=[kv(k, v) for k, v in (attrs or {}).items()],
    )
    return m.Metric(name=name, unit=unit, gauge=m.Gauge(data_points=[point]))


def histogram(name, bounds, counts, total, *, unit="", ts=None, exemplars=(), attrs=None):
    point = m.HistogramDataPoint(
        time_unix_nano=ts or now_ns(),
        count=sum(counts),
        sum=total,
        explicit_bounds=bounds,
        bucket_counts=counts,
        attributes=[kv(k, v) for k, v in (attrs or {}).items()],
        exemplars=list(exemplars),
    )
    return m.Metric(
        name=name,
        unit=unit,
        histogram=m.Histogram(data_points=[point], aggregation_temporality=CUMULATIVE),
    )


def exemplar(value, *, trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331"):
    return m.Exemplar(
        time_unix_nano=now_ns(),
        as_double=value,
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id),
    )
