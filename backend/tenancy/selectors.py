"""Reads of the tenancy domain."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import timezone

from backend.tenancy.models import (
    ApiToken,
    Invitation,
    Membership,
    Organization,
    OrgLimits,
    hash_token,
)
from backend.tenancy.ttlcache import TTLCache


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


# Ingest receivers authenticate every request: keep a verified token for a few seconds per
# process. A revocation therefore takes effect within TOKEN_CACHE_SECONDS everywhere.
TOKEN_CACHE_SECONDS = 5.0
_tokens: TTLCache[str, ApiToken] = TTLCache(ttl=TOKEN_CACHE_SECONDS)


def token_authenticate(*, secret: str) -> ApiToken | None:
    """The active token with this secret, or None. Looked up by hash: the secret is not stored."""
    if not secret:
        return None
    digest = hash_token(secret)
    now = timezone.now()
    token = _tokens.get(digest)
    if token is None:
        token = (
            ApiToken.objects.unscoped()  # the secret itself names the tenant
            .select_related("org")
            .filter(secret_hash=digest)
            .first()
        )
        if token is None:
            return None
        _tokens.set(digest, token)
    return token if token.is_active(now) else None


# The ingest path reads limits on every request; an admin's change applies within 10 s.
_limits: TTLCache[int, OrgLimits] = TTLCache(ttl=10.0)


def invitation_list(*, org) -> QuerySet[Invitation]:
    return Invitation.objects.for_org(org).order_by("-created_at", "-id")


def limits_get(*, org_id: int) -> OrgLimits:
    """The org's limits (defaults when never edited)."""
    limits = _limits.get(org_id)
    if limits is None:
        limits = OrgLimits.objects.for_org(org_id).first() or OrgLimits(org_id=org_id)
        _limits.set(org_id, limits)
    return limits


def caches_clear() -> None:
    """Forget cached tokens and limits in this process (tests; after an admin change)."""
    _tokens.clear()
    _limits.clear()


def retention_days_by_org(*, field: str) -> tuple[int, dict[int, int]]:
    """(the longest retention of any org, {org id: its retention}) for a retention limit
    field of OrgLimits (``retention_days``, ``traces_retention_days``): what a retention job
    needs to drop whole partitions first and trim orgs with shorter retention after."""
    default = OrgLimits._meta.get_field(field).default
    custom = dict(OrgLimits.objects.unscoped().values_list("org_id", field))
    days = {
        org_id: custom.get(org_id, default)
        for org_id in Organization.objects.values_list("id", flat=True)
    }
    return max([default, *days.values()]), days
