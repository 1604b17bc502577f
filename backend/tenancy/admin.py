"""The Django admin: where platform staff change what tenants may not (their quotas)."""

from django.contrib import admin
from django.core.exceptions import ValidationError

from backend.tenancy.models import Organization, OrgLimits
from backend.tenancy.services import limits_update


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]


@admin.register(OrgLimits)
class OrgLimitsAdmin(admin.ModelAdmin):
    """Per-org quotas, changed through the same service as ``manage.py set_limits`` (so the
    change is validated, the limit caches are cleared and the audit log records it)."""

    list_display = ["org", "ingestion_rate", "query_max_samples", "query_timeout_seconds"]
    search_fields = ["org__slug"]
    readonly_fields = ["org", "updated_at"]

    def get_queryset(self, request):
        return OrgLimits.objects.unscoped().select_related("org")

    def has_add_permission(self, request):
        # org_create makes every org's row (older orgs get theirs from `set_limits`)
        return False

    def save_model(self, request, obj, form, change):
        changes = {field: form.cleaned_data[field] for field in form.changed_data}
        if not changes:
            return
        try:
            limits_update(org=obj.org, changes=changes, actor=request.user)
        except ValidationError as exc:  # the form validated already; a race at most
            raise ValueError("; ".join(exc.messages)) from exc
