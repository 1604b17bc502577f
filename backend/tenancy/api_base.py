"""The one base class of every tenant API endpoint.

It authenticates (token or session), resolves the organization, and checks the per-method
scope map, so a new endpoint declares what it needs and cannot forget to check it. Endpoints
read data through ``self.org``; another org's objects are 404, never 403, so that their
existence does not leak.
"""

from __future__ import annotations

from django.http import Http404
from rest_framework import exceptions
from rest_framework.views import APIView

from backend.tenancy.authentication import TokenPrincipal
from backend.tenancy.models import Organization
from backend.tenancy.permissions import grants, scopes_for_membership
from backend.tenancy.selectors import membership_get

SESSION_ORG_KEY = "canopy_org"


class OrgAPIView(APIView):
    # {"GET": ["metrics:read"], "POST": ["admin"]}; a method missing here is refused.
    scopes: dict[str, list[str]] = {}

    org: Organization
    held_scopes: frozenset[str]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication happens here
        self.org, self.held_scopes = self.resolve_org(request, kwargs.get("org_slug"))
        wanted = self.scopes.get(request.method) or self.scopes.get(
            "GET" if request.method in ("HEAD", "OPTIONS") else "", []
        )
        if not wanted or not grants(self.held_scopes, wanted):
            raise exceptions.PermissionDenied(
                f"this needs one of the scopes: {', '.join(wanted) or '(none allowed)'}"
            )

    def resolve_org(self, request, slug: str | None) -> tuple[Organization, frozenset[str]]:
        user = request.user
        if isinstance(user, TokenPrincipal):
            if slug is not None and slug != user.org.slug:
                raise Http404("no such organization")
            return user.org, frozenset(user.token.scopes)
        if not user.is_authenticated:
            raise exceptions.NotAuthenticated()
        slug = slug or request.query_params.get("org") or request.session.get(SESSION_ORG_KEY)
        if not slug:
            raise exceptions.ValidationError({"org": "name the organization: ?org=<slug>"})
        org = Organization.objects.filter(slug=slug).first()
        membership = membership_get(user=user, org=org) if org else None
        if membership is None:
            raise Http404("no such organization")
        return org, scopes_for_membership(membership)

    @property
    def actor(self):
        user = self.request.user
        return None if isinstance(user, TokenPrincipal) else user

    @property
    def actor_token(self):
        user = self.request.user
        return user.token if isinstance(user, TokenPrincipal) else None
