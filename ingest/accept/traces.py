"""Accepting a traces write (OTLP over HTTP or gRPC, Zipkin v2): the org's limits, decoding,
the time window, the rate limit, the per-trace cap, the durable write, and counting what was
refused.

A request either is refused as a whole (:class:`Refused`: bad body, rate limit, storage down)
or is accepted, possibly in part (:class:`TracesAccepted` lists the rejected spans by reason;
the valid ones are stored).
"""

from __future__ import annotations

import enum
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from django_redis import get_redis_connection

from backend.observability.metrics import ingest_accepted
from backend.tenancy.ratelimit import bucket_take
from backend.tenancy.rejections import rejections_count
from backend.tenancy.selectors import limits_get
from backend.tracing.services import spans_write
from backend.tracing.spans import SpanColumns, id_list
from ingest.accept.payload import Payload
from ingest.accept.refusals import ACCEPT_ERRORS, Refusal, Refused, refused_from_error
from ingest.decoders.otlp_traces import decode_otlp_protobuf, decode_otlp_traces
from ingest.decoders.spans import SpanLimits, SpanRejection, TraceBatch
from ingest.decoders.zipkin import decode_zipkin_spans

NS = 10**9
DAY_NS = 24 * 3600 * NS
FUTURE_GRACE_NS = 3600 * NS  # clock skew allowed on span start times


class TraceFormat(enum.Enum):
    OTLP = "otlp"  # OTLP/HTTP: protobuf or JSON, as Content-Type and Content-Encoding say
    OTLP_PROTOBUF = "otlp_protobuf"  # OTLP/gRPC: the bare request message
    ZIPKIN = "zipkin"  # Zipkin v2: JSON or protobuf


@dataclass(frozen=True, slots=True)
class TracesAccepted:
    stored: int
    rejected: list[SpanRejection] = field(default_factory=list)

    @property
    def rejected_spans(self) -> int:
        return sum(r.spans for r in self.rejected)

    def message(self) -> str:
        if not self.rejected:
            return ""
        parts = [f"{r.reason} ({r.spans}): {r.message}" for r in self.rejected]
        return f"{self.rejected_spans} span(s) rejected: " + "; ".join(parts)


def traces_accept(
    *, org_id: int, trace_format: TraceFormat, payload: Payload
) -> TracesAccepted | Refused:
    limits = limits_get(org_id=org_id)
    try:
        batch = _batch_decode(trace_format, payload, limits)
        outcome = _spans_accept(org_id=org_id, limits=limits, batch=batch)
    except ACCEPT_ERRORS as exc:
        return refused_from_error(exc, storage="trace")
    if isinstance(outcome, TracesAccepted):
        ingest_accepted(signal="spans", protocol=trace_format.value, n=outcome.stored)
    return outcome


def _batch_decode(trace_format: TraceFormat, payload: Payload, limits) -> TraceBatch:
    span_limits = SpanLimits(
        max_attributes_per_span=limits.max_attributes_per_span,
        max_attribute_value_length=limits.max_attribute_value_length,
    )
    cap = limits.max_request_bytes
    if payload.max_bytes is not None:
        cap = min(cap, payload.max_bytes)
    # OTLP protobuf: the attributes as entries over pairs (the outbox's columns), no dicts
    if trace_format is TraceFormat.OTLP_PROTOBUF:
        return decode_otlp_protobuf(payload.read(cap), span_limits, columns=True)
    decode = (
        decode_zipkin_spans
        if trace_format is TraceFormat.ZIPKIN
        else partial(decode_otlp_traces, columns=True)
    )
    return decode(
        payload.read(cap),
        content_type=payload.content_type,
        content_encoding=payload.content_encoding,
        max_size=cap,
        limits=span_limits,
    )


def _reject(rejected: list[SpanRejection], reason: str, message: str, n: int) -> None:
    if n:
        rejected.append(SpanRejection(reason, message, n))


# Per (org, trace, day) span counts: one hash per org and day, a field per trace (its 16-byte
# id). One Lua call per request, its traces and their span counts in two binary arguments (no
# argument per trace to encode and parse); it answers with the refusals only, as (trace
# number, spans over the cap) pairs (usually none: a short answer to parse).
_TRACE_COUNTS = """
local cap = tonumber(ARGV[1])
local ids, counts = ARGV[2], ARGV[3]
local new = redis.call('EXISTS', KEYS[1]) == 0
local out = {}
for i = 0, #ids / 16 - 1 do
  local id = string.sub(ids, 16 * i + 1, 16 * i + 16)
  local n = struct.unpack('<I4', counts, 4 * i + 1)
  local total = redis.call('HINCRBY', KEYS[1], id, n)
  local over = math.max(0, math.min(n, total - cap))
  if over > 0 then
    redis.call('HINCRBY', KEYS[1], id, -over)
    out[#out + 1] = i
    out[#out + 1] = over
  end
end
if new then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return out
"""
TRACE_COUNTS_TTL_S = 25 * 3600  # a day's counts outlive the day: a trace crossing midnight


