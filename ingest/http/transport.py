"""What every HTTP receiver shares: the request body as an accept service's payload, the one
HTTP answer to a refusal, and plain-text answers."""

from __future__ import annotations

from functools import partial
from typing import Protocol

from django.http import HttpRequest, HttpResponse

from ingest.accept.payload import Payload
from ingest.accept.refusals import Refusal, Refused
from ingest.decoders.errors import PayloadTooLarge

HTTP_STATUS = {
    Refusal.PAYLOAD_TOO_LARGE: 413,
    Refusal.UNSUPPORTED_MEDIA_TYPE: 415,
    Refusal.INVALID: 400,
    Refusal.RATE_LIMITED: 429,
    Refusal.STORAGE_UNAVAILABLE: 503,
}


class ErrorResponse(Protocol):
    """A protocol's error answer: a status and a message in the protocol's body."""

    def __call__(self, status: int, message: str, **headers: str) -> HttpResponse: ...


def read_capped_body(request: HttpRequest, cap: int) -> bytes:
    """The request body, refused (PayloadTooLarge → 413) past ``cap`` bytes: by the declared
    Content-Length before reading, and by what actually arrives."""
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {cap} bytes")
    body = request.read(cap + 1)
    if len(body) > cap:
        raise PayloadTooLarge(f"request body exceeds the limit of {cap} bytes")
    return body


def request_payload(request: HttpRequest, *, max_bytes: int | None = None) -> Payload:
    return Payload(
        read=partial(read_capped_body, request),
        content_type=request.META.get("CONTENT_TYPE"),
        content_encoding=request.META.get("HTTP_CONTENT_ENCODING"),
        max_bytes=max_bytes,
    )


def text_response(status: int, message: str, **headers: str) -> HttpResponse:
    """A plain-text answer (what Prometheus and Zipkin senders log), with extra headers."""
    response = HttpResponse(message.rstrip() + "\n", status=status, content_type="text/plain")
    for name, value in headers.items():
        response[name] = value
    return response


def refused_response(refused: Refused, *, error: ErrorResponse = text_response) -> HttpResponse:
    headers = {} if refused.retry_after is None else {"Retry-After": str(refused.retry_after)}
    return error(HTTP_STATUS[refused.refusal], refused.message, **headers)
