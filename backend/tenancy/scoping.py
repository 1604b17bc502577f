"""Fail-closed tenant scoping for every model that holds an organization's data.

``Model.objects.all()`` raises: the only way to rows is ``Model.objects.for_org(org)``. The
escape hatch for maintenance jobs that really span tenants is ``Model.objects.unscoped()``,
named so it is easy to grep for and to question in review.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from backend.tenancy.models import Organization


class TenantScopeError(RuntimeError):
    """A query on tenant data was attempted without naming the tenant."""


class TenantQuerySet(models.QuerySet):
    pass


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    org_field = "org"

    def get_queryset(self):
        if getattr(self, "instance", None) is not None:
            # A related manager (org.tokens, user.memberships) is anchored to one object already.
            return super().get_queryset()
        raise TenantScopeError(
            f"{self.model.__name__} holds tenant data: use .for_org(org) or, for cross-tenant "
            "maintenance only, .unscoped()"
        )

    def for_org(self, org: Organization | int | None) -> TenantQuerySet:
        if org is None:
            raise TenantScopeError(f"{self.model.__name__}.for_org() needs an organization")
        org_id = org if isinstance(org, int) else org.pk
        if org_id is None:
            raise TenantScopeError("unsaved organization")
        return self.unscoped().filter(**{f"{self.org_field}_id": org_id})

    def unscoped(self) -> TenantQuerySet:
        return super().get_queryset()
