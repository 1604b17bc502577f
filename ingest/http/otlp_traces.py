"""OTLP/HTTP traces: ``POST /v1/traces`` (protobuf or JSON, maybe gzip-compressed); answers
and errors in the request's encoding, as OTLP asks."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from backend.tenancy.authentication import token_required
from backend.tenancy.models import Scope
from ingest.accept.refusals import Refused
from ingest.accept.traces import TraceFormat, traces_accept
from ingest.decoders.otlp_traces import encode_partial_success, encode_status, response_media_type
from ingest.http.transport import ErrorResponse, refused_response, request_payload

# OTLP recommends a 64 MiB cap on the decompressed body; Canopy takes the smaller of that and
# the org's request limit.
OTLP_MAX_BODY = 64 * 1024 * 1024

# google.rpc.Code numbers for the Status bodies of OTLP/HTTP errors
_RPC_CODES = {400: 3, 401: 16, 403: 7, 413: 3, 415: 3, 429: 8, 503: 14}


def otlp_error(content_type: str | None) -> ErrorResponse:
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


def otlp_auth_error(status: int, message: str) -> HttpResponse:
    # token_required calls this without the request; answer in protobuf, OTLP's default.
    return HttpResponse(
        encode_status(_RPC_CODES[status], message, None),
        status=status,
        content_type=response_media_type(None),
    )


@csrf_exempt
@require_POST
@token_required(Scope.TRACES_WRITE, error=otlp_auth_error)
def otlp_traces_receive(request: HttpRequest) -> HttpResponse:
    content_type = request.META.get("CONTENT_TYPE")
    outcome = traces_accept(
        org_id=request.org.pk,
        trace_format=TraceFormat.OTLP,
        payload=request_payload(request, max_bytes=OTLP_MAX_BODY),
    )
    if isinstance(outcome, Refused):
        return refused_response(outcome, error=otlp_error(content_type))
    return HttpResponse(
        encode_partial_success(outcome.rejected_spans, outcome.message(), content_type),
        status=200,
        content_type=response_media_type(content_type),
    )
