"""``POST /api/v1/push`` (and ``/api/prom/push``, ``/api/v1/write``): Prometheus remote-write
1.0 and 2.0, Cortex-compatible.

Status codes are what senders act on: 2xx means durable; 400 is never retried, so bad data gets
it with a reason Prometheus logs (the valid part of the request is still stored); 429 asks for a
later retry; 5xx only when PostgreSQL or Redis is down, which senders retry with backoff.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from redis.exceptions import RedisError

from backend.metrics.services import metadata_upsert, samples_write
from backend.metrics.storage.catalog import REFUSAL_REASONS, REFUSED_PER_USER
from backend.tenancy.authentication import token_required
from backend.tenancy.models import Scope
from backend.tenancy.ratelimit import bucket_take
from backend.tenancy.rejections import rejections_count
from backend.tenancy.selectors import limits_get
from backend.tenancy.ttlcache import TTLCache
from ingest import series_ids
from ingest.decoders.errors import DecodeError, PayloadTooLarge, UnsupportedMediaType
from ingest.decoders.remote_write import LabelLimits, Rejection, decode_remote_write
from ingest.http_io import read_capped_body, text_response

log = logging.getLogger(__name__)

MAX_REASONS_IN_BODY = 5
# Metadata already stored by this process (re-stored every 10 minutes, so a changed HELP text
# is picked up and the cache stays bounded).
_seen_metadata: TTLCache[tuple[int, tuple[str, str, str, str]], bool] = TTLCache(
    ttl=600, max_entries=100_000
)


def forget_seen_metadata() -> None:
    _seen_metadata.clear()


def _written_headers(samples: int, histograms: int = 0, exemplars: int = 0) -> dict[str, str]:
    return {
        "X-Prometheus-Remote-Write-Samples-Written": str(samples),
        "X-Prometheus-Remote-Write-Histograms-Written": str(histograms),
        "X-Prometheus-Remote-Write-Exemplars-Written": str(exemplars),
    }


def _series_limit_rejections(ids: np.ndarray, sample_series: np.ndarray, limits) -> list:
    out = []
    for code, reason in REFUSAL_REASONS.items():
        refused_series = np.flatnonzero(ids == code)
        if len(refused_series) == 0:
            continue
        limit = (
            limits.max_global_series_per_user
            if code == REFUSED_PER_USER
            else limits.max_global_series_per_metric
        )
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


@csrf_exempt
@require_POST
@token_required(Scope.METRICS_WRITE, error=text_response)
def push(request: HttpRequest) -> HttpResponse:
    org_id = request.org.pk
    limits = limits_get(org_id=org_id)
    now_ms = int(time.time() * 1000)
    try:
        body = read_capped_body(request, limits.max_request_bytes)
        batch = decode_remote_write(
            body,
            content_type=request.META.get("CONTENT_TYPE"),
            content_encoding=request.META.get("HTTP_CONTENT_ENCODING"),
            remote_write_version=request.META.get("HTTP_X_PROMETHEUS_REMOTE_WRITE_VERSION"),
            max_size=limits.max_request_bytes,
            limits=LabelLimits(
                max_label_names_per_series=limits.max_label_names_per_series,
                max_label_name_length=limits.max_label_name_length,
                max_label_value_length=limits.max_label_value_length,
            ),
            now_ms=now_ms,
            max_age_ms=limits.out_of_order_time_window_seconds * 1000,
            future_grace_ms=limits.creation_grace_period_seconds * 1000,
        )
    except DecodeError as exc:
        status = (
            413
            if isinstance(exc, PayloadTooLarge)
            else 415
            if isinstance(exc, UnsupportedMediaType)
            else 400
        )
        rejections_count(org_id=org_id, signal="metrics", reasons={f"http_{status}": 1})
        return text_response(status, str(exc))

    n_samples = len(batch.values)
    rejected = list(batch.rejected)
    try:
        if n_samples:
            verdict = bucket_take(
                key=f"metrics:{org_id}",
                rate=limits.ingestion_rate,
                burst=limits.ingestion_burst_size,
                cost=n_samples,
            )
            if not verdict.allowed:
                rejections_count(
                    org_id=org_id, signal="metrics", reasons={"rate_limited": n_samples}
                )
                return text_response(
                    429,
                    f"ingestion rate limit ({limits.ingestion_rate} samples/s) with burst size "
                    f"{limits.ingestion_burst_size} exceeded while adding {n_samples} samples",
                    **{"Retry-After": str(max(1, int(np.ceil(verdict.retry_after))))},
                )
            ids = series_ids.resolve(
                org_id=org_id,
                label_sets=batch.series_labels,
                max_per_user=limits.max_global_series_per_user,
                max_per_metric=limits.max_global_series_per_metric,
            )
            rejected += _series_limit_rejections(ids, batch.sample_series, limits)
            sample_ids = ids[batch.sample_series]
            keep = sample_ids > 0
            if keep.any():
                samples_write(
                    org_id=org_id,
                    series_ids=sample_ids[keep],
                    timestamps=batch.timestamps_ms[keep],
                    values=batch.values[keep],
                )
            written = int(keep.sum())
        else:
            written = 0
        new_metadata = [m for m in batch.metadata if not _seen_metadata.get((org_id, m))]
        if new_metadata:
            metadata_upsert(org_id=org_id, entries=new_metadata)
            for m in new_metadata:
                _seen_metadata.set((org_id, m), True)
    except (DatabaseError, RedisError) as exc:
        log.exception("remote-write storage unavailable")
        return text_response(
            503,
            f"storage temporarily unavailable: {exc.__class__.__name__}",
            **{"Retry-After": "5"},
        )

    # Like Mimir with native histograms and exemplars disabled: they are dropped without an
    # error (the float samples of the request are kept), counted, and 2.0 senders see 0 in
    # the *-Written headers.
    dropped = {
        "native_histograms_not_supported": batch.histograms_received,
        "exemplars_not_supported": batch.exemplars_received,
    }
    rejections_count(
        org_id=org_id, signal="metrics", reasons={k: v for k, v in dropped.items() if v}
    )
    headers = _written_headers(written)
    if rejected:
        rejections_count(
            org_id=org_id, signal="metrics", reasons={r.reason: max(r.samples, 1) for r in rejected}
        )
        total = sum(r.samples for r in rejected)
        lines = [
            f"{total} of {n_samples + batch.samples_rejected} samples rejected ({written} written):"
        ]
        lines += [f"{r.reason}: {r.message}" for r in rejected[:MAX_REASONS_IN_BODY]]
        if len(rejected) > MAX_REASONS_IN_BODY:
            lines.append(f"... and {len(rejected) - MAX_REASONS_IN_BODY} more reasons")
        return text_response(400, "\n".join(lines), **headers)
    response = HttpResponse(status=204)
    for name, value in headers.items():
        response[name] = value
    return response
