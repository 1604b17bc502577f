"""Zipkin v2: ``POST /api/v2/spans`` (JSON or protobuf), as Envoy's Zipkin tracer sends it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from backend.tenancy.authentication import token_required
from backend.tenancy.models import Scope
from ingest.accept.refusals import Refused
from ingest.accept.traces import TraceFormat, traces_accept
from ingest.http.transport import refused_response, request_payload, text_response


@csrf_exempt
@require_POST
@token_required(Scope.TRACES_WRITE, error=text_response)
def zipkin_spans_receive(request: HttpRequest) -> HttpResponse:
    outcome = traces_accept(
        org_id=request.org.pk, trace_format=TraceFormat.ZIPKIN, payload=request_payload(request)
    )
    if isinstance(outcome, Refused):
        return refused_response(outcome)
    if outcome.rejected:
        # Zipkin has no partial success: the valid spans are stored, and the 400 says which
        # were not and why.
        return text_response(400, f"{outcome.stored} span(s) stored; {outcome.message()}")
    return HttpResponse(status=202)
