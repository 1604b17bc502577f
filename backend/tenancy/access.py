"""Which organization a caller acts for, and with which scopes: the one answer every entry point
asks for (the tenant APIs, the ingest receivers, the gRPC server, the dashboard).

A caller comes in one of two ways:
- with an API token (``Authorization: Bearer <token>``, or ``Basic base64(<org slug>:<token>)``
  where the username must be the token's org; gRPC sends the same value as ``authorization``
  metadata): it acts for the token's own org with the token's scopes, and naming any other org
  looks exactly like naming one that does not exist;
- as a logged-in member (a session): it acts for an org it belongs to, with its role's scopes.

The answer is an ``Access``; a refusal is an ``AccessError`` carrying the HTTP status it stands
for. Each entry point renders refusals in its own protocol (DRF errors, Prometheus-style JSON,
OTLP, gRPC status codes), so the wording of those stays where it is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser

from backend.tenancy.models import (
    ALL_SCOPES,
    MANAGER_ROLES,
    ApiToken,
    Membership,
    Organization,
    Role,
    Scope,
)
from backend.tenancy.selectors import membership_get, token_authenticate
from backend.tenancy.services import token_touch

# The session key that remembers which of a member's orgs the dashboard and the APIs use.
SESSION_ORG_KEY = "canopy_org"

_READ = frozenset({Scope.METRICS_READ, Scope.TRACES_READ, Scope.CONFIG_READ})
_WRITE = frozenset({Scope.METRICS_WRITE, Scope.TRACES_WRITE, Scope.CONFIG_WRITE, Scope.RULES_WRITE})

ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.VIEWER: _READ,
    Role.MEMBER: _READ | _WRITE,
    Role.ADMIN: frozenset(ALL_SCOPES),
    Role.OWNER: frozenset(ALL_SCOPES),
}


class Via(StrEnum):
    TOKEN = "token"
    SESSION = "session"


@dataclass(frozen=True)
class Access:
    """One caller's standing in one org. ``user`` is set for a member, ``token`` for a token."""

    org: Organization
    scopes: frozenset[str]
    via: Via
    user: AbstractBaseUser | None = None
    token: ApiToken | None = None
    role: str | None = None

    @property
    def org_id(self) -> int:
        return self.org.pk

    def allows(self, *wanted: str) -> bool:
        """Any one of ``wanted`` suffices; ``admin`` grants everything; wanting nothing is
        refused, so a method a scope map forgot stays closed."""
        if not wanted:
            return False
        return Scope.ADMIN in self.scopes or any(scope in self.scopes for scope in wanted)

    @property
    def can_manage(self) -> bool:
        """Manages the org's tokens and members from the dashboard: owners and admins."""
        return self.role in MANAGER_ROLES


class AccessError(Exception):
    """A refusal; ``status`` is the HTTP status it stands for (401, 400, 404)."""

    status = 401

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotAuthenticated(AccessError):
    """Neither a token nor a logged-in user."""

    def __init__(self, message: str = "authentication required"):
        super().__init__(message, 401)


class OrgNotNamed(AccessError):
    """A member who belongs to several orgs must say which one."""

    def __init__(self, message: str = "name the organization: ?org=<slug>"):
        super().__init__(message, 400)


class OrgNotFound(AccessError):
    """Another org and an org that does not exist answer alike: existence must not leak."""

    def __init__(self, message: str = "no such organization"):
        super().__init__(message, 404)


@dataclass(frozen=True)
class TokenPrincipal:
    """``request.user`` for a request that a token authenticated (DRF's TokenAuthentication)."""

    access: Access
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    pk = None

    @property
    def token(self) -> ApiToken:
        return self.access.token

    @property
    def org(self) -> Organization:
        return self.access.org

    def get_username(self) -> str:
        return f"token:{self.token.prefix}"

    def __str__(self) -> str:
        return self.get_username()


def scopes_for_role(role: str) -> frozenset[str]:
    return ROLE_SCOPES.get(role, frozenset())


def _credentials(header: str) -> tuple[str, str | None] | None:
    """(secret, basic-auth username or None) from an Authorization value, or None if absent."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer":
        if not value:
            raise AccessError("empty bearer token")
        return value, None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise AccessError("malformed basic credentials") from exc
        username, sep, password = decoded.partition(":")
        if not sep or not password:
            raise AccessError("basic auth needs the org slug as username and a token as password")
        return password, username
    return None


def access_for_token(token: ApiToken) -> Access:
    return Access(org=token.org, scopes=frozenset(token.scopes), via=Via.TOKEN, token=token)


def access_for_membership(membership: Membership, *, user: AbstractBaseUser) -> Access:
    return Access(
        org=membership.org,
        scopes=scopes_for_role(membership.role),
        via=Via.SESSION,
        user=user,
        role=membership.role,
    )


def access_from_authorization(header: str) -> Access | None:
    """The access of the token in an Authorization value; None when it carries no token
    credentials (no header, or another scheme). Raises AccessError (401) for credentials that
    are present but wrong: unknown, expired or revoked tokens, or a basic-auth username that is
    not the token's org."""
    creds = _credentials(header)
    if creds is None:
        return None
    secret, username = creds
    token = token_authenticate(secret=secret)
    if token is None:
        raise AccessError("invalid, expired or revoked token")
    if username is not None and username != token.org.slug:
        raise AccessError("the basic-auth username must be the token's organization slug")
    token_touch(token=token)
    return access_for_token(token)


