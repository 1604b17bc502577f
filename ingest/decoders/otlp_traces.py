"""OTLP trace export requests (``ExportTraceServiceRequest``): decoding, and the response bodies.

:func:`decode_otlp_traces` reads an OTLP/HTTP ``POST /v1/traces`` body, protobuf
(``application/x-protobuf``) or JSON (``application/json``), optionally gzip-compressed;
:func:`decode_otlp_request` reads the message the gRPC ``TraceService/Export`` handler already
parsed. Both give a :class:`~ingest.decoders.spans.TraceBatch`, with the limits and rejections of
:mod:`ingest.decoders.spans`. :func:`encode_partial_success` and :func:`encode_status` write the
success and error bodies in the request's content type, as OTLP/HTTP requires.

OTLP JSON is the protobuf JSON mapping with OTLP's exceptions, read leniently as the collector
does: trace and span ids are hex strings (not base64; either case), enums are integers (their
names, with or without the ``SPAN_KIND_``/``STATUS_CODE_`` prefix, are accepted too; unknown
values read as 0), 64-bit integers are decimal strings or numbers, keys are lowerCamelCase or
snake_case, ``null`` means absent and unknown fields are ignored. ``bytesValue`` is base64
(standard or URL-safe, padding optional). Lone UTF-16 surrogates (``"\\ud800"``), which cannot be
stored as UTF-8, become U+FFFD as Go's decoder does. A field of the wrong type inside a span
rejects that span (``malformed_span``); in the envelope (resource, scope) it fails the request.

How it stays fast (ingest hot path, ~1,000 spans a request): the protobuf runtime (upb) parses
the request through a view of the schema (``proto/otlp_trace_view.proto``) in which attributes
are encoded ``KeyValue`` bytes rather than messages, and the decoder walks it once, converting
each distinct attribute once per request (short string attributes are read straight from their
bytes; anything else goes through the real ``KeyValue`` class, which also judges what is
corrupt). Building two Python message objects per attribute was two thirds of the time. JSON is
parsed by the stdlib's C parser and walked as plain dicts and lists, all-string attribute lists
in one comprehension (``json_format.Parse`` alone takes ~10x as long); parsing is then the larger
part. ``.venv/bin/python bench/decode_traces.py`` measures both.

The receiver asks the protobuf decoder for **columns** (``columns=True``): instead of a dict
per span, the spans' encoded attributes are collected in one list (``list.extend``, in C),
numbered by first use in one pass, converted once per distinct one, and handed over as
:class:`~backend.tracing.spans.AttributeEntries` (pairs and one pair number per attribute),
from which the outbox makes its attribute columns without walking the spans again. A
request with a malformed span or attribute is decoded again without columns, so that
rejections, messages and counts are exactly those of the dict mode (the tests compare both).
"""

from __future__ import annotations

import base64
import binascii
import json
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from backend.tracing.spans import (
    KIND_BY_OTLP_NAME,
    KIND_OTLP_NAMES,
    AttributeEntries,
    Span,
    SpanColumns,
    SpanEvent,
    SpanLink,
)
from ingest.decoders import otlp_native, request_body
from ingest.decoders.errors import DecodeError, UnsupportedMediaType
from ingest.decoders.proto import otlp_trace_view_pb2, rpc_status_pb2
from ingest.decoders.spans import (
    MAX_TIME_NS,
    MAX_VALUE_DEPTH,
    UNKNOWN_SERVICE,
    ZERO_SPAN_ID,
    ZERO_TRACE_ID,
    SpanLimits,
    TraceBatch,
    TraceBatchBuilder,
    span_label,
    truncate_value,
)

__all__ = [
    "JSON",
    "PROTOBUF",
    "decode_otlp_protobuf",
    "decode_otlp_request",
    "decode_otlp_traces",
    "encode_partial_success",
    "encode_status",
    "otlp_media_type",
    "response_media_type",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}

_MAX_KIND = max(KIND_OTLP_NAMES)
_MAX_STATUS = 2
_MAX_UINT32 = (1 << 32) - 1
_MAX_UINT64 = (1 << 64) - 1
_MIN_INT64 = -(1 << 63)
_MAX_INT64 = (1 << 63) - 1
_STR = frozenset((str,))

# OTLP JSON names the kinds with or without their prefix ("SPAN_KIND_SERVER", "SERVER").
_KIND_NAMES = {
    **KIND_BY_OTLP_NAME,
    **{name.removeprefix("SPAN_KIND_"): number for name, number in KIND_BY_OTLP_NAME.items()},
}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_STATUS_NAMES.update(
    {name.removeprefix("STATUS_CODE_"): n for name, n in list(_STATUS_NAMES.items())}
)


class _Malformed(ValueError):
    """A field of a span (or of the envelope) has the wrong type or an unparsable value."""


# --- media types and response bodies ----------------------------------------------------------


