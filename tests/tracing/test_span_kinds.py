"""The one span-kind table: OTLP numbers and names, Jaeger's span.kind tag, Zipkin's kind, read
each way, and the decoders and the query APIs agreeing through it."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from backend.tracing.api.jaeger import jaeger_trace
from backend.tracing.api.zipkin import zipkin_span
from backend.tracing.spans import (
    KIND_BY_JAEGER_NAME,
    KIND_BY_OTLP_NAME,
    KIND_BY_ZIPKIN_NAME,
    KIND_JAEGER_NAMES,
    KIND_OTLP_NAMES,
    KIND_ZIPKIN_NAMES,
    SPAN_KINDS,
    StoredSpan,
)
from ingest.decoders.otlp_traces import decode_otlp_traces
from ingest.decoders.proto import zipkin_pb2
from ingest.decoders.spans import SpanLimits
from ingest.decoders.zipkin import decode_zipkin_spans

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")


def test_the_table_is_otlps_enum():
    assert {v.number: v.name for v in PbSpan.SpanKind.DESCRIPTOR.values} == KIND_OTLP_NAMES
    assert [k.number for k in SPAN_KINDS] == sorted(KIND_OTLP_NAMES)


@pytest.mark.parametrize(
    ("names", "numbers"),
    [
        (KIND_OTLP_NAMES, KIND_BY_OTLP_NAME),
        (KIND_JAEGER_NAMES, KIND_BY_JAEGER_NAME),
        (KIND_ZIPKIN_NAMES, KIND_BY_ZIPKIN_NAME),
    ],
)
def test_each_protocols_names_round_trip(names, numbers):
    assert {numbers[name]: name for name in names.values()} == names
    assert {name: numbers[name] for name in names.values()} == numbers


def test_what_each_protocol_names():
    assert KIND_JAEGER_NAMES == {
        1: "internal",
        2: "server",
        3: "client",
        4: "producer",
        5: "consumer",
    }
    assert KIND_ZIPKIN_NAMES == {2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
    zipkin_proto = {v.name for v in zipkin_pb2.Span.Kind.DESCRIPTOR.values}
    assert set(KIND_BY_ZIPKIN_NAME) <= zipkin_proto


def _stored(kind: int) -> StoredSpan:
    return StoredSpan(
        trace_id=TRACE,
        span_id=bytes.fromhex("eee19b7ec3c1b174"),
        parent_span_id=None,
        service="checkout",
        name="GET /cart",
        kind=kind,
        start_ns=1_700_000_000_000_000_000,
        duration_ns=1000,
        status_code=0,
        status_message=None,
        attributes={},
        events=[],
        links=[],
        resource={"service.name": "checkout"},
        scope=None,
        trace_state=None,
        flags=0,
    )


@pytest.mark.parametrize("number", sorted(KIND_OTLP_NAMES))
def test_decoders_and_query_apis_agree(number):
    limits = SpanLimits()
    zipkin_name = KIND_ZIPKIN_NAMES.get(number)
    zipkin_body = {
        "traceId": TRACE.hex(),
        "id": "eee19b7ec3c1b174",
        "name": "GET /cart",
        "timestamp": 1_700_000_000_000_000,
        "duration": 1,
        "localEndpoint": {"serviceName": "checkout"},
    }
    if zipkin_name:
        zipkin_body["kind"] = zipkin_name
    (decoded,) = decode_zipkin_spans(
        json.dumps([zipkin_body]).encode(),
        content_type="application/json",
        content_encoding=None,
        max_size=1 << 20,
        limits=limits,
    ).spans
    # Zipkin has no INTERNAL: such spans arrive without a kind, as unspecified ones do
    assert decoded.kind == (number if zipkin_name else 0)

    otlp_name = KIND_OTLP_NAMES[number]
    for sent in (number, otlp_name, otlp_name.removeprefix("SPAN_KIND_")):
        otlp_body = {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": TRACE.hex(),
                                    "spanId": "eee19b7ec3c1b174",
                                    "name": "GET /cart",
                                    "kind": sent,
                                    "startTimeUnixNano": "1700000000000000000",
                                    "endTimeUnixNano": "1700000000000001000",
                                }
                            ]
                        }
                    ]
                }
            ]
        }
        (decoded,) = decode_otlp_traces(
            json.dumps(otlp_body).encode(),
            content_type="application/json",
            content_encoding=None,
            max_size=1 << 20,
            limits=limits,
        ).spans
        assert decoded.kind == number

    assert zipkin_span(_stored(number)).get("kind") == zipkin_name
    (jaeger,) = jaeger_trace([_stored(number)])["spans"]
    tags = {t["key"]: t["value"] for t in jaeger["tags"]}
    assert tags.get("span.kind") == KIND_JAEGER_NAMES.get(number)
