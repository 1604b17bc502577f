"""Accepting a metrics write (Prometheus remote-write 1.0/2.0, OTLP metrics): the org's limits,
decoding (the one step that depends on the protocol), then in common: the rate limit, series
ids (new series over the series limits refused), the durable hand-off of the samples and the
metadata, and counting what was refused.

A request either is refused as a whole (:class:`Refused`: bad body, rate limit, storage down)
or is accepted, possibly in part (:class:`MetricsAccepted` lists the rejected samples by reason;
the valid ones are stored).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from backend.metrics.series import SeriesIds, SeriesRefusal, series_ids_resolve
from backend.metrics.services import exemplars_write, metadata_upsert, samples_write
from backend.observability.metrics import ingest_accepted
from backend.tenancy.ratelimit import bucket_empty, bucket_take
from backend.tenancy.rejections import rejections_count
from backend.tenancy.selectors import limits_get
from backend.tenancy.ttlcache import TTLCache
from ingest.accept.payload import Payload
from ingest.accept.refusals import STORAGE_ERRORS, Refusal, Refused, refused_from_error
from ingest.decoders.errors import DecodeError
from ingest.decoders.otlp_metrics import decode_otlp_metrics
from ingest.decoders.remote_write import LabelLimits, Rejection, WriteBatch, decode_remote_write

# Counted per org like the rejected samples; the names are the HTTP statuses the requests got.
_REFUSAL_COUNTERS = {
    Refusal.PAYLOAD_TOO_LARGE: "http_413",
    Refusal.UNSUPPORTED_MEDIA_TYPE: "http_415",
    Refusal.INVALID: "http_400",
}

# Metadata already stored by this process (re-stored every 10 minutes, so a changed HELP text
# is picked up and the cache stays bounded).
_seen_metadata: TTLCache[tuple[int, tuple[str, str, str, str]], bool] = TTLCache(
    ttl=600, max_entries=100_000
)


def metadata_seen_clear() -> None:
    _seen_metadata.clear()


@dataclass(frozen=True, slots=True)
class MetricsAccepted:
    samples: int  # samples the request carried, valid or not
    written: int
    rejected: list[Rejection]
    exemplars_written: int = 0


def metrics_accept(
    *, org_id: int, payload: Payload, remote_write_version: str | None
) -> MetricsAccepted | Refused:
    """A Prometheus remote-write 1.0/2.0 request."""
    limits = limits_get(org_id=org_id)
    over = _over_rate(org_id, limits)
    if over is not None:
        return over
    now_ms = int(time.time() * 1000)
    try:
        batch = decode_remote_write(
            payload.read(_body_cap(payload, limits)),
            content_type=payload.content_type,
            content_encoding=payload.content_encoding,
            remote_write_version=remote_write_version,
            max_size=_body_cap(payload, limits),
            limits=_label_limits(limits),
            now_ms=now_ms,
            max_age_ms=limits.out_of_order_time_window_seconds * 1000,
            future_grace_ms=limits.creation_grace_period_seconds * 1000,
        )
    except DecodeError as exc:
        return _decode_refused(org_id, exc, storage="remote-write")
    return _batch_store(org_id=org_id, limits=limits, batch=batch, storage="remote-write")


@dataclass(frozen=True, slots=True)
class OtlpMetricsAccepted:
    data_points: int  # data points the request carried
    rejected_data_points: int
    accepted: MetricsAccepted

    def message(self) -> str:
        """The partial success's error message: each reason with its first example."""
        rejected = self.accepted.rejected
        if not rejected:
            return ""
        text = "; ".join(f"{r.reason}: {r.message}" for r in rejected[:MAX_REASONS_IN_MESSAGE])
        if len(rejected) > MAX_REASONS_IN_MESSAGE:
            text += f"; and {len(rejected) - MAX_REASONS_IN_MESSAGE} more reasons"
        return text


MAX_REASONS_IN_MESSAGE = 5


def otlp_metrics_accept(*, org_id: int, payload: Payload) -> OtlpMetricsAccepted | Refused:
    """An OTLP metrics export (HTTP body, or the bytes of a gRPC request with no encoding)."""
    limits = limits_get(org_id=org_id)
    over = _over_rate(org_id, limits)
    if over is not None:
        return over
    now_ms = int(time.time() * 1000)
    cap = _body_cap(payload, limits)
    try:
        body = payload.read(cap)
        decoded = decode_otlp_metrics(
            body,
            content_type=payload.content_type,
            content_encoding=payload.content_encoding,
            max_size=cap,
            limits=_label_limits(limits),
            now_ms=now_ms,
            max_age_ms=limits.out_of_order_time_window_seconds * 1000,
            future_grace_ms=limits.creation_grace_period_seconds * 1000,
            promote_resource_attributes=frozenset(limits.promote_otel_resource_attributes),
            promote_scope_metadata=limits.promote_otel_scope_metadata,
        )
    except DecodeError as exc:
        return _decode_refused(org_id, exc, storage="otlp-metrics")
    outcome = _batch_store(
        org_id=org_id, limits=limits, batch=decoded.batch, storage="otlp-metrics"
    )
    if isinstance(outcome, Refused):
        return outcome
    # Whole metrics refused count their data points; samples refused after translating (labels,
    # limits, timestamps) count as one data point each (a histogram point is many samples).
    rejected = min(decoded.data_points, sum(r.samples for r in outcome.rejected))
    ingest_accepted(signal="otlp_metric_points", protocol="otlp", n=decoded.data_points - rejected)
    return OtlpMetricsAccepted(
        data_points=decoded.data_points, rejected_data_points=rejected, accepted=outcome
    )