def otlp_media_type(content_type: str | None) -> str:
    """:data:`PROTOBUF` or :data:`JSON` for a request's Content-Type; UnsupportedMediaType else."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    found = _MEDIA_TYPES.get(media_type)
    if found is None:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {content_type!r}: expected application/x-protobuf "
            "or application/json"
        )
    return found


def response_media_type(content_type: str | None) -> str:
    """The media type to answer a request of ``content_type`` in: JSON for JSON, else protobuf."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return JSON if media_type == JSON else PROTOBUF


def encode_partial_success(rejected_spans: int, message: str, content_type: str | None) -> bytes:
    """An ``ExportTraceServiceResponse`` body in the request's content type.

    ``partial_success`` is left unset when nothing was rejected and there is no message, as the
    OTLP specification asks of a full success.
    """
    if response_media_type(content_type) == JSON:
        partial: dict[str, str] = {}
        if rejected_spans:
            partial["rejectedSpans"] = str(rejected_spans)  # int64: a decimal string
        if message:
            partial["errorMessage"] = message
        body = {"partialSuccess": partial} if partial else {}
        return json.dumps(body, separators=(",", ":")).encode()
    response = ExportTraceServiceResponse()
    if rejected_spans or message:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected_spans, error_message=message)
        )
    return response.SerializeToString()


def encode_status(code: int, message: str, content_type: str | None) -> bytes:
    """A ``google.rpc.Status`` body (OTLP/HTTP errors) in the request's content type."""
    if response_media_type(content_type) == JSON:
        return json.dumps({"code": code, "message": message}, separators=(",", ":")).encode()
    return rpc_status_pb2.Status(code=code, message=message).SerializeToString()


# --- entry points -----------------------------------------------------------------------------


def decode_otlp_traces(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    max_size: int,
    limits: SpanLimits,
    columns: bool = False,
) -> TraceBatch:
    """Decode one OTLP/HTTP trace export body.

    ``max_size`` caps the body after decompression (PayloadTooLarge above it). Raises a
    :class:`DecodeError` subclass for an unsupported Content-Type or Content-Encoding, and for a
    body that is not an ``ExportTraceServiceRequest`` at all; bad spans are rejected one by one.
    """
    media_type = otlp_media_type(content_type)
    raw = request_body.decode_body(body, content_encoding=content_encoding, max_size=max_size)
    if media_type == PROTOBUF:
        return decode_otlp_protobuf(raw, limits, columns=columns)
    return _decode_json(raw, limits)


def decode_otlp_request(message: ExportTraceServiceRequest, limits: SpanLimits) -> TraceBatch:
    """The spans of an already parsed request (the gRPC ``TraceService/Export`` path).

    A gRPC server that can hand over the request bytes instead (an identity request
    deserializer) saves a serialization with :func:`decode_otlp_protobuf`.
    """
    return decode_otlp_protobuf(message.SerializeToString(), limits)


def decode_otlp_protobuf(raw: bytes, limits: SpanLimits, *, columns: bool = False) -> TraceBatch:
    """The spans of an encoded ``ExportTraceServiceRequest`` (uncompressed).

    ``columns``: the spans' attributes as :class:`~backend.tracing.spans.AttributeEntries` in
    ``TraceBatch.attributes`` (each span's ``attributes`` None) instead of a dict per span:
    what the outbox stores, without building and walking a dict per span."""
    try:
        if columns and (scan := otlp_native.scan(raw)) is not None and len(scan.spans):
            try:
                return _ProtobufDecoder(limits, columns=True).decode_scan(raw, scan)
            except _DictsNeeded:  # judged by the runtime path below
                pass
        request = otlp_trace_view_pb2.TracesView.FromString(raw)
        if columns:
            try:
                return _ProtobufDecoder(limits, columns=True).decode(request)
            except _DictsNeeded:  # a malformed span or attribute: judged as without columns
                pass
        return _ProtobufDecoder(limits).decode(request)
    except ProtobufDecodeError as exc:
        raise DecodeError(
            f"body is not a valid protobuf ExportTraceServiceRequest ({exc})"
        ) from None


# --- protobuf ---------------------------------------------------------------------------------


