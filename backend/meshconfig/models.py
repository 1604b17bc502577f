"""Mesh configuration: clusters, append-only revisions of a tenant's Istio resources, the
desired and applied revision of each cluster, the agents' reports, and telemetry settings.

Every model holds tenant data and goes through ``TenantManager`` (``.for_org(org)``)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from backend.tenancy.models import ApiToken, Organization
from backend.tenancy.scoping import TenantManager

# Cluster names look like Kubernetes names (DNS-1123 labels), so they can be used as a
# kubectl context or a folder name as they are.
cluster_name_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
    "Use 1-63 lowercase letters, digits and inner hyphens.",
)


class Cluster(models.Model):
    """A Kubernetes cluster of the tenant's mesh, where one ``canopy-agent`` runs.

    ``agent_token`` is the cluster's own API token (scopes ``config:read`` + ``config:report``);
    a request made with it acts for this cluster only (``selectors.cluster_for_token``)."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=63, validators=[cluster_name_validator])
    labels = models.JSONField(default=dict, blank=True)
    agent_token = models.OneToOneField(
        ApiToken,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="mesh_cluster",
        # The database holds (org_id, agent_token_id) → tenancy_apitoken (org_id, id) and
        # UNIQUE (org_id, agent_token_id) instead (migration 0003, docs/scaling.md).
        db_constraint=False,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        db_table = "mesh_clusters"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="mesh_cluster_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class Revision(models.Model):
    """One published bundle of resources. Append-only: never updated, never deleted (except
    with its org). ``number`` counts 1, 2, … per org; ``digest`` is the SHA-256 (hex) of the
    canonical bundle (``bundle.bundle_digest``)."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    digest = models.CharField(max_length=64)
    # Every foreign key between mesh tables is (org_id, x_id) → (org_id, id) in the database,
    # so the tables can be distributed by org (migration 0003, docs/scaling.md): hence
    # db_constraint=False on the Django fields.
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.CharField(max_length=1000, blank=True)
    # The canonical bundle: a list of resource dicts (apiVersion, kind, metadata, spec) in
    # canonical order.
    resources = models.JSONField(default=list)
    # {"valid": bool, "findings": [{code, severity, kind, namespace, name, path, message}]}
    validation = models.JSONField(default=dict)
    forced = models.BooleanField(default=False, help_text="published despite blocking errors")
    rollback_of = models.PositiveIntegerField(
        null=True, blank=True, help_text="the revision number this one restores"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        db_table = "mesh_revisions"
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["org", "number"], name="mesh_revision_unique_number")
        ]

    def __str__(self) -> str:
        return f"revision {self.number}"


class SyncState(models.TextChoices):
    SYNCED = "SYNCED"  # the agent applied the desired bundle (same digest)
    APPLYING = "APPLYING"  # the desired revision changed and the agent has not answered yet
    NACK = "NACK"  # the agent refused the desired revision (error says why)
    STALE = "STALE"  # no answer for the desired revision within STALE_AFTER, agent alive
    DISCONNECTED = "DISCONNECTED"  # never seen, or silent for 3 x its long-poll wait


class ClusterStatus(models.Model):
    """Desired vs applied revision of one cluster and what its agent last said. One row per
    cluster, created with it. ``state`` is stored as of the last write; the state shown is
    ``selectors.cluster_state(status, now)``, which adds STALE and DISCONNECTED by time."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # Unique in the database as (org_id, cluster_id), with (org_id, cluster_id) → mesh_clusters
    # (org_id, id): the same rows, org first (migration 0003, docs/scaling.md).
    cluster = models.OneToOneField(
        Cluster, on_delete=models.CASCADE, related_name="status", db_constraint=False
    )
    desired = models.ForeignKey(
        Revision,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    desired_at = models.DateTimeField(null=True, blank=True)
    applied = models.ForeignKey(
        Revision,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    applied_at = models.DateTimeField(null=True, blank=True)
    # The revision the agent last tried (ACK or NACK).
    attempted = models.ForeignKey(
        Revision,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    state = models.CharField(
        max_length=16, choices=SyncState.choices, default=SyncState.DISCONNECTED
    )
    last_seen = models.DateTimeField(null=True, blank=True)
    # The long-poll wait the agent last asked for; silent for 3 x this means DISCONNECTED.
    poll_wait_seconds = models.PositiveIntegerField(default=30)
    agent_version = models.CharField(max_length=100, blank=True)
    # For a NACK: {"message", "resource": {kind, namespace, name}, "path", ...}
    error = models.JSONField(default=dict, blank=True)
    last_attempt_id = models.CharField(max_length=100, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        db_table = "mesh_cluster_status"
        verbose_name_plural = "cluster statuses"

    def __str__(self) -> str:
        return f"{self.cluster_id}: {self.state}"


class AgentReport(models.Model):
    """One ACK or NACK, kept per (cluster, attempt id) so that a retried report changes
    nothing twice. The newest ``REPORTS_KEPT`` per cluster are kept."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    cluster = models.ForeignKey(
        Cluster, on_delete=models.CASCADE, related_name="reports", db_constraint=False
    )
    attempt_id = models.CharField(max_length=100)
    revision = models.ForeignKey(
        Revision,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
    )
    state = models.CharField(max_length=8)  # ACK | NACK
    error = models.JSONField(default=dict, blank=True)
    agent_version = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        db_table = "mesh_agent_reports"
        ordering = ["-created_at", "-id"]
        constraints = [
            # org first, so the key can be distributed by org (docs/scaling.md); equivalent to
            # (cluster, attempt_id), a cluster being of one org
            models.UniqueConstraint(
                fields=["org", "cluster", "attempt_id"], name="mesh_agent_report_unique_org_attempt"
            )
        ]

    def __str__(self) -> str:
        return f"{self.state} {self.attempt_id}"


class TelemetrySettings(models.Model):
    """Trace sampling and where telemetry goes, rendered into the next revision as a mesh-wide
    ``Telemetry`` resource (``telemetry.render_telemetry``)."""

    org = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="+")
    trace_sampling_percent = models.FloatField(default=1.0)
    traces = models.BooleanField(default=True)
    metrics = models.BooleanField(default=True)
    custom_tags = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        db_table = "mesh_telemetry_settings"
        verbose_name_plural = "telemetry settings"

    def __str__(self) -> str:
        return f"telemetry of {self.org_id}"