def _over_rate(org_id: int, limits) -> Refused | None:
    """429 before the body is read when the org's bucket is already empty (``bucket_empty``);
    its samples are not counted as refused (they were never decoded)."""
    verdict = bucket_empty(
        key=f"metrics:{org_id}", rate=limits.ingestion_rate, burst=limits.ingestion_burst_size
    )
    if verdict.allowed:
        return None
    return Refused(
        Refusal.RATE_LIMITED,
        f"ingestion rate limit ({limits.ingestion_rate} samples/s) with burst size "
        f"{limits.ingestion_burst_size} exceeded",
        retry_after=max(1, int(np.ceil(verdict.retry_after))),
    )


def _body_cap(payload: Payload, limits) -> int:
    if payload.max_bytes is None:
        return limits.max_request_bytes
    return min(payload.max_bytes, limits.max_request_bytes)


def _label_limits(limits) -> LabelLimits:
    return LabelLimits(
        max_label_names_per_series=limits.max_label_names_per_series,
        max_label_name_length=limits.max_label_name_length,
        max_label_value_length=limits.max_label_value_length,
    )


def _decode_refused(org_id: int, exc: DecodeError, *, storage: str) -> Refused:
    refused = refused_from_error(exc, storage=storage)
    rejections_count(
        org_id=org_id, signal="metrics", reasons={_REFUSAL_COUNTERS[refused.refusal]: 1}
    )
    return refused


def _batch_store(
    *, org_id: int, limits, batch: WriteBatch, storage: str
) -> MetricsAccepted | Refused:
    """The protocol-neutral part of accepting metrics: the rate limit, series ids (new series
    over the series limits refused), the durable hand-off of samples and metadata, counting
    what was refused."""
    n_samples = len(batch.values)
    rejected = list(batch.rejected)
    keep_exemplars = limits.max_global_exemplars_per_user > 0
    exemplars = batch.exemplars if keep_exemplars else []
    written = exemplars_written = 0
    try:
        cost = n_samples + len(exemplars)
        if cost:
            verdict = bucket_take(
                key=f"metrics:{org_id}",
                rate=limits.ingestion_rate,
                burst=limits.ingestion_burst_size,
                cost=cost,
            )
            if not verdict.allowed:
                rejections_count(org_id=org_id, signal="metrics", reasons={"rate_limited": cost})
                return Refused(
                    Refusal.RATE_LIMITED,
                    f"ingestion rate limit ({limits.ingestion_rate} samples/s) with burst size "
                    f"{limits.ingestion_burst_size} exceeded while adding {n_samples} samples "
                    f"and {len(exemplars)} exemplars",
                    retry_after=max(1, int(np.ceil(verdict.retry_after))),
                )
            series = series_ids_resolve(
                org_id=org_id,
                label_sets=batch.series_labels,
                max_per_user=limits.max_global_series_per_user,
                max_per_metric=limits.max_global_series_per_metric,
                cache=True,
            )
            rejected += _series_limit_rejections(series, batch.sample_series, limits)
            keep = series.admitted[batch.sample_series]
            if keep.any():
                samples_write(
                    org_id=org_id,
                    series_ids=series.ids[batch.sample_series][keep],
                    timestamps=batch.timestamps_ms[keep],
                    values=batch.values[keep],
                )
            written = int(keep.sum())
            exemplars = [e for e in exemplars if series.admitted[e.series]]
            if exemplars:
                exemplars_written = exemplars_write(
                    org_id=org_id,
                    series_ids=[int(series.ids[e.series]) for e in exemplars],
                    timestamps=[e.timestamp_ms for e in exemplars],
                    values=[e.value for e in exemplars],
                    labels=[e.labels for e in exemplars],
                    max_per_org=limits.max_global_exemplars_per_user,
                    retention_days=limits.retention_days,
                )
        new_metadata = [m for m in batch.metadata if not _seen_metadata.get((org_id, m))]
        if new_metadata:
            metadata_upsert(org_id=org_id, entries=new_metadata)
            for m in new_metadata:
                _seen_metadata.set((org_id, m), True)
    except STORAGE_ERRORS as exc:
        return refused_from_error(exc, storage=storage)

    # Like Mimir with native histograms disabled: they are dropped without an error (the float
    # samples of the request are kept), counted, and 2.0 senders see 0 in the *-Written header.
    # Exemplars too when the org keeps none (max_global_exemplars_per_user = 0).
    dropped = {
        "native_histograms_not_supported": batch.histograms_received,
        "exemplars_disabled": 0 if keep_exemplars else len(batch.exemplars),
    }
    rejections_count(
        org_id=org_id, signal="metrics", reasons={k: v for k, v in dropped.items() if v}
    )
    if rejected:
        rejections_count(
            org_id=org_id, signal="metrics", reasons={r.reason: max(r.samples, 1) for r in rejected}
        )
    ingest_accepted(signal="samples", protocol=storage, n=written)
    ingest_accepted(signal="exemplars", protocol=storage, n=exemplars_written)
    return MetricsAccepted(
        samples=n_samples + batch.samples_rejected,
        written=written,
        rejected=rejected,
        exemplars_written=exemplars_written,
    )


def _series_limit_rejections(
    series: SeriesIds, sample_series: np.ndarray, limits
) -> list[Rejection]:
    out = []
    for refusal, refused_series in series.refused.items():
        limit = (
            limits.max_global_series_per_user
            if refusal is SeriesRefusal.PER_USER
            else limits.max_global_series_per_metric
        )
        reason = refusal.value
        samples = int(np.isin(sample_series, refused_series).sum())
        out.append(
            Rejection(
                reason,
                f"{reason.replace('_', ' ')} of {limit} exceeded: {len(refused_series)} new series "
                "refused; existing series keep flowing",
                samples,
            )
        )
    return out
