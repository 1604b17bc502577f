"""``POST /api/v1/push`` (and ``/api/prom/push``, ``/api/v1/write``): Prometheus remote-write
1.0 and 2.0, Cortex-compatible.

Status codes are what senders act on: 2xx means durable; 400 is never retried, so bad data gets
it with a reason Prometheus logs (the valid part of the request is still stored); 429 asks for a
later retry; 5xx only when PostgreSQL or Redis is down, which senders retry with backoff.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from backend.tenancy.authentication import token_required
from backend.tenancy.models import Scope
from ingest.accept.metrics import MetricsAccepted, metrics_accept
from ingest.accept.refusals import Refused
from ingest.http.transport import refused_response, request_payload, text_response

MAX_REASONS_IN_BODY = 5


@csrf_exempt
@require_POST
@token_required(Scope.METRICS_WRITE, error=text_response)
def remote_write_receive(request: HttpRequest) -> HttpResponse:
    outcome = metrics_accept(
        org_id=request.org.pk,
        payload=request_payload(request),
        remote_write_version=request.META.get("HTTP_X_PROMETHEUS_REMOTE_WRITE_VERSION"),
    )
    if isinstance(outcome, Refused):
        return refused_response(outcome)
    return _accepted_response(outcome)


def _accepted_response(accepted: MetricsAccepted) -> HttpResponse:
    headers = {
        "X-Prometheus-Remote-Write-Samples-Written": str(accepted.written),
        # (native histograms are dropped: see metrics_accept)
        "X-Prometheus-Remote-Write-Histograms-Written": "0",
        "X-Prometheus-Remote-Write-Exemplars-Written": str(accepted.exemplars_written),
    }
    rejected = accepted.rejected
    if rejected:
        total = sum(r.samples for r in rejected)
        lines = [f"{total} of {accepted.samples} samples rejected ({accepted.written} written):"]
        lines += [f"{r.reason}: {r.message}" for r in rejected[:MAX_REASONS_IN_BODY]]
        if len(rejected) > MAX_REASONS_IN_BODY:
            lines.append(f"... and {len(rejected) - MAX_REASONS_IN_BODY} more reasons")
        return text_response(400, "\n".join(lines), **headers)
    response = HttpResponse(status=204)
    for name, value in headers.items():
        response[name] = value
    return response
