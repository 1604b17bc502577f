"""API tokens at the HTTP edge: DRF's authentication class and the decorator of the plain Django
ingest views. Both ask ``backend.tenancy.access`` who the caller is; they only render the answer.

Accepted forms (what Prometheus, Grafana and OpenTelemetry exporters send):
- ``Authorization: Bearer <token>``
- ``Authorization: Basic base64(<org slug>:<token>)``: the username must be the token's org.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from backend.tenancy.access import AccessError, TokenPrincipal, access_from_authorization

WWW_AUTHENTICATE = 'Bearer realm="canopy", Basic realm="canopy"'


class TokenAuthentication(BaseAuthentication):
    """DRF authentication class: sets ``request.user`` to a TokenPrincipal."""

    def authenticate(self, request):
        try:
            access = access_from_authorization(request.META.get("HTTP_AUTHORIZATION", ""))
        except AccessError as exc:
            raise exceptions.AuthenticationFailed(exc.message) from exc
        if access is None:
            return None
        return TokenPrincipal(access), access.token

    def authenticate_header(self, request) -> str:
        return WWW_AUTHENTICATE


def _error(status: int, message: str) -> HttpResponse:
    response = JsonResponse({"status": "error", "error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response


def token_required(scope: str, *, error: Callable[[int, str], HttpResponse] = _error) -> Callable:
    """Decorator for plain Django views (the ingest receivers): a token only, never a session.

    Afterwards ``request.access`` and, from it, ``request.token``, ``request.org`` and
    ``request.scopes`` are set. ``error`` renders the failure in the protocol's own format.
    """

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            try:
                access = access_from_authorization(request.META.get("HTTP_AUTHORIZATION", ""))
            except AccessError as exc:
                response = error(exc.status, exc.message)
                response["WWW-Authenticate"] = WWW_AUTHENTICATE
                return response
            if access is None:
                response = error(401, "authentication required: send a Canopy API token")
                response["WWW-Authenticate"] = WWW_AUTHENTICATE
                return response
            if not access.allows(scope):
                return error(403, f"this token lacks the {scope} scope")
            request.access = access
            request.token = access.token
            request.org = access.org
            request.scopes = access.scopes
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
