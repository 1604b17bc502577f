"""Request bodies and plain-text answers shared by the HTTP receivers."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from ingest.decoders.errors import PayloadTooLarge


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


def text_response(status: int, message: str, **headers: str) -> HttpResponse:
    """A plain-text answer (what Prometheus and Zipkin senders log), with extra headers."""
    response = HttpResponse(message.rstrip() + "\n", status=status, content_type="text/plain")
    for name, value in headers.items():
        response[name] = value
    return response
