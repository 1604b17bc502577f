"""OTLP and Zipkin trace decoding (pure functions: no database needed)."""

from __future__ import annotations

import base64
import dataclasses
import functools
import gzip
import json
import math
import time
import tracemalloc
import zlib
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Status
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from backend.tracing.spans import Span, SpanEvent, SpanLink
from ingest.decoders import request_body
from ingest.decoders.errors import DecodeError, PayloadTooLarge, UnsupportedMediaType
from ingest.decoders.otlp_traces import (
    decode_otlp_protobuf,
    decode_otlp_request,
    decode_otlp_traces,
    encode_partial_success,
    encode_status,
    otlp_media_type,
)
from ingest.decoders.proto import rpc_status_pb2, zipkin_pb2
from ingest.decoders.spans import MAX_TIME_NS, SpanLimits, TraceBatch
from ingest.decoders.zipkin import decode_zipkin_spans

PB = "application/x-protobuf"
JSON = "application/json"
LIMITS = SpanLimits()
MAX = 1 << 20
T0 = 1_700_000_000_000_000_000  # ns

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
TRACE_2 = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")
SPAN_2 = bytes.fromhex("b7ad6b7169203331")
PARENT = bytes.fromhex("00f067aa0ba902b7")

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- builders ---------------------------------------------------------------------------------


def kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))


def any_value(value: Any) -> AnyValue:
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    return AnyValue(kvlist_value=KeyValueList(values=[kv(k, v) for k, v in value.items()]))


def pb_span(**fields: Any) -> PbSpan:
    attributes = fields.pop("attributes", {})
    fields.setdefault("trace_id", TRACE)
    fields.setdefault("span_id", SPAN)
    fields.setdefault("name", "GET /api")
    fields.setdefault("start_time_unix_nano", T0)
    fields.setdefault("end_time_unix_nano", T0 + 1_500_000)
    span = PbSpan(**fields)
    span.attributes.extend(kv(k, v) for k, v in attributes.items())
    return span


def request_of(*spans: PbSpan, service: str | None = "checkout", **resource: Any) -> Any:
    attributes = dict(resource)
    if service is not None:
        attributes["service.name"] = service
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv(k, v) for k, v in attributes.items()]),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name="envoy", version="1.31"), spans=spans
                    )
                ],
            )
        ]
    )


