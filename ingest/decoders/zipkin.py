"""Zipkin v2 spans (``POST /api/v2/spans``), JSON or protobuf, as Envoy's zipkin tracer sends them.

:func:`decode_zipkin_spans` turns a body into a :class:`~ingest.decoders.spans.TraceBatch` of
the same :class:`~backend.tracing.spans.Span` model OTLP produces, with the limits and
rejections of :mod:`ingest.decoders.spans`. Bodies are ``application/json`` (a list of spans; a
missing Content-Type is read as JSON, Zipkin's default) or ``application/x-protobuf``
(``ListOfSpans``, see ``proto/zipkin.proto``), optionally gzip-compressed.

Mapping to the span model (decisions, so that Zipkin and OTLP data can be queried together):

* ids: ``traceId`` of 1-32 hex digits (either case; Envoy sends 16 for a 64-bit id, 32 for a
  128-bit one) and ``id``/``parentId`` of 1-16 are left-padded with zeros to 16/8 bytes, like
  Zipkin's own normalisation; protobuf ids are 8 or 16 bytes. An all-zero ``parentId`` is a root.
* ``timestamp``/``duration`` are microseconds, as numbers or decimal strings (Envoy 1.12-1.13 sent
  strings) or floats (Envoy's occasional ``1.6e+15``); a missing/zero ``timestamp`` rejects the
  span (``missing_timestamp``), a missing ``duration`` is 0.
* ``kind``: CLIENT→3, SERVER→2, PRODUCER→4, CONSUMER→5 (OTLP numbers); absent or unknown → 0
  (unspecified, not INTERNAL: Zipkin says absent means "local *or incomplete*", and keeping 0
  lets the Zipkin query API answer with no kind, as it received).
* ``service``: ``localEndpoint.serviceName`` **lowercased**, because Zipkin defines service names as
  lower-case labels and its server lowercases them on ingest and query (span names are kept as
  sent); absent → ``unknown_service`` as for OTLP. The resource holds ``service.name`` and the
  local ``ipv4`` (or ``ipv6``) and ``port`` as ``net.host.ip`` / ``net.host.port``; spans with
  the same local endpoint share one resource dict.
* ``remoteEndpoint`` becomes span attributes ``peer.service`` (its serviceName, lowercased),
  ``net.sock.peer.addr`` (ipv4, else ipv6) and ``net.peer.port``, unless a tag already has the key.
* ``tags`` become string attributes (numbers/booleans some clients send are turned into their JSON
  text). Status: a tag ``otel.status_code`` (OK/ERROR, what OpenTelemetry's Zipkin exporter
  writes) wins; otherwise a tag ``error`` makes ``status_code`` 2 with the tag's value as message
  (none when it is just ``"true"``, as Envoy sends). ``otel.status_code``,
  ``otel.status_description`` and ``otel.scope.name``/``version`` (``otel.library.*``) are moved
  to their fields; ``error`` stays an attribute.
* ``annotations`` become events (µs → ns) without attributes; one without a timestamp is dropped.
* ``shared`` is kept; ``debug: true`` becomes the attribute ``zipkin.debug``; ``flags`` is 0.

Speed: JSON is parsed by the stdlib's C parser and tags are checked with C-level loops
(``map``/``max``) rather than one by one. Protobuf is parsed through ``ListOfSpansView`` (in
``proto/zipkin.proto``), where tags and endpoints are encoded bytes, each distinct one converted
once per request: upb's Python map iteration costs about as much as the rest of a span.
``.venv/bin/python bench/decode_traces.py`` measures both.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from google.protobuf.message import DecodeError as ProtobufDecodeError

from backend.tracing.spans import (
    KIND_BY_ZIPKIN_NAME,
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_PRODUCER,
    KIND_SERVER,
    KIND_UNSPECIFIED,
    STATUS_ERROR,
    STATUS_OK,
    STATUS_UNSET,
    Span,
    SpanEvent,
)
from ingest.decoders import request_body
from ingest.decoders.errors import DecodeError, UnsupportedMediaType
from ingest.decoders.proto import zipkin_pb2
from ingest.decoders.spans import (
    MAX_TIME_NS,
    UNKNOWN_SERVICE,
    ZERO_SPAN_ID,
    ZERO_TRACE_ID,
    SpanLimits,
    TraceBatch,
    TraceBatchBuilder,
    span_label,
)

__all__ = ["JSON", "PROTOBUF", "decode_zipkin_spans", "zipkin_media_type"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA_TYPES = {"": JSON, JSON: JSON, PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF}

# zipkin.proto3.Span.Kind numbers → OTLP
_PROTO_KINDS = (KIND_UNSPECIFIED, KIND_CLIENT, KIND_SERVER, KIND_PRODUCER, KIND_CONSUMER)
_OTEL_STATUS = {"OK": STATUS_OK, "ERROR": STATUS_ERROR, "UNSET": STATUS_UNSET}
_MAX_MICROS = MAX_TIME_NS // 1000
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_STR = frozenset((str,))

# Endpoint as read from either encoding: (service name, ip, port); port 0 = unknown.
Endpoint = tuple[str, str, int]
_NO_ENDPOINT: Endpoint = ("", "", 0)


class _Malformed(ValueError):
    """A field of a span has the wrong type or an unparsable value."""


def zipkin_media_type(content_type: str | None) -> str:
    """:data:`JSON` or :data:`PROTOBUF` for a request's Content-Type; UnsupportedMediaType else."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    found = _MEDIA_TYPES.get(media_type)
    if found is None:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {content_type!r}: Zipkin v2 spans must be "
            "application/json or application/x-protobuf"
        )
    return found


