"""Machine authentication with API tokens, for DRF views and for plain Django views.

Accepted forms (what Prometheus, Grafana and OpenTelemetry exporters send):
- ``Authorization: Bearer <token>``
- ``Authorization: Basic base64(<org slug>:<token>)``: the username must be the token's org.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from backend.tenancy.models import ApiToken, Organization
from backend.tenancy.selectors import token_authenticate
from backend.tenancy.services import token_touch

WWW_AUTHENTICATE = 'Bearer realm="canopy", Basic realm="canopy"'


class TokenAuthError(Exception):
    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TokenPrincipal:
    """``request.user`` for a request authenticated by an API token."""

    token: ApiToken
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    pk = None

    @property
    def org(self) -> Organization:
        return self.token.org

    def get_username(self) -> str:
        return f"token:{self.token.prefix}"

    def __str__(self) -> str:
        return self.get_username()


def _credentials(header: str) -> tuple[str, str | None] | None:
    """(secret, basic-auth username or None) from an Authorization header, or None if absent."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer":
        if not value:
            raise TokenAuthError("empty bearer token")
        return value, None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise TokenAuthError("malformed basic credentials") from exc
        username, sep, password = decoded.partition(":")
        if not sep or not password:
            raise TokenAuthError(
                "basic auth needs the org slug as username and a token as password"
            )
        return password, username
    return None


def authenticate_header(header: str) -> ApiToken | None:
    """The token named by the header; None when the header carries no token credentials.

    Raises TokenAuthError for credentials that are present but wrong.
    """
    creds = _credentials(header)
    if creds is None:
        return None
    secret, username = creds
    token = token_authenticate(secret=secret)
    if token is None:
        raise TokenAuthError("invalid, expired or revoked token")
    if username is not None and username != token.org.slug:
        raise TokenAuthError("the basic-auth username must be the token's organization slug")
    token_touch(token=token)
    return token


class TokenAuthentication(BaseAuthentication):
    """DRF authentication class: sets ``request.user`` to a TokenPrincipal."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        try:
            token = authenticate_header(header)
        except TokenAuthError as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        if token is None:
            return None
        return TokenPrincipal(token), token

    def authenticate_header(self, request) -> str:
        return WWW_AUTHENTICATE


def _error(status: int, message: str) -> HttpResponse:
    response = JsonResponse({"status": "error", "error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response


def token_required(scope: str, *, error: Callable[[int, str], HttpResponse] = _error) -> Callable:
    """Decorator for plain Django views (the ingest receivers).

    Afterwards ``request.token``, ``request.org`` and ``request.scopes`` are set. ``error``
    renders the failure in the protocol's own error format.
    """

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            try:
                token = authenticate_header(request.META.get("HTTP_AUTHORIZATION", ""))
            except TokenAuthError as exc:
                response = error(exc.status, str(exc))
                response["WWW-Authenticate"] = WWW_AUTHENTICATE
                return response
            if token is None:
                response = error(401, "authentication required: send a Canopy API token")
                response["WWW-Authenticate"] = WWW_AUTHENTICATE
                return response
            if not token.has_scope(scope):
                return error(403, f"this token lacks the {scope} scope")
            request.token = token
            request.org = token.org
            request.scopes = frozenset(token.scopes)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