class _ProtobufDecoder:
    """Walks a ``TracesView`` (see ``proto/otlp_trace_view.proto``) once.

    Attributes arrive as encoded ``KeyValue`` bytes. :meth:`attributes` converts each distinct
    one once per request and keeps the result in ``_converted`` (the bytes → key, value and
    whether the value was truncated): within a request most attributes of a span repeat those
    of others (service, cluster, node, method...). Only immutable values are kept there.
    """

    __slots__ = ("_converted", "_counts", "_sent", "builder")

    def __init__(self, limits: SpanLimits, columns: bool = False) -> None:
        self.builder = TraceBatchBuilder(limits)
        self._converted: dict[bytes, tuple[str, Any, bool]] = {}
        # columns: the spans' encoded attributes, all in one list, and how many per span;
        # converted once per distinct one at the end (see _entries), no dict per span
        self._sent: list[bytes] | None = [] if columns else None
        self._counts: list[int] = []

    def decode(self, request: Any) -> TraceBatch:
        builder = self.builder
        for resource_spans in request.resource_spans:
            try:
                resource = self.attributes(resource_spans.resource.attributes)
            except _Malformed as exc:
                for scope_spans in resource_spans.scope_spans:
                    for _ in scope_spans.spans:
                        builder.reject("malformed_span", f"resource: {exc}")
                continue
            service = resource.get("service.name")
            if type(service) is not str or not service:
                service = UNKNOWN_SERVICE
            for scope_spans in resource_spans.scope_spans:
                scope = scope_spans.scope
                scope_name = scope.name
                scope_version = scope.version
                for span in scope_spans.spans:
                    self.span(span, resource, service, scope_name, scope_version)
        if self._sent is None:
            return builder.finish()
        entries = self._entries()
        batch = builder.finish()
        batch.attributes = entries
        return batch

    def _entries(self) -> AttributeEntries:
        """The spans' attributes (``_sent``) as entries over their distinct pairs, numbered by
        first use. Raises _DictsNeeded when one does not convert (the request is then decoded
        again without columns, which judges it)."""
        codes, distinct = _FirstUse.numbered(self._sent)
        return self._entries_of(codes, self._found(distinct), self._counts)

    def _found(self, distinct: list[bytes]) -> list[tuple[str, Any, bool]]:
        """The distinct encoded attributes converted (key, value, truncated); _DictsNeeded
        when one does not convert."""
        converted = self._converted
        convert = self._convert
        try:
            return [converted.get(key_value) or convert(key_value) for key_value in distinct]
        except (_Malformed, ProtobufDecodeError):
            raise _DictsNeeded from None

    def _found_scanned(
        self, raw: bytes, offsets: np.ndarray, lengths: np.ndarray
    ) -> list[tuple[str, Any, bool]]:
        """:meth:`_found` of the distinct attributes ``raw[offsets[i] : offsets[i] +
        lengths[i]]``: the plain string ones split by the native scan (each distinct key
        decoded once), the others as :meth:`_found` does."""
        split = otlp_native.string_attributes(raw, offsets, lengths)
        plain = split[:, 0] >= 0
        strings = self._plain_strings(raw, split[plain])
        if len(strings) == len(plain):
            return strings
        found: list = [None] * len(plain)
        others = np.flatnonzero(~plain).tolist()
        at, size = offsets.tolist(), lengths.tolist()
        pieces = [raw[at[i] : at[i] + size[i]] for i in others]
        for i, one in zip(others, self._found(pieces), strict=True):
            found[i] = one
        for i, one in zip(np.flatnonzero(plain).tolist(), strings, strict=True):
            found[i] = one
        return found

    def _plain_strings(self, raw: bytes, split: np.ndarray) -> list[tuple[str, str, bool]]:
        """(key, value, truncated) of plain string attributes, from the rows of
        :func:`otlp_native.string_attributes` (key offset and length, value offset and
        length); _DictsNeeded for one that is not UTF-8."""
        try:
            keys = _strings(raw, split[:, 0], split[:, 1])
            values = [raw[a : a + n].decode() for a, n in split[:, 2:].tolist()]
        except UnicodeDecodeError:
            raise _DictsNeeded from None
        max_length = self.builder.max_length
        if not values or max(map(len, values)) <= max_length:
            return list(zip(keys, values, repeat(False)))
        return [
            (k, v[:max_length], True) if len(v) > max_length else (k, v, False)
            for k, v in zip(keys, values, strict=True)
        ]

    def _entries_of(
        self, codes: np.ndarray, found: list[tuple[str, Any, bool]], counts
    ) -> AttributeEntries:
        """Entries over the distinct attributes ``found`` (converted; numbered by first use
        in ``codes``); counts the truncated ones."""
        truncated = np.fromiter(map(itemgetter(2), found), bool, len(found))
        if truncated.any():
            self.builder.truncated_attributes += int(truncated[codes].sum())
        pairs = [(key, value) for key, value, _ in found]
        return AttributeEntries(pairs, codes, counts, first_use=True)

    def decode_scan(self, raw: bytes, scan: otlp_native.Scan) -> TraceBatch:
        """The batch of a request the native scan read (columns mode): the same spans,
        entries and counts as :meth:`decode`, the spans as
        :class:`~backend.tracing.spans.SpanColumns` (no object per span), each distinct
        attribute, name or trace state converted once. Raises _DictsNeeded for what only
        the runtime path may judge (a malformed resource, attribute or string, a span over
        the attribute limit)."""
        builder = self.builder
        spans, attrs = scan.spans, scan.attributes
        counts = spans[:, otlp_native.S_ATTR_COUNT]
        if len(counts) and int(counts.max()) > builder.max_attributes:
            raise _DictsNeeded
        try:
            resources = []  # per resource: its attributes and service
            for at, size in scan.resources.tolist():
                resource = (
                    self.attributes(
                        otlp_trace_view_pb2.ResourceView.FromString(raw[at : at + size]).attributes
                    )
                    if at >= 0
                    else {}
                )
                service = resource.get("service.name")
                if type(service) is not str or not service:
                    service = UNKNOWN_SERVICE
                resources.append((resource, service))
            groups = []  # per scope: (resource, service, scope name, scope version)
            for index, at, size in scan.scopes.tolist():
                scope = otlp_trace_view_pb2.ScopeView.FromString(
                    raw[at : at + size] if at >= 0 else b""
                )
                groups.append((*resources[index], scope.name, scope.version))
            names = _numbered_strings(
                raw, spans[:, otlp_native.S_NAME], spans[:, otlp_native.S_NAME_LEN]
            )
            states = _numbered_strings(
                raw, spans[:, otlp_native.S_STATE], spans[:, otlp_native.S_STATE_LEN]
            )
            messages = _numbered_strings(
                raw, spans[:, otlp_native.S_MESSAGE], spans[:, otlp_native.S_MESSAGE_LEN]
            )
            numbered = otlp_native.number_strings(
                raw, attrs[:, otlp_native.A_OFF], attrs[:, otlp_native.A_LEN]
            )
        except (_Malformed, ProtobufDecodeError, UnicodeDecodeError):
            raise _DictsNeeded from None
        if numbered is None:  # (a degraded hash table: a dict numbers them)
            codes, distinct_bytes = _FirstUse.numbered([raw[a : a + n] for a, n in attrs.tolist()])
            found = self._found(distinct_bytes)
        else:
            codes, first = numbered
            distinct = attrs[first]
            found = self._found_scanned(
                raw, distinct[:, otlp_native.A_OFF], distinct[:, otlp_native.A_LEN]
            )
        entries = self._entries_of(codes, found, counts.tolist())
        kinds = spans[:, otlp_native.S_KIND]
        statuses = spans[:, otlp_native.S_STATUS]
        starts = spans[:, otlp_native.S_START]
        parents = spans[:, otlp_native.S_PARENT]
        has_parent = parents >= 0
        builder.spans = SpanColumns(
            _gather(raw, spans[:, otlp_native.S_TRACE], 16),
            _gather(raw, spans[:, otlp_native.S_SPAN], 8),
            _gather(raw, parents, 8),
            has_parent,
            spans[:, otlp_native.S_SCOPE].copy(),
            groups,
            *names,
            np.where((kinds >= 0) & (kinds <= _MAX_KIND), kinds, 0),
            starts.copy(),
            spans[:, otlp_native.S_END] - starts,
            np.where((statuses >= 0) & (statuses <= _MAX_STATUS), statuses, 0),
            *messages,
            *states,
            spans[:, otlp_native.S_FLAGS].copy(),
        )
        batch = builder.finish()
        batch.attributes = entries
        return batch

    def span(
        self,
        span: Any,
        resource: dict[str, Any],
        service: str,
        scope_name: str,
        scope_version: str,
    ) -> None:
        builder = self.builder
        trace_id = span.trace_id
        span_id = span.span_id
        parent: bytes | None = span.parent_span_id
        start = span.start_time_unix_nano
        end = span.end_time_unix_nano
        problem = None
        if len(trace_id) != 16 or trace_id == ZERO_TRACE_ID:
            problem = "invalid_trace_id", "trace_id must be 16 bytes, not all zero"
        elif len(span_id) != 8 or span_id == ZERO_SPAN_ID:
            problem = "invalid_span_id", "span_id must be 8 bytes, not all zero"
        elif parent and len(parent) != 8:
            problem = "invalid_parent_span_id", "parent_span_id must be 8 bytes or empty"
        elif not start:
            problem = "missing_timestamp", "start_time_unix_nano is missing"
        elif end < start:
            problem = "negative_duration", f"ends ({end}) before it starts ({start})"
        elif end > MAX_TIME_NS:
            problem = "timestamp_out_of_range", f"ends ({end}) after the year 2262"
        if problem is not None:
            reason, message = problem
            builder.reject(reason, f"{span_label(span.name, trace_id, span_id)}: {message}")
            return
        if not parent or parent == ZERO_SPAN_ID:
            parent = None
        sent = self._sent
        try:
            if sent is None:
                attributes = self.attributes(span.attributes)
            else:
                attributes = None
                encoded = span.attributes
            events = self.events(span.events) if len(span.events) else []
            links = self.links(span.links) if len(span.links) else []
        except _Malformed as exc:
            if sent is not None:
                raise _DictsNeeded from None
            builder.reject("malformed_span", f"{span_label(span.name, trace_id, span_id)}: {exc}")
            return
        if sent is not None:
            n = len(encoded)
            if n > builder.max_attributes:
                builder.dropped_attributes += n - builder.max_attributes
                n = builder.max_attributes
                encoded = encoded[:n]
            sent.extend(encoded)
            self._counts.append(n)
        kind = span.kind
        status = span.status
        code = status.code
        # positional (the field order of Span): a third of the cost of keywords, per span
        builder.spans.append(
            Span(
                trace_id,
                span_id,
                parent,
                service,
                span.name,
                kind if 0 <= kind <= _MAX_KIND else 0,
                start,
                end - start,
                code if 0 <= code <= _MAX_STATUS else 0,
                status.message,
                attributes,
                events,
                links,
                resource,
                scope_name,
                scope_version,
                span.trace_state,
                span.flags,
                False,
            )
        )

    def attributes(self, encoded: Any) -> dict[str, Any]:
        if not encoded:
            return {}
        builder = self.builder
        if len(encoded) > builder.max_attributes:
            builder.dropped_attributes += len(encoded) - builder.max_attributes
            encoded = encoded[: builder.max_attributes]
        converted = self._converted
        attributes: dict[str, Any] = {}
        for key_value in encoded:
            found = converted.get(key_value)
            if found is None:
                found = self._convert(key_value)
            key, value, truncated = found
            attributes[key] = value
            if truncated:
                builder.truncated_attributes += 1
        return attributes

    def _convert(self, key_value: bytes) -> tuple[str, Any, bool]:
        """Key, value (truncated to the limit) and whether it was, of an encoded KeyValue."""
        max_length = self.builder.max_length
        # The encoding protobuf runtimes produce for a short string attribute: field 1 (key),
        # then field 2 (AnyValue) holding field 1 (string_value), all lengths below 128.
        size = len(key_value)
        key_size = key_value[1] if size >= 6 else 0x80
        at = 2 + key_size
        if (
            key_size < 0x80
            and key_value[0] == 0x0A
            and at + 4 <= size
            and key_value[at] == 0x12
            and key_value[at + 1] == size - at - 2
            and key_value[at + 2] == 0x0A
            and key_value[at + 3] == size - at - 4
            and size - at - 2 < 0x80
        ):
            try:
                key = key_value[2:at].decode()
                value: Any = key_value[at + 4 :].decode()
            except UnicodeDecodeError:
                raise ProtobufDecodeError("invalid UTF-8 in an attribute") from None
            truncated = len(value) > max_length
            if truncated:
                value = value[:max_length]
            found = self._converted[key_value] = (key, value, truncated)
            return found
        # Anything else: the protobuf runtime (which also judges what is corrupt).
        message = KeyValue.FromString(key_value)
        value = _pb_value(message.value, 0)
        kind = type(value)
        if kind is str or kind is bytes:
            truncated = len(value) > max_length
            if truncated:
                value = value[:max_length]
        elif kind is list or kind is dict:
            limited = truncate_value(value, max_length)
            truncated = limited is not value
            return message.key, limited, truncated  # mutable: not shared between spans
        else:
            truncated = False
        found = self._converted[key_value] = (message.key, value, truncated)
        return found

    def events(self, events: Any) -> list[SpanEvent]:
        builder = self.builder
        out: list[SpanEvent] = []
        for event in events:
            time_ns = event.time_unix_nano
            if len(out) >= builder.max_events or time_ns > MAX_TIME_NS:
                builder.dropped_events += 1
                continue
            out.append(SpanEvent(time_ns, event.name, self.attributes(event.attributes)))
        return out

    def links(self, links: Any) -> list[SpanLink]:
        builder = self.builder
        out: list[SpanLink] = []
        for link in links:
            trace_id = link.trace_id
            span_id = link.span_id
            if (
                len(out) >= builder.max_links
                or len(trace_id) != 16
                or trace_id == ZERO_TRACE_ID
                or len(span_id) != 8
                or span_id == ZERO_SPAN_ID
            ):
                builder.dropped_links += 1
                continue
            out.append(
                SpanLink(trace_id, span_id, link.trace_state, self.attributes(link.attributes))
            )
        return out


