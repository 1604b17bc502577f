"""OTLP/HTTP metrics: ``POST /otlp/v1/metrics`` (Mimir's path) and ``POST /v1/metrics`` (the
OTLP default a collector or SDK appends to its endpoint); protobuf or JSON, maybe gzip.

Answers as OTLP asks, in the request's encoding: 200 with a partial success naming what was
rejected (the rest is stored), a ``google.rpc.Status`` body for a refusal (400 bad data, 413,
415, 429/503 with Retry-After).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from backend.tenancy.authentication import token_required
from backend.tenancy.models import Scope
from ingest.accept.metrics import otlp_metrics_accept
from ingest.accept.refusals import Refused
from ingest.decoders.otlp_metrics import encode_metrics_partial_success
from ingest.decoders.otlp_traces import response_media_type
from ingest.http.otlp_traces import OTLP_MAX_BODY, otlp_auth_error, otlp_error
from ingest.http.transport import refused_response, request_payload


@csrf_exempt
@require_POST
@token_required(Scope.METRICS_WRITE, error=otlp_auth_error)
def otlp_metrics_receive(request: HttpRequest) -> HttpResponse:
    content_type = request.META.get("CONTENT_TYPE")
    outcome = otlp_metrics_accept(
        org_id=request.org.pk, payload=request_payload(request, max_bytes=OTLP_MAX_BODY)
    )
    if isinstance(outcome, Refused):
        return refused_response(outcome, error=otlp_error(content_type))
    return HttpResponse(
        encode_metrics_partial_success(
            outcome.rejected_data_points, outcome.message(), content_type
        ),
        status=200,
        content_type=response_media_type(content_type),
    )
