"""Management REST API: organizations, members and API tokens."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import OuterRef, Subquery
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated, PermissionDenied, ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.tenancy import selectors, services
from backend.tenancy.access import TokenPrincipal
from backend.tenancy.api_base import OrgAPIView
from backend.tenancy.models import Membership, Scope
from backend.tenancy.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    InvitationCreateSerializer,
    InvitationSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    OrganizationSerializer,
    OrgDeleteSerializer,
    OrgDeletionSerializer,
    OrgLimitsSerializer,
    TenantLimitsSerializer,
)

ADMIN_ONLY = {
    "GET": [Scope.ADMIN],
    "POST": [Scope.ADMIN],
    "PATCH": [Scope.ADMIN],
    "DELETE": [Scope.ADMIN],
}


def _service_call(fn, **kwargs):
    """Run a service; its ValidationError becomes a 400 with the reason."""
    try:
        return fn(**kwargs)
    except DjangoValidationError as exc:
        raise ValidationError({"detail": exc.messages}) from exc


class MyOrgsView(APIView):
    """The organizations the caller belongs to (a token: its own organization)."""

    @extend_schema(responses=OrganizationSerializer(many=True))
    def get(self, request):
        user = request.user
        if isinstance(user, TokenPrincipal):
            org = user.org
            org.role = None
            return Response(OrganizationSerializer([org], many=True).data)
        if not user.is_authenticated:
            raise NotAuthenticated()
        role = Membership.objects.unscoped().filter(org=OuterRef("pk"), user=user).values("role")
        orgs = selectors.org_list_for_user(user=user).annotate(role=Subquery(role[:1]))
        return Response(OrganizationSerializer(orgs, many=True).data)


class OrgView(OrgAPIView):
    """The organization itself: any member reads it; its owner deletes it (``{"confirm":
    "<slug>"}``): closed at once, its data purged in the background (docs/security.md)."""

    scopes = {
        "GET": [Scope.METRICS_READ, Scope.TRACES_READ, Scope.METRICS_WRITE, Scope.TRACES_WRITE],
        "DELETE": [Scope.ADMIN],
    }

    @extend_schema(responses=OrganizationSerializer)
    def get(self, request, org_slug=None):
        org = self.org
        org.role = self.access.role
        return Response(OrganizationSerializer(org).data)

    @extend_schema(
        request=OrgDeleteSerializer,
        responses={202: OrgDeletionSerializer},
        summary="Delete the organization (owner only)",
    )
    def delete(self, request, org_slug=None):
        data = OrgDeleteSerializer(data=request.data if isinstance(request.data, dict) else {})
        data.is_valid(raise_exception=True)
        try:
            deletion = services.org_delete_by_owner(
                org=self.org, user=request.user, confirm=data.validated_data["confirm"]
            )
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        except DjangoValidationError as exc:
            raise ValidationError({"confirm": exc.messages}) from exc
        return Response(OrgDeletionSerializer(deletion).data, status=status.HTTP_202_ACCEPTED)


class MemberListView(OrgAPIView):
    scopes = ADMIN_ONLY

    @extend_schema(responses=MembershipSerializer(many=True))
    def get(self, request, org_slug=None):
        return Response(
            MembershipSerializer(selectors.membership_list(org=self.org), many=True).data
        )

    @extend_schema(request=InvitationCreateSerializer, responses={202: InvitationSerializer})
    def post(self, request, org_slug=None):
        """Invite someone by email; they join when they accept. The answer is the same
        whether or not the address has an account on this server."""
        if "username" in request.data:
            raise ValidationError(
                {"detail": 'members join by invitation: send {"email": …, "role": …}'}
            )
        return _invite(self, request)


def _invite(view: OrgAPIView, request) -> Response:
    data = InvitationCreateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    invitation, _ = _service_call(
        services.invitation_create,
        org=view.org,
        email=data.validated_data["email"],
        role=data.validated_data["role"],
        actor=request.user,
    )
    return Response(InvitationSerializer(invitation).data, status=status.HTTP_202_ACCEPTED)


class InvitationListView(OrgAPIView):
    scopes = ADMIN_ONLY

    @extend_schema(responses=InvitationSerializer(many=True))
    def get(self, request, org_slug=None):
        return Response(
            InvitationSerializer(selectors.invitation_list(org=self.org), many=True).data
        )

    @extend_schema(request=InvitationCreateSerializer, responses={202: InvitationSerializer})
    def post(self, request, org_slug=None):
        return _invite(self, request)


class InvitationDetailView(OrgAPIView):
    scopes = ADMIN_ONLY

    @extend_schema(responses=InvitationSerializer, summary="Revoke the invitation")
    def delete(self, request, pk: int, org_slug=None):
        invitation = get_object_or_404(selectors.invitation_list(org=self.org), pk=pk)
        services.invitation_revoke(invitation=invitation, actor=request.user)
        return Response(InvitationSerializer(invitation).data)


class MemberDetailView(OrgAPIView):
    scopes = ADMIN_ONLY

    def get_membership(self, pk: int) -> Membership:
        return get_object_or_404(selectors.membership_list(org=self.org), pk=pk)

    @extend_schema(responses=MembershipSerializer)
    def get(self, request, pk: int, org_slug=None):
        return Response(MembershipSerializer(self.get_membership(pk)).data)

    @extend_schema(request=MembershipUpdateSerializer, responses=MembershipSerializer)
    def patch(self, request, pk: int, org_slug=None):
        membership = self.get_membership(pk)
        data = MembershipUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _service_call(
            services.member_change_role,
            membership=membership,
            role=data.validated_data["role"],
            actor=request.user,
        )
        return Response(MembershipSerializer(membership).data)

    def delete(self, request, pk: int, org_slug=None):
        _service_call(
            services.member_remove, membership=self.get_membership(pk), actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenListView(OrgAPIView):
    scopes = ADMIN_ONLY

    @extend_schema(responses=ApiTokenSerializer(many=True))
    def get(self, request, org_slug=None):
        return Response(ApiTokenSerializer(selectors.token_list(org=self.org), many=True).data)

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: ApiTokenCreatedSerializer})
    def post(self, request, org_slug=None):
        data = ApiTokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, secret = _service_call(
            services.token_create,
            org=self.org,
            name=data.validated_data["name"],
            scopes=data.validated_data["scopes"],
            created_by=request.user,
            expires_at=data.validated_data.get("expires_at"),
        )
        token.token = secret
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)


class TokenDetailView(OrgAPIView):
    scopes = ADMIN_ONLY

    @extend_schema(responses=ApiTokenSerializer)
    def get(self, request, pk: int, org_slug=None):
        return Response(
            ApiTokenSerializer(get_object_or_404(selectors.token_list(org=self.org), pk=pk)).data
        )

    @extend_schema(responses=ApiTokenSerializer, summary="Revoke the token")
    def delete(self, request, pk: int, org_slug=None):
        token = get_object_or_404(selectors.token_list(org=self.org), pk=pk)
        services.token_revoke(token=token, actor=request.user)
        return Response(ApiTokenSerializer(token).data)


class LimitsView(OrgAPIView):
    """The organization's limits: any member reads them; an org admin changes its retention
    (within the plan's bounds) and nothing else: the quotas that protect the other tenants
    are the operator's (Django admin, ``manage.py set_limits``)."""

    scopes = {
        "GET": [Scope.METRICS_READ, Scope.TRACES_READ, Scope.METRICS_WRITE, Scope.TRACES_WRITE],
        "PATCH": [Scope.ADMIN],
    }

    @extend_schema(responses=OrgLimitsSerializer)
    def get(self, request, org_slug=None):
        return Response(OrgLimitsSerializer(selectors.limits_get(org_id=self.org.pk)).data)

    @extend_schema(request=TenantLimitsSerializer, responses=OrgLimitsSerializer)
    def patch(self, request, org_slug=None):
        if not isinstance(request.data, dict):
            raise ValidationError({"detail": "a JSON object of limits"})
        operator_owned = sorted(set(request.data) - set(TenantLimitsSerializer.Meta.fields))
        if operator_owned:
            raise PermissionDenied(
                f"{', '.join(operator_owned)}: set by the platform operator (the Django admin "
                "or `manage.py set_limits`); an org admin may change "
                f"{', '.join(TenantLimitsSerializer.Meta.fields)} only"
            )
        data = TenantLimitsSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        limits = _service_call(
            services.limits_update_by_tenant,
            org=self.org,
            changes=dict(data.validated_data),
            actor=request.user,
        )
        return Response(OrgLimitsSerializer(limits).data)