def access_from_grpc_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> Access | None:
    """As ``access_from_authorization``, from gRPC invocation metadata (keys are lower case)."""
    value = dict(metadata).get("authorization", "")
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return access_from_authorization(value)


def access_for_member(*, user: AbstractBaseUser, org_slug: str) -> Access:
    """A logged-in member's access to the org named ``org_slug``; OrgNotFound when the user
    does not belong to it (or it does not exist)."""
    org = Organization.objects.filter(slug=org_slug).first()
    membership = membership_get(user=user, org=org) if org else None
    if membership is None:
        raise OrgNotFound()
    return access_for_membership(membership, user=user)


def access_for_request(request, *, org_slug: str | None = None) -> Access:
    """The access of an HTTP request (a Django or DRF request) to the org it names.

    A token acts for its own org only: ``org_slug`` (from the URL), when given, must be that
    org. A member names the org by ``org_slug``, else ``?org=<slug>``, else the org kept in the
    session, else (a member of exactly one org) that org. Raises NotAuthenticated, OrgNotNamed,
    OrgNotFound, or AccessError for bad credentials.
    """
    user = getattr(request, "user", None)
    if isinstance(user, TokenPrincipal):
        access = user.access
    else:
        # DRF's TokenAuthentication has already turned a token into request.user; a plain
        # Django request still carries its header.
        access = access_from_authorization(request.META.get("HTTP_AUTHORIZATION", ""))
    if access is not None:
        if org_slug is not None and org_slug != access.org.slug:
            raise OrgNotFound()
        return access
    if user is None or not user.is_authenticated:
        raise NotAuthenticated()
    slug = org_slug or request.GET.get("org") or request.session.get(SESSION_ORG_KEY)
    if not slug:
        # A member of exactly one org means that one (the API docs' "Try it out" sends the
        # session alone); a member of several must name it or pick it in the dashboard.
        memberships = getattr(user, "memberships", None)
        only = list(memberships.select_related("org")[:2]) if memberships is not None else []
        if len(only) != 1:
            raise OrgNotNamed()
        return access_for_membership(only[0], user=user)
    return access_for_member(user=user, org_slug=slug)


# The dashboard: a member always looks at one of their orgs, the one kept in the session or else
# the first; the page's memberships are read once per request.
_REQUEST_CACHE = "_canopy_memberships"


def _session_state(request) -> tuple[Membership | None, list[Membership]]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not hasattr(user, "memberships"):
        return None, []
    cached = getattr(request, _REQUEST_CACHE, None)
    if cached is None:
        memberships = list(user.memberships.select_related("org").order_by("org__slug"))
        wanted = request.session.get(SESSION_ORG_KEY)
        current = next((m for m in memberships if m.org.slug == wanted), None)
        if current is None and memberships:
            current = memberships[0]
        cached = (current, memberships)
        setattr(request, _REQUEST_CACHE, cached)
    return cached


def session_memberships(request) -> list[Membership]:
    """Every membership of the logged-in user, by org slug (the org switcher's choices)."""
    return _session_state(request)[1]


def session_access(request, *, org_slug: str | None = None) -> Access | None:
    """The dashboard's access: to ``org_slug`` when given (a shared link names its org; it is
    followed and remembered, as the org switcher would), else to the org kept in the session,
    else to the member's first org. None for a user who belongs to no org (or no user);
    OrgNotFound when ``org_slug`` is not one of the user's orgs."""
    current, _ = _session_state(request)
    if org_slug and (current is None or current.org.slug != org_slug):
        return session_org_select(request, org_slug=org_slug)
    if current is None:
        return None
    return access_for_membership(current, user=request.user)


def session_org_select(request, *, org_slug: str) -> Access:
    """Switch the session to another of the member's orgs; OrgNotFound if not a member."""
    _, memberships = _session_state(request)
    chosen = next((m for m in memberships if m.org.slug == org_slug), None)
    if chosen is None:
        raise OrgNotFound()
    request.session[SESSION_ORG_KEY] = org_slug
    setattr(request, _REQUEST_CACHE, (chosen, memberships))
    return access_for_membership(chosen, user=request.user)