class _FirstUse(dict):
    """Numbers its keys in the order they are first looked up (``map`` of ``__getitem__``
    over a list: one hash and look-up per item, in C)."""

    def __missing__(self, key: Any) -> int:
        number = self[key] = len(self)
        return number

    @classmethod
    def numbered(cls, items: list) -> tuple[np.ndarray, list]:
        """Each item's number (int64) and the distinct items, in order of first use."""
        numbers = cls()
        codes = np.fromiter(map(numbers.__getitem__, items), np.int64, len(items))
        return codes, list(numbers)


def _numbered_strings(
    raw: bytes, offsets: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """The UTF-8 strings ``raw[offsets[i] : offsets[i] + lengths[i]]`` numbered by first use:
    each one's number (int64) and the distinct strings, each decoded once
    (UnicodeDecodeError for one that is not UTF-8)."""
    numbered = otlp_native.number_strings(raw, offsets, lengths)
    if numbered is None:
        codes, pieces = _FirstUse.numbered(
            [raw[a : a + n] for a, n in zip(offsets.tolist(), lengths.tolist(), strict=True)]
        )
        return codes, [piece.decode() for piece in pieces]
    codes, first = numbered
    return codes, [
        raw[a : a + n].decode()
        for a, n in zip(offsets[first].tolist(), lengths[first].tolist(), strict=True)
    ]


def _strings(raw: bytes, offsets: np.ndarray, lengths: np.ndarray) -> list[str]:
    """The strings of :func:`_numbered_strings`, one per offset."""
    codes, distinct = _numbered_strings(raw, offsets, lengths)
    return list(map(distinct.__getitem__, codes.tolist()))


def _gather(raw: bytes, offsets: np.ndarray, size: int) -> bytes:
    """The ``size`` bytes at each offset of ``raw``, one after another (zeros for -1)."""
    if not len(offsets):
        return b""
    at = np.maximum(offsets, 0)[:, None] + np.arange(size)
    out = np.frombuffer(raw, np.uint8)[at]
    out[offsets < 0] = 0
    return out.tobytes()


class _DictsNeeded(Exception):
    """A request the column mode leaves to the dict mode (a malformed span or attribute)."""


def _pb_value(value: Any, depth: int) -> Any:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which == "bytes_value":
        return value.bytes_value
    if which == "array_value" or which == "kvlist_value":
        if depth >= MAX_VALUE_DEPTH:
            raise _Malformed(f"attribute value nested deeper than {MAX_VALUE_DEPTH} levels")
        if which == "array_value":
            return [_pb_value(item, depth + 1) for item in value.array_value.values]
        return {item.key: _pb_value(item.value, depth + 1) for item in value.kvlist_value.values}
    return None  # no value set (an OTLP "empty" value), or a profiles-only string_value_strindex


# --- JSON -------------------------------------------------------------------------------------


def _decode_json(raw: bytes, limits: SpanLimits) -> TraceBatch:
    document = request_body.parse_json(raw)
    if type(document) is not dict:
        raise DecodeError("body is not an OTLP JSON ExportTraceServiceRequest (not an object)")
    builder = TraceBatchBuilder(limits)
    all_resource_spans = _field(document, "resourceSpans", "resource_spans")
    try:
        for i, resource_spans in enumerate(_list(all_resource_spans, "resourceSpans")):
            _json_resource_spans(resource_spans, builder, f"resourceSpans[{i}]")
    except _Malformed as exc:
        raise DecodeError(f"invalid OTLP JSON ExportTraceServiceRequest: {exc}") from None
    return builder.finish()


def _json_resource_spans(resource_spans: Any, builder: TraceBatchBuilder, where: str) -> None:
    if type(resource_spans) is not dict:
        raise _Malformed(f"{where} must be an object")
    resource = _field(resource_spans, "resource", "resource")
    if resource is None:
        attributes: dict[str, Any] = {}
    elif type(resource) is dict:
        try:
            attributes = _json_attributes(resource.get("attributes"), builder, 0)
        except _Malformed as exc:
            raise _Malformed(f"{where}.resource: {exc}") from None
    else:
        raise _Malformed(f"{where}.resource must be an object")
    service = attributes.get("service.name")
    if type(service) is not str or not service:
        service = UNKNOWN_SERVICE
    all_scope_spans = _field(resource_spans, "scopeSpans", "scope_spans")
    scope_key = "scope"
    if all_scope_spans is None:  # OTLP before 1.0 (v0.19 and older)
        all_scope_spans = _field(
            resource_spans, "instrumentationLibrarySpans", "instrumentation_library_spans"
        )
        scope_key = "instrumentationLibrary"
    for j, scope_spans in enumerate(_list(all_scope_spans, f"{where}.scopeSpans")):
        here = f"{where}.scopeSpans[{j}]"
        if type(scope_spans) is not dict:
            raise _Malformed(f"{here} must be an object")
        scope = scope_spans.get(scope_key)
        if scope is None and scope_key != "scope":
            scope = scope_spans.get("instrumentation_library")
        scope_name = scope_version = ""
        if scope is not None:
            if type(scope) is not dict:
                raise _Malformed(f"{here}.scope must be an object")
            scope_name = _str(scope.get("name"), f"{here}.scope.name")
            scope_version = _str(scope.get("version"), f"{here}.scope.version")
        for span in _list(scope_spans.get("spans"), f"{here}.spans"):
            _json_span(span, builder, attributes, service, scope_name, scope_version)


def _json_span(
    span: Any,
    builder: TraceBatchBuilder,
    resource: dict[str, Any],
    service: str,
    scope_name: str,
    scope_version: str,
) -> None:
    if type(span) is not dict:
        builder.reject("malformed_span", f"a span is a JSON {type(span).__name__}, not an object")
        return
    name = span.get("name")
    raw_trace_id = _field(span, "traceId", "trace_id")
    raw_span_id = _field(span, "spanId", "span_id")
    trace_id = _hex_id(raw_trace_id, 16)
    if trace_id is None or trace_id == ZERO_TRACE_ID:
        builder.reject(
            "invalid_trace_id",
            f"{span_label(name, raw_trace_id, raw_span_id)}: traceId must be 32 hex digits, "
            "not all zero",
        )
        return
    span_id = _hex_id(raw_span_id, 8)
    if span_id is None or span_id == ZERO_SPAN_ID:
        builder.reject(
            "invalid_span_id",
            f"{span_label(name, raw_trace_id, raw_span_id)}: spanId must be 16 hex digits, "
            "not all zero",
        )
        return
    raw_parent = _field(span, "parentSpanId", "parent_span_id")
    parent: bytes | None = None
    if raw_parent is not None and raw_parent != "":
        parent = _hex_id(raw_parent, 8)
        if parent is None:
            builder.reject(
                "invalid_parent_span_id",
                f"{span_label(name, raw_trace_id, raw_span_id)}: parentSpanId must be "
                "16 hex digits or empty",
            )
            return
        if parent == ZERO_SPAN_ID:
            parent = None
    try:
        start = _uint(_field(span, "startTimeUnixNano", "start_time_unix_nano"), _MAX_UINT64)
        end = _uint(_field(span, "endTimeUnixNano", "end_time_unix_nano"), _MAX_UINT64)
        if not start:
            builder.reject(
                "missing_timestamp",
                f"{span_label(name, raw_trace_id, raw_span_id)}: startTimeUnixNano is missing",
            )
            return
        if end < start:
            builder.reject(
                "negative_duration",
                f"{span_label(name, raw_trace_id, raw_span_id)}: ends ({end}) "
                f"before it starts ({start})",
            )
            return
        if end > MAX_TIME_NS:
            builder.reject(
                "timestamp_out_of_range",
                f"{span_label(name, raw_trace_id, raw_span_id)}: ends ({end}) after the year 2262",
            )
            return
        status = span.get("status")
        code = 0
        message = ""
        if status is not None:
            if type(status) is not dict:
                raise _Malformed("status must be an object")
            code = _enum(status.get("code"), _STATUS_NAMES, _MAX_STATUS)
            message = _str(status.get("message"), "status.message")
        built = Span(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            service=service,
            name=_str(name, "name"),
            kind=_enum(span.get("kind"), _KIND_NAMES, _MAX_KIND),
            start_ns=start,
            duration_ns=end - start,
            status_code=code,
            status_message=message,
            attributes=_json_attributes(span.get("attributes"), builder, 0),
            events=_json_events(span.get("events"), builder),
            links=_json_links(span.get("links"), builder),
            resource=resource,
            scope_name=scope_name,
            scope_version=scope_version,
            trace_state=_str(_field(span, "traceState", "trace_state"), "traceState"),
            flags=_uint(span.get("flags"), _MAX_UINT32),
            shared=False,
        )
    except _Malformed as exc:
        builder.reject("malformed_span", f"{span_label(name, raw_trace_id, raw_span_id)}: {exc}")
        return
    builder.spans.append(built)


def _json_attributes(key_values: Any, builder: TraceBatchBuilder, depth: int) -> dict[str, Any]:
    if not key_values:
        if key_values is None or type(key_values) is list:
            return {}
        raise _Malformed("attributes must be an array")
    if type(key_values) is not list:
        raise _Malformed("attributes must be an array")
    if len(key_values) > builder.max_attributes:
        builder.dropped_attributes += len(key_values) - builder.max_attributes
        key_values = key_values[: builder.max_attributes]
    max_length = builder.max_length
    # Fast path: all attributes string-valued (Envoy's are), read and checked by C loops. Any
    # other shape (a missing key, a null, another value kind) takes the loop below.
    # (Repeated keys also take the loop, so that truncations are counted per attribute sent.)
    try:
        attributes: dict[str, Any] = {
            key_value["key"]: key_value["value"]["stringValue"] for key_value in key_values
        }
    except (KeyError, TypeError):
        pass
    else:
        values = attributes.values()
        if (
            len(attributes) == len(key_values)
            and _STR.issuperset(map(type, values))
            and _STR.issuperset(map(type, attributes))
        ):
            if max(map(len, values)) > max_length:
                for key, text in attributes.items():
                    if len(text) > max_length:
                        attributes[key] = text[:max_length]
                        builder.truncated_attributes += 1
            return attributes
    attributes = {}
    for key_value in key_values:
        if type(key_value) is not dict:
            raise _Malformed("an attribute must be an object")
        key = key_value.get("key")
        if type(key) is not str:
            if key is not None:
                raise _Malformed("attribute key must be a string")
            key = ""
        value = key_value.get("value")
        if type(value) is dict:
            text = value.get("stringValue")
            if type(text) is str:  # the common case, first
                if len(text) > max_length:
                    text = text[:max_length]
                    builder.truncated_attributes += 1
                attributes[key] = text
                continue
        converted = _json_value(value, depth)
        if converted is not None and type(converted) not in (int, float, bool):
            converted = builder.limit_value(converted)
        attributes[key] = converted
    return attributes


def _json_value(value: Any, depth: int) -> Any:
    if value is None:
        return None
    if type(value) is not dict:
        raise _Malformed("attribute value must be an object")
    for kind, item in value.items():
        if item is None:
            continue
        if kind == "stringValue" or kind == "string_value":
            return _str(item, "stringValue")
        if kind == "intValue" or kind == "int_value":
            return _int64(item)
        if kind == "doubleValue" or kind == "double_value":
            return _double(item)
        if kind == "boolValue" or kind == "bool_value":
            if type(item) is not bool:
                raise _Malformed("boolValue must be true or false")
            return item
        if kind == "bytesValue" or kind == "bytes_value":
            return _base64(item)
        if kind in ("arrayValue", "array_value", "kvlistValue", "kvlist_value"):
            if depth >= MAX_VALUE_DEPTH:
                raise _Malformed(f"attribute value nested deeper than {MAX_VALUE_DEPTH} levels")
            if type(item) is not dict:
                raise _Malformed(f"{kind} must be an object")
            values = item.get("values")
            if kind[0] == "a":
                return [_json_value(one, depth + 1) for one in _list(values, "arrayValue.values")]
            return _json_kvlist(values, depth + 1)
    return None  # no value set (an OTLP "empty" value), or fields we do not know


def _json_kvlist(key_values: Any, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key_value in _list(key_values, "kvlistValue.values"):
        if type(key_value) is not dict:
            raise _Malformed("a kvlistValue entry must be an object")
        key = key_value.get("key")
        out[_str(key, "kvlistValue key")] = _json_value(key_value.get("value"), depth)
    return out


def _json_events(events: Any, builder: TraceBatchBuilder) -> list[SpanEvent]:
    if not events and (events is None or type(events) is list):
        return []
    if type(events) is not list:
        raise _Malformed("events must be an array")
    out: list[SpanEvent] = []
    for event in events:
        if type(event) is not dict:
            raise _Malformed("an event must be an object")
        time_ns = _uint(_field(event, "timeUnixNano", "time_unix_nano"), _MAX_UINT64)
        name = _str(event.get("name"), "event name")
        if len(out) >= builder.max_events or time_ns > MAX_TIME_NS:
            builder.dropped_events += 1
            continue
        out.append(SpanEvent(time_ns, name, _json_attributes(event.get("attributes"), builder, 0)))
    return out


def _json_links(links: Any, builder: TraceBatchBuilder) -> list[SpanLink]:
    if not links and (links is None or type(links) is list):
        return []
    if type(links) is not list:
        raise _Malformed("links must be an array")
    out: list[SpanLink] = []
    for link in links:
        if type(link) is not dict:
            raise _Malformed("a link must be an object")
        trace_id = _hex_id(_field(link, "traceId", "trace_id"), 16)
        span_id = _hex_id(_field(link, "spanId", "span_id"), 8)
        if (
            len(out) >= builder.max_links
            or trace_id is None
            or trace_id == ZERO_TRACE_ID
            or span_id is None
            or span_id == ZERO_SPAN_ID
        ):
            builder.dropped_links += 1
            continue
        out.append(
            SpanLink(
                trace_id,
                span_id,
                _str(_field(link, "traceState", "trace_state"), "link traceState"),
                _json_attributes(link.get("attributes"), builder, 0),
            )
        )
    return out


# --- JSON scalars -----------------------------------------------------------------------------


def _field(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if type(value) is not list:
        raise _Malformed(f"{what} must be an array")
    return value


def _str(value: Any, what: str) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    raise _Malformed(f"{what} must be a string")


def _hex_id(value: Any, size: int) -> bytes | None:
    """``size`` bytes from ``2 * size`` hex digits; None when ``value`` is not that."""
    if type(value) is not str or len(value) != 2 * size:
        return None
    try:
        decoded = bytes.fromhex(value)
    except ValueError:
        return None
    # fromhex skips whitespace: a string of the right length with spaces decodes short
    return decoded if len(decoded) == size else None


def _integer(value: Any) -> int:
    kind = type(value)
    if kind is int:
        return value
    if kind is str:
        try:
            return int(value)
        except ValueError:
            raise _Malformed(f"{value[:40]!r} is not an integer") from None
    if kind is float and value.is_integer():
        return int(value)
    raise _Malformed(f"{json.dumps(value)[:40]} is not an integer")


def _uint(value: Any, maximum: int) -> int:
    if value is None:
        return 0
    number = _integer(value)
    if not 0 <= number <= maximum:
        raise _Malformed(f"{number} is out of range")
    return number


def _int64(value: Any) -> int:
    number = _integer(value)
    if not _MIN_INT64 <= number <= _MAX_INT64:
        raise _Malformed(f"intValue {number} is out of the int64 range")
    return number


def _double(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return value
    if kind is int or kind is str:  # strings: "NaN", "Infinity", "-Infinity", or a number
        try:
            return float(value)
        except (ValueError, OverflowError):
            raise _Malformed(f"doubleValue {str(value)[:40]!r} is not a float64") from None
    raise _Malformed("doubleValue must be a number")


def _base64(value: Any) -> bytes:
    if type(value) is not str:
        raise _Malformed("bytesValue must be a base64 string")
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed("bytesValue is not valid base64") from None


def _enum(value: Any, names: dict[str, int], maximum: int) -> int:
    kind = type(value)
    if kind is int:
        return value if 0 <= value <= maximum else 0
    if value is None:
        return 0
    if kind is str:
        if len(value) <= 3 and value.isdecimal():
            number = int(value)
            return number if number <= maximum else 0
        return names.get(value.strip().upper(), 0)
    if kind is float and value.is_integer():
        return int(value) if 0 <= value <= maximum else 0
    raise _Malformed("an enum must be an integer or a name")
