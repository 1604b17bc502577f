"""Rule groups, alert state and notification targets of each org.

A group's rules are kept as parsed (``rules``: the ``rulefmt`` dicts, in file order) so the
evaluator never re-reads YAML. ``next_eval_ms`` is the scheduler's compare-and-set slot: a
worker evaluates a group only after moving it forward (see ``services.group_claim``).
"""

from django.db import models

from backend.tenancy.models import Organization
from backend.tenancy.scoping import TenantManager


class RuleGroup(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    namespace = models.CharField(max_length=256)
    name = models.CharField(max_length=256)
    interval_ms = models.BigIntegerField(null=True, blank=True)  # null: the default
    limit = models.PositiveIntegerField(default=0)
    rules = models.JSONField(default=list)
    position = models.PositiveIntegerField(default=0)  # order within the namespace
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Scheduling and the last evaluation (what /api/v1/rules shows).
    next_eval_ms = models.BigIntegerField(default=0)
    last_eval_ms = models.BigIntegerField(null=True, blank=True)
    last_duration_s = models.FloatField(default=0)
    # Per rule, in order: {"health", "lastError", "lastEvaluation", "evaluationTime"}
    rule_health = models.JSONField(default=list)

    objects = TenantManager()

    class Meta:
        db_table = "rule_groups"
        constraints = [
            models.UniqueConstraint(fields=["org", "namespace", "name"], name="rule_group_unique")
        ]
        indexes = [models.Index(fields=["next_eval_ms"], name="rule_group_due")]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class AlertState(models.Model):
    """One alert of an alerting rule: active (pending or firing) or recently resolved (kept
    15 minutes to resend its resolution, as the alert-generator specification asks)."""

    PENDING, FIRING, INACTIVE = "pending", "firing", "inactive"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # (org_id, group_id) → rule_groups (org_id, id) in the database (migration 0003).
    group = models.ForeignKey(
        RuleGroup, on_delete=models.CASCADE, related_name="alerts", db_constraint=False
    )
    rule_index = models.PositiveIntegerField()
    rule_name = models.CharField(max_length=1024)
    fingerprint = models.CharField(max_length=64)  # of the labels
    labels = models.JSONField()
    annotations = models.JSONField(default=dict)
    state = models.CharField(max_length=16)
    value = models.FloatField()  # NaN and infinities are PostgreSQL floats too
    active_at_ms = models.BigIntegerField()
    fired_at_ms = models.BigIntegerField(null=True)
    resolved_at_ms = models.BigIntegerField(null=True)
    last_sent_ms = models.BigIntegerField(null=True)
    valid_until_ms = models.BigIntegerField(null=True)
    keep_firing_since_ms = models.BigIntegerField(null=True)

    objects = TenantManager()

    class Meta:
        db_table = "rule_alerts"
        constraints = [
            # org first, so the key can be distributed by org (docs/scaling.md); equivalent to
            # (group, rule_index, fingerprint), a group being of one org
            models.UniqueConstraint(
                fields=["org", "group", "rule_index", "fingerprint"], name="rule_alert_unique_org"
            )
        ]
        indexes = [models.Index(fields=["org", "state"], name="rule_alert_org_state")]

    def __str__(self) -> str:
        return f"{self.rule_name} {self.state}"


class AlertingConfig(models.Model):
    """Where an org's alerts go, and the org's rule limits."""

    org = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="+")
    # {"alertmanagers": [{"url", "bearer_token" | "basic_auth": {...}}], "webhooks": [{"url"}]}
    targets = models.JSONField(default=dict)
    min_interval_seconds = models.PositiveIntegerField(default=10)
    max_groups = models.PositiveIntegerField(default=100)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        db_table = "rule_alerting_config"

    def __str__(self) -> str:
        return f"alerting of {self.org_id}"


class Notification(models.Model):
    """A batch of alerts on its way to the org's targets (one row per target), retried with
    backoff; a delivered row is deleted, a failing one shows its error."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    target_url = models.TextField()
    payload = models.JSONField()
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        db_table = "rule_notifications"
        indexes = [models.Index(fields=["next_attempt_at"], name="rule_notification_due")]

    def __str__(self) -> str:
        return f"notification to {self.target_url}"


class DeliveryStatus(models.Model):
    """The last delivery outcome per target, shown to the tenant."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    target_url = models.TextField()
    last_success_at = models.DateTimeField(null=True)
    last_error_at = models.DateTimeField(null=True)
    last_error = models.TextField(blank=True, default="")
    sent_alerts = models.PositiveBigIntegerField(default=0)
    failed_attempts = models.PositiveBigIntegerField(default=0)

    objects = TenantManager()

    class Meta:
        db_table = "rule_delivery_status"
        constraints = [
            models.UniqueConstraint(fields=["org", "target_url"], name="rule_delivery_unique")
        ]

    def __str__(self) -> str:
        return f"delivery to {self.target_url}"
