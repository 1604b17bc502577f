"""The one base class of every tenant API endpoint.

DRF authenticates (token or session); ``backend.tenancy.access`` resolves the organization and
the scopes held; this class checks them against the per-method scope map, so a new endpoint
declares what it needs and cannot forget to check it. Endpoints read data through ``self.org``;
another org's objects are 404, never 403, so that their existence does not leak.
"""

from __future__ import annotations

from django.http import Http404
from rest_framework import exceptions
from rest_framework.views import APIView

from backend.tenancy.access import (
    Access,
    AccessError,
    NotAuthenticated,
    OrgNotFound,
    OrgNotNamed,
    access_for_request,
)
from backend.tenancy.models import Organization


def _drf_error(exc: AccessError) -> Exception:
    if isinstance(exc, OrgNotFound):
        return Http404(exc.message)
    if isinstance(exc, NotAuthenticated):
        return exceptions.NotAuthenticated()
    if isinstance(exc, OrgNotNamed):
        return exceptions.ValidationError({"org": exc.message})
    return exceptions.AuthenticationFailed(exc.message)


class OrgAPIView(APIView):
    # {"GET": ["metrics:read"], "POST": ["admin"]}; a method missing here is refused.
    scopes: dict[str, list[str]] = {}

    access: Access
    org: Organization
    held_scopes: frozenset[str]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication happens here
        try:
            self.access = access_for_request(request, org_slug=kwargs.get("org_slug"))
        except AccessError as exc:
            raise _drf_error(exc) from exc
        self.org, self.held_scopes = self.access.org, self.access.scopes
        wanted = self.scopes.get(request.method) or self.scopes.get(
            "GET" if request.method in ("HEAD", "OPTIONS") else "", []
        )
        if not self.access.allows(*wanted):
            raise exceptions.PermissionDenied(
                f"this needs one of the scopes: {', '.join(wanted) or '(none allowed)'}"
            )

    @property
    def actor(self):
        return self.access.user

    @property
    def actor_token(self):
        return self.access.token
