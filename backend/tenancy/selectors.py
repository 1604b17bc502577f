"""Reads of the tenancy domain."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import timezone

from backend.tenancy.models import ApiToken, Membership, Organization, hash_token


def org_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Organization]:
    if not user.is_authenticated:
        return Organization.objects.none()
    return Organization.objects.filter(memberships__user=user).order_by("slug")


def membership_get(*, user: AbstractBaseUser, org: Organization) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.for_org(org).filter(user=user).first()


def membership_list(*, org: Organization) -> QuerySet[Membership]:
    return Membership.objects.for_org(org).select_related("user").order_by("user__username")


def token_list(*, org: Organization) -> QuerySet[ApiToken]:
    return ApiToken.objects.for_org(org).select_related("created_by")


def token_authenticate(*, secret: str) -> ApiToken | None:
    """The active token with this secret, or None. Looked up by hash: the secret is not stored."""
    if not secret:
        return None
    token = (
        ApiToken.objects.unscoped()  # the secret itself names the tenant
        .select_related("org")
        .filter(secret_hash=hash_token(secret))
        .first()
    )
    if token is None or not token.is_active(timezone.now()):
        return None
    return token