def decode_zipkin_spans(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    max_size: int,
    limits: SpanLimits,
) -> TraceBatch:
    """Decode one Zipkin v2 ``POST /api/v2/spans`` body.

    ``max_size`` caps the body after decompression (PayloadTooLarge above it). Raises a
    :class:`DecodeError` subclass for an unsupported Content-Type or Content-Encoding, and for a
    body that is not a list of spans at all; bad spans are rejected one by one.
    """
    media_type = zipkin_media_type(content_type)
    raw = request_body.decode_body(body, content_encoding=content_encoding, max_size=max_size)
    decoder = _Decoder(limits)
    if media_type == PROTOBUF:
        try:
            message = zipkin_pb2.ListOfSpansView.FromString(raw)
            for span in message.spans:
                decoder.proto_span(span)
        except ProtobufDecodeError as exc:
            raise DecodeError(f"body is not a valid protobuf Zipkin ListOfSpans ({exc})") from None
    else:
        document = request_body.parse_json(raw)
        if type(document) is not list:
            raise DecodeError("body is not a Zipkin v2 JSON list of spans (not an array)")
        for span in document:
            decoder.json_span(span)
    return decoder.builder.finish()


class _Decoder:
    """The spans of one request, with what they share converted once per request.

    ``_resources``: local endpoint → (service, resource dict), shared by its spans.
    ``_tags``/``_endpoints`` (protobuf): encoded tag / endpoint → its decoded form.
    """

    __slots__ = ("_endpoints", "_resources", "_tags", "builder")

    def __init__(self, limits: SpanLimits) -> None:
        self.builder = TraceBatchBuilder(limits)
        self._resources: dict[Endpoint, tuple[str, dict[str, Any]]] = {}
        self._tags: dict[bytes, tuple[str, str, bool]] = {}
        self._endpoints: dict[bytes, Endpoint] = {}

    # --- JSON ---------------------------------------------------------------------------------

    def json_span(self, span: Any) -> None:
        builder = self.builder
        if type(span) is not dict:
            builder.reject(
                "malformed_span", f"a span is a JSON {type(span).__name__}, not an object"
            )
            return
        raw_trace_id = span.get("traceId")
        raw_span_id = span.get("id")
        raw_parent = span.get("parentId")
        name = span.get("name")
        try:
            if type(name) is not str:
                if name is not None:
                    raise _Malformed("name must be a string")
                name = ""
            kind = span.get("kind")
            if kind is not None:
                if type(kind) is not str:
                    raise _Malformed("kind must be a string")
                kind = KIND_BY_ZIPKIN_NAME.get(kind.upper(), KIND_UNSPECIFIED)
            tags = span.get("tags")
            if tags is None:
                tags = {}
            elif type(tags) is not dict:
                raise _Malformed("tags must be an object")
            elif tags:
                if len(tags) > builder.max_attributes:
                    builder.dropped_attributes += len(tags) - builder.max_attributes
                    tags = dict(list(tags.items())[: builder.max_attributes])
                values = tags.values()
                if not _STR.issuperset(map(type, values)):
                    for key, value in tags.items():
                        if type(value) is not str:
                            tags[key] = _tag_text(value, key)
                if values and max(map(len, values)) > builder.max_length:
                    self._truncate(tags)
            annotations = span.get("annotations")
            events: list[SpanEvent] = []
            if annotations:
                if type(annotations) is not list:
                    raise _Malformed("annotations must be an array")
                for annotation in annotations:
                    if type(annotation) is not dict:
                        raise _Malformed("an annotation must be an object")
                    value = annotation.get("value")
                    if type(value) is not str:
                        if value is not None:
                            raise _Malformed("annotation value must be a string")
                        value = ""
                    micros = _micros(annotation.get("timestamp"), "annotation timestamp")
                    events.append(SpanEvent(micros or 0, value, {}))
            self._add(
                _hex_id(raw_trace_id, 16),
                _hex_id(raw_span_id, 8),
                b"" if raw_parent is None or raw_parent == "" else _hex_id(raw_parent, 8),
                kind or KIND_UNSPECIFIED,
                name,
                _micros(span.get("timestamp"), "timestamp"),
                _micros(span.get("duration"), "duration"),
                _json_endpoint(span.get("localEndpoint"), "localEndpoint"),
                _json_endpoint(span.get("remoteEndpoint"), "remoteEndpoint"),
                events,
                tags,
                span.get("debug") is True,
                span.get("shared") is True,
                (name, raw_trace_id, raw_span_id),
            )
        except _Malformed as exc:
            builder.reject(
                "malformed_span", f"{span_label(name, raw_trace_id, raw_span_id)}: {exc}"
            )

    def _truncate(self, tags: dict[str, str]) -> None:
        max_length = self.builder.max_length
        for key, value in tags.items():
            if len(value) > max_length:
                tags[key] = value[:max_length]
                self.builder.truncated_attributes += 1

    # --- protobuf (ListOfSpansView) -----------------------------------------------------------

    def proto_span(self, span: Any) -> None:
        trace_id = span.trace_id
        if len(trace_id) == 8:
            trace_id = bytes(8) + trace_id
        elif len(trace_id) != 16:
            trace_id = None
        span_id = span.id
        if len(span_id) != 8:
            span_id = None
        parent = span.parent_id
        if parent and len(parent) != 8:
            parent = None
        kind = span.kind
        tags: dict[str, str] = {}
        encoded_tags = span.tags
        if encoded_tags:
            if len(encoded_tags) > self.builder.max_attributes:
                self.builder.dropped_attributes += len(encoded_tags) - self.builder.max_attributes
                encoded_tags = encoded_tags[: self.builder.max_attributes]
            known = self._tags
            for encoded in encoded_tags:
                found = known.get(encoded)
                if found is None:
                    found = self._tag(encoded)
                key, value, truncated = found
                tags[key] = value
                if truncated:
                    self.builder.truncated_attributes += 1
        local = span.local_endpoint
        remote = span.remote_endpoint
        self._add(
            trace_id,
            span_id,
            parent,
            _PROTO_KINDS[kind] if 0 <= kind < len(_PROTO_KINDS) else KIND_UNSPECIFIED,
            span.name,
            span.timestamp or None,
            span.duration,
            (self._endpoints.get(local) or self._endpoint(local)) if local else None,
            (self._endpoints.get(remote) or self._endpoint(remote)) if remote else None,
            [SpanEvent(a.timestamp, a.value, {}) for a in span.annotations]
            if span.annotations
            else [],
            tags,
            span.debug,
            span.shared,
            (span.name, span.trace_id, span.id),
        )

    def _tag(self, encoded: bytes) -> tuple[str, str, bool]:
        """Key, value (truncated to the limit) and whether it was, of an encoded tag."""
        try:
            tag = zipkin_pb2.Tag.FromString(encoded)
        except ProtobufDecodeError:
            raise ProtobufDecodeError("a tag is not a valid map entry") from None
        value = tag.value
        truncated = len(value) > self.builder.max_length
        if truncated:
            value = value[: self.builder.max_length]
        found = self._tags[encoded] = (tag.key, value, truncated)
        return found

    def _endpoint(self, encoded: bytes) -> Endpoint:
        endpoint = zipkin_pb2.Endpoint.FromString(encoded)
        ip = ""
        if len(endpoint.ipv4) == 4:
            ip = socket.inet_ntop(socket.AF_INET, endpoint.ipv4)
        elif len(endpoint.ipv6) == 16:
            ip = socket.inet_ntop(socket.AF_INET6, endpoint.ipv6)
        port = endpoint.port
        found = self._endpoints[encoded] = (
            endpoint.service_name,
            ip,
            port if 0 < port <= 65535 else 0,
        )
        return found

    # --- both ---------------------------------------------------------------------------------

    def _add(
        self,
        trace_id: bytes | None,
        span_id: bytes | None,
        parent: bytes | None,
        kind: int,
        name: str,
        timestamp: int | None,
        duration: int | None,
        local: Endpoint | None,
        remote: Endpoint | None,
        events: list[SpanEvent],
        tags: dict[str, Any],
        debug: bool,
        shared: bool,
        label: tuple[Any, Any, Any],
    ) -> None:
        """Validate and store one span; ``tags`` are strings within the limits.

        ``trace_id``/``span_id`` None: invalid as sent; ``parent`` None: invalid, ``b""``: none;
        ``timestamp``/``duration`` in µs, None: absent.
        """
        builder = self.builder
        duration = duration or 0
        problem = None
        if trace_id is None or trace_id == ZERO_TRACE_ID:
            problem = "invalid_trace_id", "traceId must be 16 or 32 hex digits, not all zero"
        elif span_id is None or span_id == ZERO_SPAN_ID:
            problem = "invalid_span_id", "id must be 16 hex digits, not all zero"
        elif parent is None:
            problem = "invalid_parent_span_id", "parentId must be 16 hex digits or absent"
        elif not timestamp:
            problem = "missing_timestamp", "timestamp is missing"
        elif duration < 0:
            problem = "negative_duration", f"duration {duration} is negative"
        elif not 0 < timestamp <= _MAX_MICROS - duration:
            problem = (
                "timestamp_out_of_range",
                f"timestamp {timestamp} + duration {duration} µs is not between 1970 and 2262",
            )
        if problem is not None:
            reason, message = problem
            builder.reject(reason, f"{span_label(*label)}: {message}")
            return
        if events:
            kept = [event for event in events if 0 < event.time_ns <= _MAX_MICROS]
            if len(kept) > builder.max_events:
                kept = kept[: builder.max_events]
            builder.dropped_events += len(events) - len(kept)
            for event in kept:
                event.time_ns *= 1000
            events = kept

        if local is None:
            local = _NO_ENDPOINT
        cached = self._resources.get(local)
        if cached is None:
            cached = self._resources[local] = self._resource(local)
        service, resource = cached

        status_code = STATUS_UNSET
        status_message = ""
        scope_name = scope_version = ""
        if tags:
            if "error" in tags:
                status_code = STATUS_ERROR
                error = tags["error"]
                status_message = "" if error.lower() in ("", "true") else error
            if "otel.status_code" in tags:
                status_code = _OTEL_STATUS.get(tags.pop("otel.status_code").upper(), STATUS_UNSET)
                description = tags.pop("otel.status_description", "")
                status_message = description if status_code == STATUS_ERROR else ""
            if "otel.scope.name" in tags or "otel.library.name" in tags:
                library_name = tags.pop("otel.library.name", "")
                library_version = tags.pop("otel.library.version", "")
                scope_name = tags.pop("otel.scope.name", "") or library_name
                scope_version = tags.pop("otel.scope.version", "") or library_version
        attributes: dict[str, Any] = tags
        if remote is not None or debug:
            extra: list[tuple[str, Any]] = []
            if remote is not None:
                peer_service, peer_ip, peer_port = remote
                if peer_service and "peer.service" not in attributes:
                    extra.append(("peer.service", peer_service.lower()))
                if peer_ip and "net.sock.peer.addr" not in attributes:
                    extra.append(("net.sock.peer.addr", peer_ip))
                if peer_port and "net.peer.port" not in attributes:
                    extra.append(("net.peer.port", peer_port))
            if debug:
                extra.append(("zipkin.debug", True))
            for key, value in extra:
                if len(attributes) >= builder.max_attributes:
                    builder.dropped_attributes += 1
                elif type(value) is str and len(value) > builder.max_length:
                    attributes[key] = builder.limit_value(value)
                else:
                    attributes[key] = value

        # positional (the field order of Span): a third of the cost of keywords, per span
        builder.spans.append(
            Span(
                trace_id,
                span_id,
                parent if parent and parent != ZERO_SPAN_ID else None,
                service,
                name,
                kind,
                timestamp * 1000,
                duration * 1000,
                status_code,
                status_message,
                attributes,
                events,
                [],
                resource,
                scope_name,
                scope_version,
                "",
                0,
                shared,
            )
        )

    def _resource(self, local: Endpoint) -> tuple[str, dict[str, Any]]:
        service_name, ip, port = local
        service = service_name.lower() if service_name else UNKNOWN_SERVICE
        resource: dict[str, Any] = {"service.name": service}
        if ip:
            resource["net.host.ip"] = ip
        if port:
            resource["net.host.port"] = port
        resource = self.builder.limit_attributes(resource)
        return resource["service.name"], resource


