"""The batch every trace decoder produces, and the limits applied while decoding.

:mod:`ingest.decoders.otlp_traces` (OTLP protobuf/JSON, HTTP and gRPC) and
:mod:`ingest.decoders.zipkin` (Zipkin v2 JSON/protobuf) both turn a request into a
:class:`TraceBatch` of :class:`backend.tracing.spans.Span` (the tracing domain's span model, a
leaf module without Django), so that storage and derived telemetry see one model whatever the
sender spoke. Ids are raw bytes (trace 16, span 8; Zipkin's 64-bit trace ids left-padded with
zeros), times are epoch nanoseconds, ``kind`` and ``status_code`` use OTLP's enum numbers.

Attribute values keep their OTLP types: ``str``, ``int``, ``float``, ``bool``, ``bytes``, ``list``
(an OTLP array), ``dict`` (an OTLP kvlist) and ``None`` (an AnyValue with no value set). Spans of
one resource share one ``resource`` dict: treat it as read-only.

Limits policy (:class:`SpanLimits`, like the OpenTelemetry SDK's span limits), applied to span,
event, link and resource attributes alike:

* a string (or bytes) value longer than ``max_attribute_value_length`` is **truncated** to that
  many characters (bytes); in arrays and kvlists every element is, and the attribute counts once
  in ``TraceBatch.truncated_attributes``;
* attributes beyond ``max_attributes_per_span`` (in the order sent) are **dropped** and counted in
  ``TraceBatch.dropped_attributes``;
* events beyond ``max_events_per_span`` and links beyond ``max_links_per_span`` are dropped and
  counted in ``dropped_events`` / ``dropped_links``; so are a link whose ids are invalid and an
  event whose time is past 2**63 - 1 ns (or a Zipkin annotation without a timestamp).

Truncating and dropping keep the span. A span itself is **rejected** (left out of
``TraceBatch.spans``, counted in ``TraceBatch.rejected`` by reason, the rest of the batch kept)
when it cannot be stored meaningfully:

* ``invalid_trace_id``: not 16 bytes (Zipkin: 8 or 16, or 1-32 hex digits), or all zeros;
* ``invalid_span_id``: not 8 bytes, or all zeros;
* ``invalid_parent_span_id``: present but not 8 bytes (all zeros reads as "no parent");
* ``missing_timestamp``: no start time (0 or absent);
* ``negative_duration``: the end is before the start (an absent end time included);
* ``timestamp_out_of_range``: the end is past 2**63 - 1 ns (year 2262: no int64 column holds it),
  or (Zipkin) the timestamp is negative;
* ``malformed_span``: (JSON) a field of the wrong type or an unparsable value; (both) an
  attribute value nested deeper than ``MAX_VALUE_DEPTH`` arrays/kvlists.

Whatever is wrong with the request as a whole (media type, compression, size, corrupt encoding)
raises a :class:`~ingest.decoders.errors.DecodeError` subclass instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.tracing.spans import AttributeEntries, Span

__all__ = [
    "MAX_TIME_NS",
    "MAX_VALUE_DEPTH",
    "UNKNOWN_SERVICE",
    "SpanLimits",
    "SpanRejection",
    "TraceBatch",
    "TraceBatchBuilder",
    "span_label",
    "truncate_value",
]

# The service name of a resource without service.name, as the OpenTelemetry resource spec says.
UNKNOWN_SERVICE = "unknown_service"

# Nesting depth of OTLP array/kvlist values beyond which a value is malformed (the protobuf
# runtime stops at 100 levels of messages; this keeps our own recursion far from Python's limit).
MAX_VALUE_DEPTH = 32

# Times are epoch nanoseconds that must fit an int64 (storage columns): up to the year 2262.
MAX_TIME_NS = (1 << 63) - 1

ZERO_TRACE_ID = bytes(16)
ZERO_SPAN_ID = bytes(8)


@dataclass(frozen=True, slots=True)
class SpanLimits:
    max_attributes_per_span: int = 128
    max_attribute_value_length: int = 4096
    max_events_per_span: int = 128
    max_links_per_span: int = 128


@dataclass(slots=True)
class SpanRejection:
    """Spans rejected for one reason; ``message`` describes the first one."""

    reason: str  # short machine code, e.g. "invalid_trace_id" (see the module docstring)
    message: str  # human readable, names the span
    spans: int


@dataclass(slots=True)
class TraceBatch:
    """What one request carried, within the limits (see the module docstring).

    ``attributes``, when set (the OTLP protobuf decoder asked for columns), holds the spans'
    attributes, one entry list per span of ``spans`` in order, and the spans' own
    ``attributes`` are None."""

    spans: list[Span]
    rejected: list[SpanRejection]
    truncated_attributes: int
    dropped_attributes: int
    dropped_events: int = 0
    dropped_links: int = 0
    attributes: AttributeEntries | None = None

    @property
    def rejected_spans(self) -> int:
        return sum(r.spans for r in self.rejected)

    def rejection_message(self) -> str:
        """One line for OTLP's ``partial_success.error_message`` (empty if nothing was rejected)."""
        if not self.rejected:
            return ""
        parts = [f"{r.reason} ({r.spans}): {r.message}" for r in self.rejected]
        return f"{self.rejected_spans} span(s) rejected: " + "; ".join(parts)


