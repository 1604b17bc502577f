from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from backend.tenancy.scoping import TenantManager

slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1-50 lowercase letters, digits and inner hyphens.",
)


class Organization(models.Model):
    """A tenant. Every row of tenant data points here."""

    slug = models.CharField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


# Roles that may manage members, tokens and limits.
MANAGER_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class Membership(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "user"], name="membership_unique_org_user")
        ]
        ordering = ["org_id", "user_id"]

    def __str__(self) -> str:
        return f"{self.user} in {self.org_id} as {self.role}"

    @property
    def can_manage(self) -> bool:
        return self.role in MANAGER_ROLES


class Scope(models.TextChoices):
    METRICS_WRITE = "metrics:write"
    TRACES_WRITE = "traces:write"
    METRICS_READ = "metrics:read"
    TRACES_READ = "traces:read"
    CONFIG_READ = "config:read"
    CONFIG_WRITE = "config:write"
    CONFIG_REPORT = "config:report"  # a mesh cluster's agent reports what it applied
    RULES_WRITE = "rules:write"
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope.values)
TOKEN_PREFIX = "cnp_"
# The display prefix ("cnp_" + 8 characters) identifies a token in lists without revealing it.
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 8


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class ApiToken(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=DISPLAY_PREFIX_LENGTH)
    secret_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


class AuditEvent(models.Model):
    """Who did what to an organization's settings, for the audit log."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["org", "-created_at"], name="audit_org_time")]

    def __str__(self) -> str:
        return f"{self.action} {self.target}"


MiB = 1024 * 1024
MAX_PROMOTED_ATTRIBUTES = 64  # names in promote_otel_resource_attributes
MAX_PROMOTED_ATTRIBUTE_LENGTH = 256  # characters of one name


# What an org admin may change of its own limits (within the *_max bounds); every other field
# protects the other tenants of the server and is the operator's: the Django admin and
# ``manage.py set_limits``.
TENANT_LIMIT_FIELDS = {
    "retention_days": "retention_days_max",
    "traces_retention_days": "traces_retention_days_max",
}


class OrgLimits(models.Model):
    """Per-tenant limits. Defaults are those of Cortex/Mimir/Grafana Cloud."""

    org = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="limits")
    ingestion_rate = models.PositiveIntegerField(default=10_000, help_text="samples/s")
    ingestion_burst_size = models.PositiveIntegerField(default=200_000, help_text="samples")
    max_global_series_per_user = models.PositiveIntegerField(default=150_000)
    max_global_series_per_metric = models.PositiveIntegerField(default=20_000)
    max_label_names_per_series = models.PositiveIntegerField(default=30)
    max_label_name_length = models.PositiveIntegerField(default=1024)
    max_label_value_length = models.PositiveIntegerField(default=2048)
    creation_grace_period_seconds = models.PositiveIntegerField(default=600)
    out_of_order_time_window_seconds = models.PositiveIntegerField(
        default=3600, help_text="samples older than this (relative to now) are refused"
    )
    max_request_bytes = models.PositiveIntegerField(default=100 * MiB)
    retention_days = models.PositiveIntegerField(default=30)
    # Traces (Tempo's defaults, counted in spans rather than bytes).
    traces_ingestion_rate = models.PositiveIntegerField(default=20_000, help_text="spans/s")
    traces_ingestion_burst_size = models.PositiveIntegerField(default=400_000, help_text="spans")
    max_attributes_per_span = models.PositiveIntegerField(
        default=128, help_text="further attributes are dropped (and counted)"
    )
    max_attribute_value_length = models.PositiveIntegerField(
        default=4096, help_text="longer values are truncated (and counted)"
    )
    max_spans_per_trace = models.PositiveIntegerField(
        default=50_000, help_text="spans beyond this, per trace and day, are refused"
    )
    traces_retention_days = models.PositiveIntegerField(default=14)
    traces_out_of_order_window_seconds = models.PositiveIntegerField(
        default=600,
        help_text="spans arriving up to this long after their start are still counted in the "
        "service graph, dependencies and span metrics",
    )
    # The plan's bounds: an org admin sets its retention up to these; the operator sets them.
    retention_days_max = models.PositiveIntegerField(
        default=90, help_text="the most retention_days an org admin may choose"
    )
    traces_retention_days_max = models.PositiveIntegerField(
        default=30, help_text="the most traces_retention_days an org admin may choose"
    )
    # PromQL (Prometheus's defaults for samples and timeout).
    query_max_series = models.PositiveIntegerField(
        default=100_000, help_text="series one selector of a query may fetch"
    )
    query_max_samples = models.PositiveIntegerField(
        default=50_000_000, help_text="samples a query may load into memory"
    )
    query_timeout_seconds = models.PositiveIntegerField(default=120)
    query_max_subquery_steps = models.PositiveIntegerField(
        default=1_000_000, help_text="steps one subquery may evaluate (sized before allocating)"
    )
    max_global_exemplars_per_user = models.PositiveIntegerField(
        default=100_000, help_text="exemplars kept per org, the newest; 0 drops them"
    )
    # OTLP metrics (Mimir's promote_otel_resource_attributes, Prometheus's
    # otlp.promote_resource_attributes).
    promote_otel_resource_attributes = ArrayField(
        models.CharField(max_length=MAX_PROMOTED_ATTRIBUTE_LENGTH),
        size=MAX_PROMOTED_ATTRIBUTES,
        default=list,
        blank=True,
        help_text="OTLP resource attributes added as labels to every series of their resource",
    )
    # Prometheus's otlp.promote_scope_metadata (3.6+), off by default as there.
    promote_otel_scope_metadata = models.BooleanField(
        default=False,
        help_text="OTLP instrumentation scope (name, version, schema URL, attributes) added as "
        "otel_scope_* labels to every series of the scope",
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        verbose_name_plural = "org limits"

    def __str__(self) -> str:
        return f"limits of {self.org_id}"


class Invitation(models.Model):
    """An invitation to join an org, sent to an email address. The link's secret is never
    stored (only its hash); whoever accepts must be signed in with that email address."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    secret_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"invitation of {self.email} to {self.org_id}"

    def is_open(self, now=None) -> bool:
        now = now or timezone.now()
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now


class OrgDeletion(models.Model):
    """The record of an org's deletion: it outlives the org (no foreign key to it), so the
    audit trail of who deleted what, and how many rows went, stays."""

    deleted_org = models.PositiveIntegerField(help_text="the id the organization had")
    slug = models.CharField(max_length=50)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    rows_deleted = models.JSONField(default=dict, blank=True, help_text="table -> rows")

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"deletion of {self.slug} ({self.deleted_org})"