# --- fields -----------------------------------------------------------------------------------


def _hex_id(value: Any, size: int) -> bytes | None:
    """``size`` bytes from 1 to ``2 * size`` hex digits, left-padded; None when not that."""
    if type(value) is not str or not 0 < len(value) <= 2 * size:
        return None
    if len(value) < 2 * size:
        if not _HEX_DIGITS.issuperset(value):
            return None
        value = value.rjust(2 * size, "0")
    try:
        decoded = bytes.fromhex(value)
    except ValueError:
        return None
    # fromhex skips whitespace: a string of the right length with spaces decodes short
    return decoded if len(decoded) == size else None


def _micros(value: Any, what: str) -> int | None:
    """Microseconds from a number or a decimal string (maybe negative); None when absent."""
    kind = type(value)
    if kind is int:
        return value
    if value is None:
        return None
    if kind is str:
        try:
            return int(value)
        except ValueError:
            raise _Malformed(f"{what} {value[:40]!r} is not an integer") from None
    if kind is float and value == value and abs(value) != float("inf"):
        return round(value)
    raise _Malformed(f"{what} must be a number of microseconds")


def _tag_text(value: Any, key: str) -> str:
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int or type(value) is float:
        return json.dumps(value)
    if value is None:
        return ""
    raise _Malformed(f"tag {key[:40]!r} must be a string")


def _json_endpoint(endpoint: Any, what: str) -> Endpoint | None:
    if endpoint is None:
        return None
    if type(endpoint) is not dict:
        raise _Malformed(f"{what} must be an object")
    service = endpoint.get("serviceName")
    if type(service) is not str:
        if service is not None:
            raise _Malformed(f"{what}.serviceName must be a string")
        service = ""
    ip = endpoint.get("ipv4")
    if type(ip) is not str or not ip:
        ip = endpoint.get("ipv6")
        if type(ip) is not str:
            ip = ""
    port = endpoint.get("port")
    if type(port) is not int:
        port = int(port) if type(port) is str and port.isdigit() and len(port) <= 5 else 0
    if not 0 < port <= 65535:
        port = 0
    return service, ip, port