class TraceBatchBuilder:
    """Collects the spans of one request, applying :class:`SpanLimits` and counting rejections.

    The decoders call :meth:`limit_attributes` (or inline the same checks on their hot path),
    append to :attr:`spans`, call :meth:`reject` for spans they leave out and finally
    :meth:`finish`.
    """

    __slots__ = (
        "_rejected",
        "dropped_attributes",
        "dropped_events",
        "dropped_links",
        "max_attributes",
        "max_events",
        "max_length",
        "max_links",
        "spans",
        "truncated_attributes",
    )

    def __init__(self, limits: SpanLimits) -> None:
        self.max_attributes = max(0, limits.max_attributes_per_span)
        self.max_length = max(0, limits.max_attribute_value_length)
        self.max_events = max(0, limits.max_events_per_span)
        self.max_links = max(0, limits.max_links_per_span)
        self.spans: list[Span] = []
        self.truncated_attributes = 0
        self.dropped_attributes = 0
        self.dropped_events = 0
        self.dropped_links = 0
        self._rejected: dict[str, SpanRejection] = {}

    def reject(self, reason: str, message: str) -> None:
        rejection = self._rejected.get(reason)
        if rejection is None:
            self._rejected[reason] = SpanRejection(reason, message, 1)
        else:
            rejection.spans += 1

    def limit_attributes(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """``attributes`` within the limits (modified in place, or a shorter copy), counted."""
        extra = len(attributes) - self.max_attributes
        if extra > 0:
            self.dropped_attributes += extra
            attributes = dict(list(attributes.items())[: self.max_attributes])
        max_length = self.max_length
        for key, value in attributes.items():
            kind = type(value)
            if kind is str or kind is bytes:
                if len(value) > max_length:
                    attributes[key] = value[:max_length]
                    self.truncated_attributes += 1
            elif kind is list or kind is dict:
                limited = self.limit_value(value)
                if limited is not value:
                    attributes[key] = limited
        return attributes

    def limit_value(self, value: Any) -> Any:
        """``value`` truncated to the length limit, counted once; ``value`` itself if it fits."""
        limited = truncate_value(value, self.max_length)
        if limited is not value:
            self.truncated_attributes += 1
        return limited

    def finish(self) -> TraceBatch:
        return TraceBatch(
            spans=self.spans,
            rejected=list(self._rejected.values()),
            truncated_attributes=self.truncated_attributes,
            dropped_attributes=self.dropped_attributes,
            dropped_events=self.dropped_events,
            dropped_links=self.dropped_links,
        )


def truncate_value(value: Any, max_length: int) -> Any:
    """``value`` with every str/bytes in it cut to ``max_length``; ``value`` itself if none was."""
    kind = type(value)
    if kind is str or kind is bytes:
        return value[:max_length] if len(value) > max_length else value
    if kind is list:
        items = [truncate_value(item, max_length) for item in value]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            return items
        return value
    if kind is dict:
        entries = {key: truncate_value(item, max_length) for key, item in value.items()}
        if any(entries[key] is not item for key, item in value.items()):
            return entries
        return value
    return value


def span_label(name: object, trace_id: object, span_id: object) -> str:
    """How rejection messages name a span: its name and ids as sent, cut short."""

    def show(value: object) -> str:
        if isinstance(value, bytes | bytearray):
            value = value.hex()
        text = value if isinstance(value, str) else repr(value)
        return text if len(text) <= 64 else text[:61] + "..."

    return f"span {show(name)!r} (trace_id {show(trace_id)}, span_id {show(span_id)})"