def trace_counts_key(org_id: int, day: int) -> str:
    """The Redis hash of the org's span counts per trace on ``day`` (days since the epoch)."""
    return f"canopy:trace-spans:{{{org_id}}}:{day}"


def _spans_accept(*, org_id: int, limits, batch: TraceBatch) -> TracesAccepted | Refused:
    now = time.time_ns()
    oldest = now - limits.traces_retention_days * DAY_NS
    newest = now + FUTURE_GRACE_NS
    rejected = list(batch.rejected)
    spans = batch.spans
    attributes = batch.attributes  # (None: in the spans, as dicts)
    if isinstance(spans, SpanColumns):
        kept = np.flatnonzero((spans.starts >= oldest) & (spans.starts <= newest)).tolist()
    else:
        kept = [i for i, s in enumerate(spans) if oldest <= s.start_ns <= newest]
    if len(kept) < len(spans):
        spans, attributes = _take(spans, attributes, kept)
    _reject(
        rejected,
        "outside_retention_window",
        f"span start times must lie between {limits.traces_retention_days} days ago and "
        "an hour from now",
        len(batch.spans) - len(spans),
    )

    if spans:
        verdict = bucket_take(
            key=f"traces:{org_id}",
            rate=limits.traces_ingestion_rate,
            burst=limits.traces_ingestion_burst_size,
            cost=len(spans),
        )
        if not verdict.allowed:
            rejections_count(org_id=org_id, signal="traces", reasons={"rate_limited": len(spans)})
            return Refused(
                Refusal.RATE_LIMITED,
                f"trace ingestion rate limit ({limits.traces_ingestion_rate} spans/s, burst "
                f"{limits.traces_ingestion_burst_size}) exceeded while adding {len(spans)} spans",
                retry_after=max(1, int(verdict.retry_after + 0.999)),
            )
        kept = _cap_spans_per_trace(org_id, spans, limits.max_spans_per_trace, rejected)
        if kept is not None:
            spans, attributes = _take(spans, attributes, kept)
    if spans:
        spans_write(org_id=org_id, spans=spans, attributes=attributes)

    counts = Counter({r.reason: r.spans for r in rejected})
    counts["attributes_truncated"] += batch.truncated_attributes
    counts["attributes_dropped"] += batch.dropped_attributes
    counts["events_dropped"] += batch.dropped_events
    counts["links_dropped"] += batch.dropped_links
    rejections_count(org_id=org_id, signal="traces", reasons={k: v for k, v in counts.items() if v})
    return TracesAccepted(len(spans), rejected)


def _take(spans, attributes, kept: list[int]):
    """The spans ``kept`` and their attributes."""
    if isinstance(spans, SpanColumns):
        spans = spans.take(np.array(kept, dtype=np.int64))
    else:
        spans = [spans[i] for i in kept]
    return spans, attributes.take(kept) if attributes is not None else None


def _trace_ids(spans) -> list[bytes]:
    if isinstance(spans, SpanColumns):
        return id_list(spans.trace_ids, 16)
    return [s.trace_id for s in spans]


def _per_trace(spans) -> tuple[list[bytes], list[int]]:
    """The spans' traces in order of first use, and how many spans each has."""
    if not isinstance(spans, SpanColumns):
        per_trace = Counter(_trace_ids(spans))
        return list(per_trace), list(per_trace.values())
    ids = np.frombuffer(spans.trace_ids, "V16")
    _, first, counts = np.unique(ids, return_index=True, return_counts=True)
    order = np.argsort(first)
    return ids[first[order]].tolist(), counts[order].tolist()


def _cap_spans_per_trace(org_id, spans, cap, rejected) -> list[int] | None:
    """The indexes of the spans within the per-trace cap; None when all are."""
    traces, counts = _per_trace(spans)
    over = get_redis_connection("default").eval(
        _TRACE_COUNTS,
        1,
        trace_counts_key(org_id, time.time_ns() // DAY_NS),
        cap,
        b"".join(traces),
        np.array(counts, dtype="<u4").tobytes(),
        TRACE_COUNTS_TTL_S,
    )
    if not over:
        return None
    refuse = {traces[int(i)]: int(n) for i, n in zip(over[::2], over[1::2], strict=True)}
    trace_ids = _trace_ids(spans)
    kept = []
    for i in range(len(spans) - 1, -1, -1):  # a trace's latest spans over the cap are refused
        trace_id = trace_ids[i]
        if refuse.get(trace_id, 0) > 0:
            refuse[trace_id] -= 1
        else:
            kept.append(i)
    kept.reverse()
    _reject(
        rejected,
        "max_spans_per_trace",
        f"traces may hold at most {cap} spans per day",
        len(spans) - len(kept),
    )
    return kept
