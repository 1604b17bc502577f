"""What every trace receiver (OTLP/HTTP, OTLP/gRPC, Zipkin) does with a decoded batch: time
window, per-trace cap, rate limit, the durable write, and counting what was refused."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from django_redis import get_redis_connection

from backend.tenancy.ratelimit import bucket_take
from backend.tenancy.rejections import rejections_count
from backend.tracing.services import spans_write
from ingest.decoders.spans import SpanLimits, SpanRejection, TraceBatch

NS = 10**9
DAY_NS = 24 * 3600 * NS
FUTURE_GRACE_NS = 3600 * NS  # clock skew allowed on span start times


class RateLimited(Exception):
    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))


@dataclass
class Accepted:
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


def span_limits(limits) -> SpanLimits:
    return SpanLimits(
        max_attributes_per_span=limits.max_attributes_per_span,
        max_attribute_value_length=limits.max_attribute_value_length,
    )


def _reject(rejected: list[SpanRejection], reason: str, message: str, n: int) -> None:
    if n:
        rejected.append(SpanRejection(reason, message, n))


# Per (org, trace, day) span counts; one Lua call per request, returns each trace's new total
# and gives back what it refused.
_TRACE_COUNTS = """
local cap = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local n = tonumber(ARGV[i + 1])
  local total = redis.call('INCRBY', KEYS[i], n)
  if total == n then redis.call('EXPIRE', KEYS[i], 86400) end
  local over = math.max(0, math.min(n, total - cap))
  if over > 0 then redis.call('DECRBY', KEYS[i], over) end
  out[i] = over
end
return out
"""


def accept_spans(*, org_id: int, limits, batch: TraceBatch) -> Accepted:
    now = time.time_ns()
    oldest = now - limits.traces_retention_days * DAY_NS
    newest = now + FUTURE_GRACE_NS
    rejected = list(batch.rejected)
    spans = [s for s in batch.spans if oldest <= s.start_ns <= newest]
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
            raise RateLimited(
                f"trace ingestion rate limit ({limits.traces_ingestion_rate} spans/s, burst "
                f"{limits.traces_ingestion_burst_size}) exceeded while adding {len(spans)} spans",
                verdict.retry_after,
            )
        spans = _cap_spans_per_trace(org_id, spans, limits.max_spans_per_trace, rejected)
    if spans:
        spans_write(org_id=org_id, spans=spans)

    counts = Counter({r.reason: r.spans for r in rejected})
    counts["attributes_truncated"] += batch.truncated_attributes
    counts["attributes_dropped"] += batch.dropped_attributes
    counts["events_dropped"] += batch.dropped_events
    counts["links_dropped"] += batch.dropped_links
    rejections_count(org_id=org_id, signal="traces", reasons={k: v for k, v in counts.items() if v})
    return Accepted(len(spans), rejected)


def _cap_spans_per_trace(org_id, spans, cap, rejected):
    per_trace = Counter(s.trace_id for s in spans)
    day = time.time_ns() // DAY_NS
    traces = list(per_trace)
    keys = [f"canopy:trace-spans:{{{org_id}}}:{day}:{t.hex()}" for t in traces]
    over = get_redis_connection("default").eval(
        _TRACE_COUNTS, len(keys), *keys, cap, *[per_trace[t] for t in traces]
    )
    refuse = {t: n for t, n in zip(traces, over, strict=True) if n}
    if not refuse:
        return spans
    kept = []
    for span in reversed(spans):  # the latest spans of a trace over the cap are the ones refused
        if refuse.get(span.trace_id, 0) > 0:
            refuse[span.trace_id] -= 1
        else:
            kept.append(span)
    kept.reverse()
    _reject(
        rejected,
        "max_spans_per_trace",
        f"traces may hold at most {cap} spans per day",
        len(spans) - len(kept),
    )
    return kept
