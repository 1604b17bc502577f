"""Trace receivers over HTTP: OTLP ``POST /v1/traces`` and Zipkin v2 ``POST /api/v2/spans``."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from redis.exceptions import RedisError

from backend.tenancy.authentication import token_required
from backend.tenancy.models import Scope
from backend.tenancy.selectors import limits_get
from ingest.decoders.errors import DecodeError, PayloadTooLarge, UnsupportedMediaType
from ingest.decoders.otlp_traces import (
    decode_otlp_traces,
    encode_partial_success,
    encode_status,
    response_media_type,
)
from ingest.decoders.zipkin import decode_zipkin_spans
from ingest.http_io import read_capped_body, text_response
from ingest.traces_accept import RateLimited, accept_spans, span_limits

log = logging.getLogger(__name__)

# OTLP recommends a 64 MiB cap on the decompressed body; Canopy takes the smaller of that and
# the org's request limit.
OTLP_MAX_BODY = 64 * 1024 * 1024

# google.rpc.Code numbers for the Status bodies of OTLP/HTTP errors
_RPC_CODES = {400: 3, 401: 16, 403: 7, 413: 3, 415: 3, 429: 8, 503: 14}


def _status_for(exc: DecodeError) -> int:
    if isinstance(exc, PayloadTooLarge):
        return 413
    return 415 if isinstance(exc, UnsupportedMediaType) else 400


# --- OTLP/HTTP ----------------------------------------------------------------------------------


def _otlp_error_factory(request: HttpRequest):
    content_type = request.META.get("CONTENT_TYPE")

    def error(status: int, message: str, **headers: str) -> HttpResponse:
        response = HttpResponse(
            encode_status(_RPC_CODES.get(status, 2), message, content_type),
            status=status,
            content_type=response_media_type(content_type),
        )
        for name, value in headers.items():
            response[name] = value
        return response

    return error


def _otlp_auth_error(status: int, message: str) -> HttpResponse:
    # token_required calls this without the request; answer in protobuf, OTLP's default.
    return HttpResponse(
        encode_status(_RPC_CODES[status], message, None),
        status=status,
        content_type=response_media_type(None),
    )


@csrf_exempt
@require_POST
@token_required(Scope.TRACES_WRITE, error=_otlp_auth_error)
def otlp_traces(request: HttpRequest) -> HttpResponse:
    error = _otlp_error_factory(request)
    content_type = request.META.get("CONTENT_TYPE")
    limits = limits_get(org_id=request.org.pk)
    cap = min(OTLP_MAX_BODY, limits.max_request_bytes)
    try:
        batch = decode_otlp_traces(
            read_capped_body(request, cap),
            content_type=content_type,
            content_encoding=request.META.get("HTTP_CONTENT_ENCODING"),
            max_size=cap,
            limits=span_limits(limits),
        )
        accepted = accept_spans(org_id=request.org.pk, limits=limits, batch=batch)
    except DecodeError as exc:
        return error(_status_for(exc), str(exc))
    except RateLimited as exc:
        return error(429, str(exc), **{"Retry-After": str(exc.retry_after)})
    except (DatabaseError, RedisError) as exc:
        log.exception("trace storage unavailable")
        return error(
            503,
            f"storage temporarily unavailable: {exc.__class__.__name__}",
            **{"Retry-After": "5"},
        )
    return HttpResponse(
        encode_partial_success(accepted.rejected_spans, accepted.message(), content_type),
        status=200,
        content_type=response_media_type(content_type),
    )


# --- Zipkin v2 ----------------------------------------------------------------------------------


@csrf_exempt
@require_POST
@token_required(Scope.TRACES_WRITE, error=text_response)
def zipkin_spans(request: HttpRequest) -> HttpResponse:
    limits = limits_get(org_id=request.org.pk)
    try:
        batch = decode_zipkin_spans(
            read_capped_body(request, limits.max_request_bytes),
            content_type=request.META.get("CONTENT_TYPE"),
            content_encoding=request.META.get("HTTP_CONTENT_ENCODING"),
            max_size=limits.max_request_bytes,
            limits=span_limits(limits),
        )
        accepted = accept_spans(org_id=request.org.pk, limits=limits, batch=batch)
    except DecodeError as exc:
        return text_response(_status_for(exc), str(exc))
    except RateLimited as exc:
        return text_response(429, str(exc), **{"Retry-After": str(exc.retry_after)})
    except (DatabaseError, RedisError) as exc:
        log.exception("trace storage unavailable")
        return text_response(
            503,
            f"storage temporarily unavailable: {exc.__class__.__name__}",
            **{"Retry-After": "5"},
        )
    if accepted.rejected:
        # Zipkin has no partial success: the valid spans are stored, and the 400 says which
        # were not and why.
        return text_response(400, f"{accepted.stored} span(s) stored; {accepted.message()}")
    return HttpResponse(status=202)