def otlp_json(request: ExportTraceServiceRequest) -> dict:
    """OTLP JSON per the specification: protobuf JSON, except ids in hex and enums as integers.

    ``json_format`` gives the lowerCamelCase keys, int64 as strings and bytesValue in base64
    that OTLP keeps; only trace/span ids differ (base64 there, hex in OTLP).
    """
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for item in [span, *span.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in item:
                            item[key] = base64.b64decode(item[key]).hex()
    return document


def decode_pb(request: Any, limits: SpanLimits = LIMITS) -> TraceBatch:
    return decode_otlp_traces(
        request.SerializeToString(),
        content_type=PB,
        content_encoding=None,
        max_size=MAX,
        limits=limits,
    )


def decode_json(document: Any, limits: SpanLimits = LIMITS, **kwargs: Any) -> TraceBatch:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return decode_otlp_traces(
        body, content_type=JSON, content_encoding=None, max_size=MAX, limits=limits, **kwargs
    )


def decode_zipkin(
    body: bytes | list, content_type: str | None = JSON, limits: SpanLimits = LIMITS
) -> TraceBatch:
    if isinstance(body, list):
        body = json.dumps(body).encode()
    return decode_zipkin_spans(
        body, content_type=content_type, content_encoding=None, max_size=MAX, limits=limits
    )


def reasons(batch: TraceBatch) -> dict[str, int]:
    return {r.reason: r.spans for r in batch.rejected}


# --- OTLP: protobuf and JSON ------------------------------------------------------------------


def full_request() -> ExportTraceServiceRequest:
    server = pb_span(
        trace_id=TRACE,
        span_id=SPAN,
        parent_span_id=PARENT,
        name="GET /api/cart",
        kind=PbSpan.SPAN_KIND_SERVER,
        trace_state="congo=t61rcWkgMzE",
        flags=0x301,
        attributes={
            "http.request.method": "GET",
            "http.response.status_code": 503,
            "sampling.ratio": 0.25,
            "retry": True,
            "payload": b"\x00\x01\xff",
            "hosts": ["a", "b", 3],
            "headers": {"accept": "*/*", "x-n": [1, 2]},
            "nothing": None,
        },
        status=Status(code=Status.STATUS_CODE_ERROR, message="upstream reset"),
        events=[
            PbSpan.Event(
                time_unix_nano=T0 + 10,
                name="exception",
                attributes=[kv("exception.type", "IOError"), kv("attempt", 2)],
            )
        ],
        links=[
            PbSpan.Link(
                trace_id=TRACE_2,
                span_id=SPAN_2,
                trace_state="a=b",
                attributes=[kv("link.kind", "follows")],
            )
        ],
    )
    client = pb_span(
        span_id=SPAN_2,
        parent_span_id=SPAN,
        name="SELECT carts",
        kind=PbSpan.SPAN_KIND_CLIENT,
        start_time_unix_nano=T0 + 100,
        end_time_unix_nano=T0 + 100,  # zero duration is fine
        status=Status(code=Status.STATUS_CODE_OK),
    )
    request = request_of(server, client, **{"k8s.namespace.name": "shop"})
    other = request.resource_spans.add()  # a resource without service.name, no scope
    other.scope_spans.add().spans.append(pb_span(trace_id=TRACE_2, kind=7))
    return request


def expected_spans() -> list[Span]:
    resource = {"k8s.namespace.name": "shop", "service.name": "checkout"}
    server = Span(
        trace_id=TRACE,
        span_id=SPAN,
        parent_span_id=PARENT,
        service="checkout",
        name="GET /api/cart",
        kind=2,
        start_ns=T0,
        duration_ns=1_500_000,
        status_code=2,
        status_message="upstream reset",
        attributes={
            "http.request.method": "GET",
            "http.response.status_code": 503,
            "sampling.ratio": 0.25,
            "retry": True,
            "payload": b"\x00\x01\xff",
            "hosts": ["a", "b", 3],
            "headers": {"accept": "*/*", "x-n": [1, 2]},
            "nothing": None,
        },
        events=[SpanEvent(T0 + 10, "exception", {"exception.type": "IOError", "attempt": 2})],
        links=[SpanLink(TRACE_2, SPAN_2, "a=b", {"link.kind": "follows"})],
        resource=resource,
        scope_name="envoy",
        scope_version="1.31",
        trace_state="congo=t61rcWkgMzE",
        flags=0x301,
        shared=False,
    )
    client = Span(
        trace_id=TRACE,
        span_id=SPAN_2,
        parent_span_id=SPAN,
        service="checkout",
        name="SELECT carts",
        kind=3,
        start_ns=T0 + 100,
        duration_ns=0,
        status_code=1,
        status_message="",
        attributes={},
        events=[],
        links=[],
        resource=resource,
        scope_name="envoy",
        scope_version="1.31",
        trace_state="",
        flags=0,
        shared=False,
    )
    orphan = Span(
        trace_id=TRACE_2,
        span_id=SPAN,
        parent_span_id=None,
        service="unknown_service",
        name="GET /api",
        kind=0,  # 7 is no SpanKind
        start_ns=T0,
        duration_ns=1_500_000,
        status_code=0,
        status_message="",
        attributes={},
        events=[],
        links=[],
        resource={},
        scope_name="",
        scope_version="",
        trace_state="",
        flags=0,
        shared=False,
    )
    return [server, client, orphan]


def test_otlp_protobuf_decodes_every_field():
    batch = decode_pb(full_request())
    assert batch.spans == expected_spans()
    assert batch.rejected == []
    assert (batch.truncated_attributes, batch.dropped_attributes) == (0, 0)
    # spans of one resource share its dict
    assert batch.spans[0].resource is batch.spans[1].resource


def test_otlp_json_decodes_like_protobuf():
    document = otlp_json(full_request())
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == TRACE.hex() and span["parentSpanId"] == PARENT.hex()
    assert span["startTimeUnixNano"] == str(T0)  # int64 as a decimal string
    batch = decode_json(document)
    assert batch.spans == expected_spans()
    assert batch.rejected == []


def test_otlp_request_entry_points_agree():
    request = full_request()
    assert decode_otlp_request(request, LIMITS) == decode_pb(request)
    assert decode_otlp_protobuf(request.SerializeToString(), LIMITS) == decode_pb(request)


def test_otlp_json_written_by_hand_leniently():
    body = b"""{
      "resourceSpans": [{
        "resource": {"attributes": [
          {"key": "service.name", "value": {"stringValue": "cart"}},
          {"key": "host.cpus", "value": {"intValue": 8}}]},
        "schemaUrl": "https://opentelemetry.io/schemas/1.24.0",
        "scope_spans": [{
          "scope": {"name": "io.opentelemetry.okhttp", "version": "4.12", "attributes": []},
          "spans": [{
            "trace_id": "5B8EFFF798038103D269B633813FC60C",
            "spanId": "eee19b7ec3c1b174",
            "parentSpanId": "",
            "name": "POST /checkout",
            "kind": "SPAN_KIND_SERVER",
            "startTimeUnixNano": 1700000000000000000,
            "end_time_unix_nano": "1700000000001500000",
            "droppedAttributesCount": 0,
            "someFutureField": {"x": [1, 2]},
            "attributes": [
              {"key": "n", "value": {"intValue": "-42"}},
              {"key": "ratio", "value": {"doubleValue": "NaN"}},
              {"key": "big", "value": {"doubleValue": "-Infinity"}},
              {"key": "f", "value": {"double_value": 3}},
              {"key": "raw", "value": {"bytesValue": "AAH_"}},
              {"key": "ok", "value": {"boolValue": false}},
              {"key": "empty", "value": {}},
              {"key": "list", "value": {"arrayValue": {"values": [{"stringValue": "x"}, {}]}}},
              {"key": "map", "value": {"kvlistValue": {"values": [
                {"key": "a", "value": {"intValue": "1"}}]}}}
            ],
            "events": [{"timeUnixNano": "1700000000000000500", "name": "retry"}],
            "status": {"code": "STATUS_CODE_ERROR", "message": "card declined"}
          }, {
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "b7ad6b7169203331",
            "parentSpanId": "0000000000000000",
            "name": "charge", "kind": "client", "status": {"code": 1},
            "startTimeUnixNano": "1700000000000000100",
            "endTimeUnixNano": "1700000000000000900",
            "flags": 257
          }]
        }]
      }]
    }"""
    batch = decode_json(body)
    assert batch.rejected == []
    first, second = batch.spans
    assert first.trace_id == TRACE and first.span_id == SPAN and first.parent_span_id is None
    assert (first.service, first.scope_name, first.scope_version) == (
        "cart",
        "io.opentelemetry.okhttp",
        "4.12",
    )
    assert first.resource == {"service.name": "cart", "host.cpus": 8}
    assert (first.kind, first.start_ns, first.duration_ns) == (2, T0, 1_500_000)
    assert (first.status_code, first.status_message) == (2, "card declined")
    attributes = first.attributes
    assert math.isnan(attributes.pop("ratio"))
    assert attributes == {
        "n": -42,
        "big": -math.inf,
        "f": 3.0,
        "raw": b"\x00\x01\xff",  # URL-safe base64 without padding
        "ok": False,
        "empty": None,
        "list": ["x", None],
        "map": {"a": 1},
    }
    assert first.events == [SpanEvent(T0 + 500, "retry", {})]
    assert second.parent_span_id is None  # all-zero parent: a root
    assert (second.kind, second.status_code, second.flags) == (3, 1, 257)


def test_otlp_empty_requests():
    assert decode_pb(ExportTraceServiceRequest()).spans == []
    assert decode_json({}).spans == []
    assert decode_json({"resourceSpans": []}).spans == []


@pytest.mark.parametrize("media", [PB, JSON])
def test_otlp_gzip(media):
    request = full_request()
    raw = request.SerializeToString() if media == PB else json.dumps(otlp_json(request)).encode()
    batch = decode_otlp_traces(
        gzip.compress(raw),
        content_type=f"{media}; charset=utf-8",
        content_encoding="GZIP",
        max_size=len(raw),
        limits=LIMITS,
    )
    assert batch.spans == expected_spans()
    with pytest.raises(PayloadTooLarge):
        decode_otlp_traces(
            gzip.compress(raw),
            content_type=media,
            content_encoding="gzip",
            max_size=len(raw) - 1,
            limits=LIMITS,
        )


@pytest.mark.parametrize(
    ("content_type", "content_encoding"),
    [
        (None, None),
        ("", None),
        ("text/plain", None),
        ("application/x-thrift", None),
        (PB, "br"),
        (JSON, "deflate"),
        (PB, "zstd"),
    ],
)
def test_otlp_unsupported_media(content_type, content_encoding):
    with pytest.raises(UnsupportedMediaType) as error:
        decode_otlp_traces(
            b"{}",
            content_type=content_type,
            content_encoding=content_encoding,
            max_size=MAX,
            limits=LIMITS,
        )
    assert error.value.http_status == 415


def test_otlp_media_types():
    assert otlp_media_type("application/x-protobuf") == PB
    assert otlp_media_type("Application/JSON; charset=utf-8") == JSON


@pytest.mark.parametrize(
    ("media", "body", "fragment"),
    [
        (PB, b"\x0a\xff\xff\xff\xff\x0f", "not a valid protobuf ExportTraceServiceRequest"),
        (PB, b"\x0a\x03\x12\x01", "not a valid protobuf"),
        (JSON, b"{not json", "not valid JSON"),
        (JSON, b"\xff\xfe{}", "not valid UTF-8"),
        (JSON, b"[" * 100_000, "not valid JSON"),
        (JSON, b"[]", "not an object"),
        (JSON, b'{"resourceSpans": {}}', "resourceSpans must be an array"),
        (JSON, b'{"resourceSpans": [{"resource": 5}]}', "resourceSpans[0].resource"),
        (JSON, b'{"resourceSpans": [{"scopeSpans": [{"spans": 1}]}]}', "spans must be an array"),
    ],
)
def test_otlp_corrupt_bodies(media, body, fragment):
    with pytest.raises(DecodeError) as error:
        decode_otlp_traces(
            body, content_type=media, content_encoding=None, max_size=MAX, limits=LIMITS
        )
    assert fragment in str(error.value)
    assert error.value.http_status == 400


def test_otlp_invalid_utf8_in_an_attribute_is_corrupt_protobuf():
    # KeyValue{key: "k", value: AnyValue{string_value: b"\xff"}}, written by hand
    key_value = b"\x0a\x01k\x12\x03\x0a\x01\xff"
    span = pb_span().SerializeToString() + b"\x4a" + bytes([len(key_value)]) + key_value
    scope_spans = b"\x12" + bytes([len(span)]) + span
    resource_spans = b"\x12" + bytes([len(scope_spans)]) + scope_spans
    body = b"\x0a" + bytes([len(resource_spans)]) + resource_spans
    with pytest.raises(DecodeError, match="invalid UTF-8"):
        decode_otlp_traces(
            body, content_type=PB, content_encoding=None, max_size=MAX, limits=LIMITS
        )


def test_otlp_attributes_in_unusual_encodings():
    # value before key, a long (2-byte length) string, and a repeated key: the general path
    reordered = b"\x12\x05\x0a\x03abc\x0a\x01k"
    long_value = KeyValue(key="url", value=AnyValue(string_value="x" * 300)).SerializeToString()
    span = pb_span(attributes={"k": "first"})
    encoded = bytearray(span.SerializeToString())
    for key_value in (reordered, long_value):
        encoded += b"\x4a" + _varint(len(key_value)) + key_value
    request = request_of(PbSpan.FromString(bytes(encoded)))
    (decoded,) = decode_pb(request).spans
    assert decoded.attributes == {"k": "abc", "url": "x" * 300}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_otlp_json_lone_surrogates_become_replacement_characters():
    body = (
        b'{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":'
        b'{"stringValue":"cart\\ud800"}}]},"scopeSpans":[{"spans":[{"traceId":"'
        + TRACE.hex().encode()
        + b'","spanId":"'
        + SPAN.hex().encode()
        + b'","name":"a\\udfffb \\ud83d\\ude00",'
        + b'"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}'
    )
    (span,) = decode_json(body).spans
    assert span.service == "cart\ufffd"
    assert span.name == "a\ufffdb \U0001f600"
    span.name.encode()  # storable as UTF-8


# --- OTLP: limits and rejections --------------------------------------------------------------


def test_otlp_limits_truncate_and_drop_like_the_sdk():
    limits = SpanLimits(
        max_attributes_per_span=3,
        max_attribute_value_length=4,
        max_events_per_span=1,
        max_links_per_span=1,
    )
    span = pb_span(
        attributes={
            "a": "123456",  # truncated
            "b": ["12345", "1", 7],  # one array counts once
            "c": b"\x00" * 9,
            "d": "dropped",
            "e": 5,
        },
        events=[
            PbSpan.Event(time_unix_nano=T0, name="kept", attributes=[kv("x", "long value")]),
            PbSpan.Event(time_unix_nano=T0, name="dropped"),
        ],
        links=[
            PbSpan.Link(trace_id=TRACE_2, span_id=bytes(8)),  # invalid: dropped, not counted
            PbSpan.Link(trace_id=TRACE_2, span_id=SPAN_2),
            PbSpan.Link(trace_id=TRACE_2, span_id=SPAN),
        ],
    )
    request = request_of(span, service="a-service-name-longer-than-4")
    for batch in (decode_pb(request, limits), decode_json(otlp_json(request), limits)):
        (decoded,) = batch.spans
        assert decoded.attributes == {"a": "1234", "b": ["1234", "1", 7], "c": b"\x00" * 4}
        assert decoded.events == [SpanEvent(T0, "kept", {"x": "long"})]
        assert decoded.links == [SpanLink(TRACE_2, SPAN_2, "", {})]
        assert decoded.resource == {"service.name": "a-se"}
        assert batch.truncated_attributes == 5  # a, b, c, event x, resource service.name
        assert batch.dropped_attributes == 2  # d, e
        assert (batch.dropped_events, batch.dropped_links) == (1, 2)
        assert batch.rejected == []


def test_otlp_cached_attributes_are_counted_for_every_span():
    limits = SpanLimits(max_attribute_value_length=3)
    spans = [pb_span(span_id=bytes([i + 1]) * 8, attributes={"k": "long"}) for i in range(3)]
    batch = decode_pb(request_of(*spans), limits)
    assert [s.attributes for s in batch.spans] == [{"k": "lon"}] * 3
    assert batch.truncated_attributes == 4  # three spans and the resource's service.name


def test_otlp_repeated_keys_keep_the_last_and_count_every_truncation():
    limits = SpanLimits(max_attribute_value_length=2)
    span = pb_span()
    span.attributes.extend([kv("k", "long"), kv("k", "longer"), kv("j", "ok")])
    request = request_of(span, service="s")
    for batch in (decode_pb(request, limits), decode_json(otlp_json(request), limits)):
        assert batch.spans[0].attributes == {"k": "lo", "j": "ok"}
        assert batch.truncated_attributes == 2


def invalid_spans() -> list[tuple[str, PbSpan]]:
    return [
        ("invalid_trace_id", pb_span(trace_id=bytes(16))),
        ("invalid_trace_id", pb_span(trace_id=TRACE[:8])),
        ("invalid_span_id", pb_span(span_id=b"")),
        ("invalid_span_id", pb_span(span_id=bytes(8))),
        ("invalid_parent_span_id", pb_span(parent_span_id=b"\x01\x02")),
        ("missing_timestamp", pb_span(start_time_unix_nano=0)),
        ("negative_duration", pb_span(end_time_unix_nano=T0 - 1)),
        ("negative_duration", pb_span(end_time_unix_nano=0)),
        ("timestamp_out_of_range", pb_span(end_time_unix_nano=MAX_TIME_NS + 1)),
    ]


@pytest.mark.parametrize("media", [PB, JSON])
def test_otlp_invalid_spans_are_rejected_and_the_rest_kept(media):
    good = [pb_span(span_id=SPAN), pb_span(span_id=SPAN_2, parent_span_id=bytes(8))]
    bad = invalid_spans()
    request = request_of(good[0], *(span for _, span in bad), good[1])
    batch = decode_pb(request) if media == PB else decode_json(otlp_json(request))
    assert [s.span_id for s in batch.spans] == [SPAN, SPAN_2]
    assert batch.spans[1].parent_span_id is None
    expected: dict[str, int] = {}
    for reason, _ in bad:
        expected[reason] = expected.get(reason, 0) + 1
    assert reasons(batch) == expected
    assert batch.rejected_spans == len(bad)
    by_reason = {r.reason: r.message for r in batch.rejected}
    assert "span 'GET /api' (trace_id 00000000" in by_reason["invalid_trace_id"]
    assert batch.rejection_message().startswith("9 span(s) rejected: invalid_trace_id (2): ")


def test_otlp_json_malformed_spans_are_rejected_and_the_rest_kept():
    def span(**fields: Any) -> dict:
        base = {
            "traceId": TRACE.hex(),
            "spanId": SPAN.hex(),
            "name": "ok",
            "startTimeUnixNano": str(T0),
            "endTimeUnixNano": str(T0 + 1),
        }
        return base | fields

    spans = [
        span(),
        "not a span",
        span(name=5),
        span(kind=[1]),
        span(startTimeUnixNano="soon"),
        span(endTimeUnixNano=str(1 << 64)),
        span(attributes={"k": "v"}),
        span(attributes=[{"key": "k", "value": {"intValue": "1.5"}}]),
        span(attributes=[{"key": "k", "value": {"intValue": str(1 << 63)}}]),
        span(attributes=[{"key": "k", "value": {"boolValue": "true"}}]),
        span(attributes=[{"key": "k", "value": {"bytesValue": "***"}}]),
        span(attributes=[{"key": "k", "value": {"doubleValue": "fast"}}]),
        span(attributes=[{"key": 1, "value": {"stringValue": "v"}}]),
        span(events=[{"timeUnixNano": "x"}]),
        span(links={}),
        span(status="ERROR"),
        span(traceState=1),
        span(flags=-1),
    ]
    nested: dict = {"stringValue": "deep"}
    for _ in range(40):
        nested = {"arrayValue": {"values": [nested]}}
    spans.append(span(attributes=[{"key": "k", "value": nested}]))
    batch = decode_json({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
    assert len(batch.spans) == 1
    assert reasons(batch) == {"malformed_span": len(spans) - 1}


def test_otlp_protobuf_deeply_nested_value_rejects_the_span():
    value: Any = "deep"
    for _ in range(40):
        value = [value]
    batch = decode_pb(request_of(pb_span(attributes={"k": value}), pb_span(span_id=SPAN_2)))
    assert [s.span_id for s in batch.spans] == [SPAN_2]
    assert reasons(batch) == {"malformed_span": 1}


# --- OTLP: response bodies --------------------------------------------------------------------


def test_partial_success_bodies():
    assert encode_partial_success(0, "", PB) == b""
    assert encode_partial_success(0, "", JSON) == b"{}"
    response = ExportTraceServiceResponse.FromString(
        encode_partial_success(3, "3 span(s) rejected", PB)
    )
    assert response.partial_success.rejected_spans == 3
    assert response.partial_success.error_message == "3 span(s) rejected"
    assert json.loads(encode_partial_success(3, "bad ids", "application/json; charset=utf-8")) == {
        "partialSuccess": {"rejectedSpans": "3", "errorMessage": "bad ids"}
    }


def test_status_bodies():
    encoded = encode_status(3, "body is not valid JSON", PB)
    # google.rpc.Status on the wire: code = 1 (varint), message = 2 (string)
    assert encoded == b"\x08\x03\x12\x16body is not valid JSON"
    assert rpc_status_pb2.Status.FromString(encoded).message == "body is not valid JSON"
    assert json.loads(encode_status(8, "slow down", JSON)) == {"code": 8, "message": "slow down"}
    assert encode_status(3, "x", None) == b"\x08\x03\x12\x01x"  # unknown type: protobuf


# --- request bodies: size caps and gzip -------------------------------------------------------


@functools.cache
def _gzip_of_zeros(size: int, *, chunk: int = 1 << 20) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(chunk)
    parts = [compressor.compress(zeros) for _ in range(size // chunk)]
    return b"".join([*parts, compressor.flush()])


def test_identity_body_above_the_cap():
    with pytest.raises(PayloadTooLarge) as error:
        decode_otlp_traces(
            b"\x00" * 101, content_type=PB, content_encoding="identity", max_size=100, limits=LIMITS
        )
    assert error.value.http_status == 413


def test_gzip_bomb_declaring_its_size_is_refused_at_once():
    bomb = _gzip_of_zeros(128 << 20)  # ~125 KiB expanding to 128 MiB
    started = time.perf_counter()
    with pytest.raises(PayloadTooLarge, match="declares 134217728"):
        request_body.decode_body(bomb, content_encoding="gzip", max_size=1 << 20)
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize("members", [1, 64])
def test_gzip_bomb_hiding_its_size_stops_at_the_cap(members):
    # The trailer lies (or only describes the last member): inflation must stop at the cap.
    if members == 1:
        bomb = _gzip_of_zeros(128 << 20)
        bomb = bomb[:-4] + (100).to_bytes(4, "little")
    else:
        bomb = _gzip_of_zeros(4 << 20) * members
    cap = 4 << 20
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PayloadTooLarge, match="more than 4194304"):
            decode_otlp_traces(
                bomb, content_type=PB, content_encoding="gzip", max_size=cap, limits=LIMITS
            )
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 3 * cap


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "does not start with a gzip header"),
        (b"plain text", "does not start with a gzip header"),
        (gzip.compress(b"x" * 1000)[:-9], "truncated"),
        (gzip.compress(b"abc") + b"junk", "corrupt"),
        (gzip.compress(b"abc")[:-8] + b"\x00" * 4 + gzip.compress(b"abc")[-4:], "corrupt"),
        (gzip.compress(b"") * 1001, "more than 1000"),
    ],
)
def test_corrupt_gzip(body, fragment):
    with pytest.raises(DecodeError, match=fragment) as error:
        request_body.decode_body(body, content_encoding="gzip", max_size=(1 << 32) - 1)
    assert error.value.http_status == 400


def test_gzip_members_are_concatenated():
    body = gzip.compress(b"abc") + gzip.compress(b"") + gzip.compress(b"def")
    assert request_body.decode_body(body, content_encoding="x-gzip", max_size=6) == b"abcdef"


# --- Zipkin -----------------------------------------------------------------------------------

# What Istio's sidecars send with Envoy's zipkin tracer (B3, shared span context): an ingress
# gateway's server span and its client span to productpage, productpage's server span sharing
# that client's id, and a span of another trace with a 128-bit id and string timestamps (Envoy
# 1.12-1.13 serialized them as strings).
ENVOY_ZIPKIN = b"""[
{"traceId":"4f0c2b1a9e8d7c6b","id":"4f0c2b1a9e8d7c6b","kind":"SERVER",
 "name":"productpage.default.svc.cluster.local:9080/productpage",
 "timestamp":1700000000000000,"duration":52310,
 "localEndpoint":{"serviceName":"istio-ingressgateway.istio-system","ipv4":"10.244.0.12"},
 "tags":{"component":"proxy","downstream_cluster":"-","guid:x-request-id":"3ab0fc56-f92e-9c03-a087-1f23662699cb",
  "http.method":"GET","http.protocol":"HTTP/1.1","http.status_code":"503",
  "http.url":"http://bookinfo.example.com/productpage","node_id":"router~10.244.0.12~istio-ingressgateway-5b6f7c8d9-x2k4q.istio-system~istio-system.svc.cluster.local",
  "peer.address":"192.168.49.1","request_size":"0","response_flags":"UF","response_size":"91",
  "upstream_cluster":"outbound|9080||productpage.default.svc.cluster.local","user_agent":"curl/8.4.0",
  "error":"true","istio.canonical_service":"istio-ingressgateway","istio.mesh_id":"cluster.local",
  "istio.namespace":"istio-system"}},
{"traceId":"4f0c2b1a9e8d7c6b","parentId":"4f0c2b1a9e8d7c6b","id":"a1b2c3d4e5f60718","kind":"CLIENT",
 "name":"productpage.default.svc.cluster.local:9080/*","timestamp":1700000000000150,"duration":51800,
 "localEndpoint":{"serviceName":"istio-ingressgateway.istio-system","ipv4":"10.244.0.12"},
 "remoteEndpoint":{"ipv4":"10.244.0.15","port":9080},
 "tags":{"component":"proxy","http.method":"GET","http.status_code":"503","response_flags":"UF",
  "upstream_cluster":"outbound|9080||productpage.default.svc.cluster.local","error":"true",
  "peer.address":"10.244.0.15"}},
{"traceId":"4f0c2b1a9e8d7c6b","parentId":"4f0c2b1a9e8d7c6b","id":"a1b2c3d4e5f60718","kind":"SERVER",
 "shared":true,"name":"productpage.default.svc.cluster.local:9080/*",
 "timestamp":1700000000000300,"duration":51200,
 "localEndpoint":{"serviceName":"ProductPage.default","ipv4":"10.244.0.15","port":9080},
 "remoteEndpoint":{"serviceName":"istio-ingressgateway.istio-system","ipv4":"10.244.0.12","port":48312},
 "annotations":[{"timestamp":1700000000000310,"value":"sr"},{"timestamp":"1700000000051490","value":"ss"}],
 "tags":{"component":"proxy","http.status_code":"503","upstream_cluster":"inbound|9080||",
  "node_id":"sidecar~10.244.0.15~productpage-v1-6b746f74dc-8x9kq.default~default.svc.cluster.local",
  "error":"upstream connect error","istio.canonical_revision":"v1"}},
{"traceId":"5AF7183FB1D4CF5F8D3C0E6A2B9C4D1E","id":"0c1d2e3f4a5b6c7d","kind":"CLIENT","debug":true,
 "name":"ratings.default.svc.cluster.local:9080/*","timestamp":"1700000000100000","duration":"2100",
 "localEndpoint":{"serviceName":"reviews.default","ipv6":"fd00::15"},
 "remoteEndpoint":{"ipv6":"fd00::16","port":"9080"},
 "tags":{"component":"proxy","http.status_code":"200","response_flags":"-"}}
]"""


def envoy_zipkin_proto() -> bytes:
    message = zipkin_pb2.ListOfSpans()
    for span in json.loads(ENVOY_ZIPKIN):
        out = message.spans.add(
            trace_id=bytes.fromhex(span["traceId"]),
            id=bytes.fromhex(span["id"]),
            parent_id=bytes.fromhex(span.get("parentId", "")),
            kind=zipkin_pb2.Span.Kind.Value(span["kind"]),
            name=span["name"],
            timestamp=int(span["timestamp"]),
            duration=int(span["duration"]),
            debug=span.get("debug", False),
            shared=span.get("shared", False),
        )
        for name in ("localEndpoint", "remoteEndpoint"):
            endpoint = span.get(name)
            if endpoint is None:
                continue
            target = out.local_endpoint if name == "localEndpoint" else out.remote_endpoint
            target.service_name = endpoint.get("serviceName", "")
            if "ipv4" in endpoint:
                target.ipv4 = bytes(int(part) for part in endpoint["ipv4"].split("."))
            if "ipv6" in endpoint:
                target.ipv6 = bytes.fromhex("fd00" + "0" * 26 + endpoint["ipv6"][-2:])
            target.port = int(endpoint.get("port", 0))
        for annotation in span.get("annotations", []):
            out.annotations.add(timestamp=int(annotation["timestamp"]), value=annotation["value"])
        out.tags.update(span["tags"])
    return message.SerializeToString()


@pytest.mark.parametrize("media", [JSON, PB])
def test_zipkin_as_envoy_sends_it(media):
    body = ENVOY_ZIPKIN if media == JSON else envoy_zipkin_proto()
    batch = decode_zipkin(body, media)
    assert batch.rejected == []
    gateway, client, server, reviews = batch.spans
    trace_64 = bytes(8) + bytes.fromhex("4f0c2b1a9e8d7c6b")  # 64-bit ids are left-padded

    assert gateway.trace_id == trace_64
    assert (gateway.span_id, gateway.parent_span_id) == (trace_64[8:], None)
    assert (gateway.service, gateway.kind, gateway.shared) == (
        "istio-ingressgateway.istio-system",
        2,
        False,
    )
    assert (gateway.start_ns, gateway.duration_ns) == (1_700_000_000_000_000_000, 52_310_000)
    assert (gateway.status_code, gateway.status_message) == (2, "")  # error: "true"
    assert gateway.attributes["guid:x-request-id"] == "3ab0fc56-f92e-9c03-a087-1f23662699cb"
    assert gateway.attributes["error"] == "true"
    assert gateway.attributes["http.status_code"] == "503"  # Zipkin tags stay strings
    assert len(gateway.attributes) == 18
    assert gateway.resource == {
        "service.name": "istio-ingressgateway.istio-system",
        "net.host.ip": "10.244.0.12",
    }
    assert gateway.resource is client.resource  # one local endpoint, one resource
    assert (gateway.links, gateway.trace_state, gateway.flags, gateway.scope_name) == (
        [],
        "",
        0,
        "",
    )

    assert (client.kind, client.parent_span_id) == (3, trace_64[8:])
    assert client.attributes["net.sock.peer.addr"] == "10.244.0.15"
    assert client.attributes["net.peer.port"] == 9080
    assert "peer.service" not in client.attributes

    # B3 single span: productpage's server span shares the client's id
    assert (server.span_id, server.shared, server.kind) == (client.span_id, True, 2)
    assert server.service == "productpage.default"  # lowercased, as Zipkin does
    assert server.resource == {
        "service.name": "productpage.default",
        "net.host.ip": "10.244.0.15",
        "net.host.port": 9080,
    }
    assert (server.status_code, server.status_message) == (2, "upstream connect error")
    assert server.attributes["peer.service"] == "istio-ingressgateway.istio-system"
    assert server.attributes["net.peer.port"] == 48312
    assert server.events == [
        SpanEvent(1_700_000_000_000_310_000, "sr", {}),
        SpanEvent(1_700_000_000_051_490_000, "ss", {}),
    ]

    assert reviews.trace_id == bytes.fromhex("5af7183fb1d4cf5f8d3c0e6a2b9c4d1e")
    assert (reviews.start_ns, reviews.duration_ns) == (1_700_000_000_100_000_000, 2_100_000)
    assert reviews.resource == {"service.name": "reviews.default", "net.host.ip": "fd00::15"}
    assert reviews.attributes["net.sock.peer.addr"] == "fd00::16"
    assert reviews.attributes["net.peer.port"] == 9080
    assert reviews.attributes["zipkin.debug"] is True
    assert reviews.status_code == 0


def test_zipkin_json_and_protobuf_agree():
    assert decode_zipkin(ENVOY_ZIPKIN, JSON) == decode_zipkin(envoy_zipkin_proto(), PB)


def zipkin_span(**fields: Any) -> dict:
    span = {
        "traceId": TRACE.hex(),
        "id": SPAN.hex(),
        "name": "get /",
        "timestamp": 1_700_000_000_000_000,
        "duration": 10,
        "localEndpoint": {"serviceName": "web"},
    }
    span.update(fields)
    return {k: v for k, v in span.items() if v is not None}


def test_zipkin_lenient_fields():
    batch = decode_zipkin(
        [
            zipkin_span(traceId="abc", id="1", parentId="0000000000000000", kind="server"),
            zipkin_span(timestamp=1.7e15, duration=None, localEndpoint=None, kind="LOCAL"),
            zipkin_span(tags={"n": 5, "f": 1.5, "ok": True, "none": None}),
        ]
    )
    short, floaty, typed = batch.spans
    assert short.trace_id == bytes(14) + b"\x0a\xbc" and short.span_id == bytes(7) + b"\x01"
    assert (short.parent_span_id, short.kind) == (None, 2)
    assert (floaty.start_ns, floaty.duration_ns) == (1_700_000_000_000_000_000, 0)
    assert (floaty.service, floaty.kind, floaty.resource) == (
        "unknown_service",
        0,
        {"service.name": "unknown_service"},
    )
    assert typed.attributes == {"n": "5", "f": "1.5", "ok": "true", "none": ""}


def test_zipkin_opentelemetry_exporter_tags():
    (span,) = decode_zipkin(
        [
            zipkin_span(
                tags={
                    "otel.status_code": "ERROR",
                    "otel.status_description": "deadline exceeded",
                    "error": "deadline exceeded",
                    "otel.scope.name": "io.opentelemetry.grpc",
                    "otel.scope.version": "1.2",
                    "rpc.system": "grpc",
                }
            )
        ]
    ).spans
    assert (span.status_code, span.status_message) == (2, "deadline exceeded")
    assert (span.scope_name, span.scope_version) == ("io.opentelemetry.grpc", "1.2")
    assert span.attributes == {"error": "deadline exceeded", "rpc.system": "grpc"}


def test_zipkin_invalid_spans_are_rejected_and_the_rest_kept():
    spans = [
        zipkin_span(),
        zipkin_span(traceId="0" * 32),
        zipkin_span(traceId="x" * 16),
        zipkin_span(traceId="1" * 33),
        zipkin_span(id=None),
        zipkin_span(id="0" * 16),
        zipkin_span(parentId="12345678901234567"),
        zipkin_span(timestamp=None),
        zipkin_span(timestamp=0),
        zipkin_span(duration=-5),
        zipkin_span(timestamp=-5),
        zipkin_span(timestamp=MAX_TIME_NS // 1000),
        zipkin_span(timestamp="yesterday"),
        zipkin_span(tags=["a"]),
        zipkin_span(tags={"a": {"b": "c"}}),
        zipkin_span(localEndpoint="web"),
        zipkin_span(annotations=[{"timestamp": 1, "value": 7}]),
        zipkin_span(kind=2),
        5,
        zipkin_span(id=SPAN_2.hex()),
    ]
    batch = decode_zipkin(spans)
    assert [s.span_id for s in batch.spans] == [SPAN, SPAN_2]
    assert reasons(batch) == {
        "invalid_trace_id": 3,
        "invalid_span_id": 2,
        "invalid_parent_span_id": 1,
        "missing_timestamp": 2,
        "negative_duration": 1,
        "timestamp_out_of_range": 2,
        "malformed_span": 7,
    }
    message = next(r.message for r in batch.rejected if r.reason == "missing_timestamp")
    assert message == f"span 'get /' (trace_id {TRACE.hex()}, span_id {SPAN.hex()}): " + (
        "timestamp is missing"
    )


def test_zipkin_protobuf_invalid_ids_are_rejected():
    message = zipkin_pb2.ListOfSpans()
    for trace_id, span_id, parent in [
        (TRACE, SPAN, b""),
        (TRACE[:12], SPAN, b""),
        (TRACE, SPAN[:4], b""),
        (TRACE, SPAN, b"\x01"),
        (TRACE[8:], SPAN_2, SPAN),
    ]:
        message.spans.add(
            trace_id=trace_id, id=span_id, parent_id=parent, timestamp=1_700_000_000_000_000
        )
    message.spans.add(trace_id=TRACE, id=SPAN)  # no timestamp
    batch = decode_zipkin(message.SerializeToString(), PB)
    assert [(s.trace_id, s.span_id) for s in batch.spans] == [
        (TRACE, SPAN),
        (bytes(8) + TRACE[8:], SPAN_2),
    ]
    assert reasons(batch) == {
        "invalid_trace_id": 1,
        "invalid_span_id": 1,
        "invalid_parent_span_id": 1,
        "missing_timestamp": 1,
    }


def test_zipkin_limits():
    limits = SpanLimits(
        max_attributes_per_span=3, max_attribute_value_length=5, max_events_per_span=1
    )
    spans = [
        zipkin_span(
            tags={"a": "123456789", "b": "ok", "c": "x"},
            remoteEndpoint={"serviceName": "a-long-peer", "ipv4": "10.0.0.1", "port": 80},
            annotations=[
                {"timestamp": 1, "value": "a"},
                {"timestamp": 2, "value": "b"},
                {"value": "c"},
            ],
            localEndpoint={"serviceName": "frontend-service"},
        )
    ]
    for body, media in [(spans, JSON), (_zipkin_proto_of(spans), PB)]:
        batch = decode_zipkin(body, media, limits)
        (span,) = batch.spans
        assert span.attributes == {"a": "12345", "b": "ok", "c": "x"}
        assert span.service == "front"
        assert span.events == [SpanEvent(1000, "a", {})]
        assert batch.truncated_attributes == 2  # a, service.name (dropped ones are not counted)
        assert batch.dropped_attributes == 3  # peer.service, net.sock.peer.addr, net.peer.port
        assert batch.dropped_events == 2  # one over the limit, one without a timestamp


def _zipkin_proto_of(spans: list[dict]) -> bytes:
    message = zipkin_pb2.ListOfSpans()
    for span in spans:
        out = message.spans.add(
            trace_id=bytes.fromhex(span["traceId"]),
            id=bytes.fromhex(span["id"]),
            name=span["name"],
            timestamp=span["timestamp"],
            duration=span["duration"],
        )
        out.local_endpoint.service_name = span["localEndpoint"]["serviceName"]
        remote = span.get("remoteEndpoint", {})
        out.remote_endpoint.service_name = remote.get("serviceName", "")
        out.remote_endpoint.ipv4 = bytes(int(p) for p in remote.get("ipv4", "").split(".") if p)
        out.remote_endpoint.port = remote.get("port", 0)
        for annotation in span.get("annotations", []):
            out.annotations.add(timestamp=annotation.get("timestamp", 0), value=annotation["value"])
        out.tags.update(span.get("tags", {}))
    return message.SerializeToString()


@pytest.mark.parametrize(
    ("content_type", "body", "error"),
    [
        ("application/x-thrift", b"\x0c", UnsupportedMediaType),
        ("text/plain", b"[]", UnsupportedMediaType),
        (JSON, b"{}", DecodeError),
        (JSON, b'{"traceId": "a"}', DecodeError),
        (JSON, b"[", DecodeError),
        (PB, b"\x0a\x05\x0a\x03", DecodeError),
        (PB, b"\x0a\x04\x5a\x02\x0a\x80", DecodeError),  # a tag that is not a map entry
    ],
)
def test_zipkin_bad_requests(content_type, body, error):
    with pytest.raises(error):
        decode_zipkin(body, content_type)


def test_zipkin_content_type_absent_is_json_and_gzip_works():
    body = gzip.compress(json.dumps([zipkin_span()]).encode())
    batch = decode_zipkin_spans(
        body, content_type=None, content_encoding="gzip", max_size=MAX, limits=LIMITS
    )
    assert len(batch.spans) == 1
    with pytest.raises(UnsupportedMediaType):
        decode_zipkin_spans(
            body, content_type=JSON, content_encoding="br", max_size=MAX, limits=LIMITS
        )
    with pytest.raises(PayloadTooLarge):
        decode_zipkin_spans(
            body, content_type=JSON, content_encoding="gzip", max_size=10, limits=LIMITS
        )


# --- protobuf and JSON agree on random requests -----------------------------------------------

_keys = st.text(max_size=6)
_scalars = st.one_of(
    st.text(max_size=12),
    st.text(min_size=120, max_size=140),  # around the 1-byte length of the fast path
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.binary(max_size=8),
    st.none(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=6,
)
_attributes = st.dictionaries(_keys, _values, max_size=5)
_ids = st.one_of(st.binary(min_size=16, max_size=16), st.sampled_from([b"", bytes(16), b"\x01"]))
_span_ids = st.one_of(st.binary(min_size=8, max_size=8), st.sampled_from([b"", bytes(8)]))
_times = st.one_of(st.integers(0, (1 << 64) - 1), st.integers(T0, T0 + 10))


@st.composite
def random_pb_span(draw) -> PbSpan:
    span = PbSpan(
        trace_id=draw(_ids),
        span_id=draw(_span_ids),
        parent_span_id=draw(_span_ids),
        name=draw(st.text(max_size=8)),
        kind=draw(st.integers(0, 7)),
        start_time_unix_nano=draw(_times),
        end_time_unix_nano=draw(_times),
        trace_state=draw(st.text(max_size=5)),
        flags=draw(st.integers(0, (1 << 32) - 1)),
        status=Status(code=draw(st.integers(0, 3)), message=draw(st.text(max_size=5))),
    )
    span.attributes.extend(kv(k, v) for k, v in draw(_attributes).items())
    for _ in range(draw(st.integers(0, 2))):
        span.events.add(
            time_unix_nano=draw(_times),
            name=draw(st.text(max_size=4)),
            attributes=[kv(k, v) for k, v in draw(_attributes).items()],
        )
    for _ in range(draw(st.integers(0, 2))):
        span.links.add(
            trace_id=draw(_ids),
            span_id=draw(_span_ids),
            attributes=[kv(k, v) for k, v in draw(_attributes).items()],
        )
    return span


@st.composite
def random_request(draw) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(kv(k, v) for k, v in draw(_attributes).items())
        for _ in range(draw(st.integers(1, 2))):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = draw(st.text(max_size=4))
            scope_spans.spans.extend(draw(st.lists(random_pb_span(), max_size=3)))
    return request


def _comparable(batch: TraceBatch) -> tuple:
    return (
        batch.spans,
        sorted(reasons(batch).items()),
        batch.truncated_attributes,
        batch.dropped_attributes,
        batch.dropped_events,
        batch.dropped_links,
    )


@settings(FUZZ, max_examples=60)
@given(request=random_request(), limits=st.sampled_from([LIMITS, SpanLimits(2, 5, 1, 1)]))
def test_protobuf_and_json_agree_on_random_requests(request, limits):
    from_pb = decode_pb(request, limits)
    from_json = decode_json(otlp_json(request), limits)
    assert _comparable(from_pb) == _comparable(from_json)
    check_invariants(from_pb, limits)


# --- fuzzing: only DecodeError escapes --------------------------------------------------------


def check_invariants(batch: TraceBatch, limits: SpanLimits) -> None:
    assert all(r.reason and r.message and r.spans > 0 for r in batch.rejected)
    for span in batch.spans:
        assert len(span.trace_id) == 16 and any(span.trace_id)
        assert len(span.span_id) == 8 and any(span.span_id)
        assert span.parent_span_id is None or (len(span.parent_span_id) == 8)
        assert 0 < span.start_ns <= span.start_ns + span.duration_ns <= MAX_TIME_NS
        assert 0 <= span.kind <= 5 and 0 <= span.status_code <= 2
        assert len(span.attributes) <= limits.max_attributes_per_span
        assert len(span.events) <= limits.max_events_per_span
        assert len(span.links) <= limits.max_links_per_span
        for value in span.attributes.values():
            if isinstance(value, str | bytes):
                assert len(value) <= limits.max_attribute_value_length
        for text in (span.service, span.name, *span.attributes):
            text.encode()  # storable as UTF-8


def decode_or_refuse(decode: Any, body: bytes, **kwargs: Any) -> None:
    try:
        batch = decode(body, max_size=1 << 16, limits=LIMITS, **kwargs)
    except DecodeError as exc:
        assert str(exc)
        assert exc.http_status in (400, 413, 415)
        return
    check_invariants(batch, LIMITS)


@st.composite
def mutated(draw, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]))
        if action == "flip":
            data[i] ^= draw(st.integers(1, 255))
        elif action == "delete":
            del data[i]
        elif action == "insert":
            data.insert(i, draw(st.integers(0, 255)))
        elif action == "truncate":
            del data[i:]
        else:
            j = draw(st.integers(i, min(len(data), i + 16)))
            data[i:i] = data[i:j]
    return bytes(data)


@st.composite
def flipped(draw, base: bytes) -> bytes:
    """``base`` with a few bytes changed in place: lengths and layout mostly survive."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, data[i] ^ 0x01]))
    return bytes(data)


_json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 70), 1 << 70),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.sampled_from(["0" * 32, "1" * 16, "NaN", "-Infinity", "ERROR", "SERVER", "", "\ud800"]),
)
_json_any = st.recursive(
    _json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def json_mutated(draw, document: Any) -> bytes:
    """``document`` with a random part replaced by random JSON (reaches the field readers)."""
    document = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        paths: list[tuple[Any, Any]] = []
        stack = [document]
        while stack:
            node = stack.pop()
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in items:
                paths.append((node, key))
                if isinstance(value, dict | list):
                    stack.append(value)
        if not paths:
            break
        node, key = draw(st.sampled_from(paths))
        node[key] = draw(_json_any)
    return json.dumps(document).encode("utf-8", "surrogatepass")


SMALL_REQUEST = request_of(
    pb_span(
        parent_span_id=PARENT,
        attributes={"s": "v", "n": 1, "l": [1.5, "x"], "m": {"k": b"b"}},
        events=[PbSpan.Event(time_unix_nano=T0, name="e", attributes=[kv("a", "b")])],
        links=[PbSpan.Link(trace_id=TRACE_2, span_id=SPAN_2, attributes=[kv("a", 1)])],
        status=Status(code=2, message="m"),
        kind=2,
    ),
    pb_span(span_id=SPAN_2),
)
SMALL_PB = SMALL_REQUEST.SerializeToString()
SMALL_JSON = otlp_json(SMALL_REQUEST)
SMALL_ZIPKIN = json.loads(ENVOY_ZIPKIN)[1:3]


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=200),
        mutated(SMALL_PB),
        flipped(SMALL_PB),
        mutated(SMALL_PB).map(gzip.compress),
        mutated(gzip.compress(SMALL_PB)),
    )
)
def test_fuzz_otlp_protobuf(body):
    encoding = "gzip" if body[:2] == b"\x1f\x8b" else None
    decode_or_refuse(decode_otlp_traces, body, content_type=PB, content_encoding=encoding)


@FUZZ
@given(
    body=st.one_of(
        mutated(json.dumps(SMALL_JSON).encode()),
        json_mutated(SMALL_JSON),
        json_mutated(SMALL_JSON).map(gzip.compress),
        mutated(gzip.compress(json.dumps(SMALL_JSON).encode())),
    )
)
def test_fuzz_otlp_json(body):
    encoding = "gzip" if body[:2] == b"\x1f\x8b" else None
    decode_or_refuse(decode_otlp_traces, body, content_type=JSON, content_encoding=encoding)


@FUZZ
@given(body=st.one_of(st.binary(max_size=200), mutated(SMALL_PB), flipped(SMALL_PB)))
def test_fuzz_otlp_request_from_grpc(body):
    try:
        message = ExportTraceServiceRequest.FromString(body)
    except ProtobufDecodeError:
        # What the runtime cannot parse still reaches the decoder: the gRPC server hands it the
        # request bytes (ingest/otlp_grpc.py). It refuses them with a 400, or reads a consistent
        # batch (its view leaves the parts of a rejected span it never reads unparsed).
        try:
            batch = decode_otlp_protobuf(body, LIMITS)
        except DecodeError as exc:
            assert exc.http_status == 400
            assert "not a valid protobuf ExportTraceServiceRequest" in str(exc)
        else:
            check_invariants(batch, LIMITS)
    else:
        check_invariants(decode_otlp_request(message, LIMITS), LIMITS)


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=200),
        mutated(json.dumps(SMALL_ZIPKIN).encode()),
        json_mutated(SMALL_ZIPKIN),
        mutated(envoy_zipkin_proto()),
        flipped(envoy_zipkin_proto()),
        mutated(gzip.compress(envoy_zipkin_proto())),
    ),
    content_type=st.sampled_from([JSON, PB]),
)
def test_fuzz_zipkin(body, content_type):
    encoding = "gzip" if body[:2] == b"\x1f\x8b" else None
    decode_or_refuse(
        decode_zipkin_spans, body, content_type=content_type, content_encoding=encoding
    )


# --- the column mode (what the receiver asks for) agrees with the dicts -----------------------


def _with_entries(batch: TraceBatch) -> TraceBatch:
    """A batch of the column mode with each span's attributes put back as a dict."""
    if batch.attributes is None:  # went the dict way (a malformed span or attribute)
        assert all(s.attributes is not None for s in batch.spans)
        return batch
    assert all(s.attributes is None for s in batch.spans)
    assert len(batch.attributes.counts) == len(batch.spans)
    dicts = batch.attributes.dicts()
    spans = [dataclasses.replace(s, attributes=a) for s, a in zip(batch.spans, dicts, strict=True)]
    return dataclasses.replace(batch, spans=spans, attributes=None)


def _modes_agree(body: bytes, limits: SpanLimits) -> TraceBatch | None:
    """Decode ``body`` with and without columns: the same spans, rejections and counts, or
    the same DecodeError; returns the column mode's batch."""
    try:
        expected = decode_otlp_protobuf(body, limits)
    except DecodeError as exc:
        with pytest.raises(DecodeError) as raised:
            decode_otlp_protobuf(body, limits, columns=True)
        assert str(raised.value) == str(exc)
        return None
    got = decode_otlp_protobuf(body, limits, columns=True)
    assert _comparable(_with_entries(got)) == _comparable(expected)
    assert [r.message for r in got.rejected] == [r.message for r in expected.rejected]
    return got


@settings(FUZZ, max_examples=100)
@given(
    request=random_request(),
    limits=st.sampled_from([LIMITS, SpanLimits(2, 5, 1, 1), SpanLimits(0, 0, 0, 0)]),
)
def test_protobuf_columns_agree_with_dicts_on_random_requests(request, limits):
    _modes_agree(request.SerializeToString(), limits)


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_protobuf_columns_agree_with_dicts_on_mutated_bodies(data):
    body = data.draw(random_request()).SerializeToString()
    _modes_agree(data.draw(mutated(body)), LIMITS)


def test_protobuf_columns_edge_cases():
    limits = SpanLimits(max_attribute_value_length=2)
    repeated = pb_span()
    repeated.attributes.extend([kv("k", "long"), kv("k", "longer"), kv("j", "ok")])
    got = _modes_agree(request_of(repeated, service="s").SerializeToString(), limits)
    assert got is not None and got.attributes is not None
    assert got.attributes.dicts() == [{"k": "lo", "j": "ok"}]
    assert got.truncated_attributes == 2  # both "k"

    cached = [pb_span(span_id=bytes([i + 1]) * 8, attributes={"k": "long"}) for i in range(3)]
    got = _modes_agree(request_of(*cached).SerializeToString(), limits)
    assert got is not None and len(got.attributes.pairs) == 1 and got.truncated_attributes == 4

    deep: Any = "deep"
    for _ in range(40):
        deep = [deep]
    nested = request_of(
        pb_span(attributes={"k": deep}), pb_span(span_id=SPAN_2, attributes={"a": 1})
    )
    got = _modes_agree(nested.SerializeToString(), LIMITS)
    assert got is not None and got.attributes is None  # judged by the dict mode
    assert reasons(got) == {"malformed_span": 1}

    corrupt = request_of(pb_span(attributes={"k": "v"})).SerializeToString()
    corrupt = corrupt.replace(b"\x0a\x01k\x12\x03\x0a\x01v", b"\x0a\x01k\x12\x03\x0a\x01\xff")
    assert _modes_agree(corrupt, LIMITS) is None  # invalid UTF-8: the same DecodeError
