"""Service, operation and resource catalogs of the span store. Spans themselves live in the
raw-SQL row head ``trace_spans`` and in ``trace_blocks`` (see ``storage/``)."""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from backend.tenancy.models import Organization
from backend.tenancy.scoping import TenantManager


class TraceService(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=512)
    first_seen = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        db_table = "trace_services"
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="trace_service_uniq")]

    def __str__(self) -> str:
        return self.name


class TraceOperation(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # (org_id, service_id) → trace_services (org_id, id) in the database (migration 0010).
    service = models.ForeignKey(
        TraceService, on_delete=models.CASCADE, related_name="operations", db_constraint=False
    )
    name = models.CharField(max_length=1024)
    kind = models.SmallIntegerField()  # OTLP SpanKind number
    first_seen = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        db_table = "trace_operations"
        constraints = [
            models.UniqueConstraint(
                fields=["org", "service", "name", "kind"], name="trace_operation_uniq"
            )
        ]

    def __str__(self) -> str:
        return self.name


class TraceResource(models.Model):
    """A resource's attributes (Jaeger's "process"), stored once and shared by its spans."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    attributes_hash = models.BigIntegerField()
    attributes = models.JSONField()

    objects = TenantManager()

    class Meta:
        db_table = "trace_resources"
        constraints = [
            models.UniqueConstraint(fields=["org", "attributes_hash"], name="trace_resource_uniq")
        ]

    def __str__(self) -> str:
        return f"resource {self.pk}"


class DependencyEdge(models.Model):
    """Calls from one service to another in one minute (rolled up from spans by beat)."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    minute = models.BigIntegerField(help_text="start of the minute, ms since the epoch")
    parent = models.CharField(max_length=512)
    child = models.CharField(max_length=512)
    calls = models.IntegerField()
    errors = models.IntegerField()
    duration_ns_sum = models.BigIntegerField(help_text="server side: the called span")
    # Cumulative counts at span_metrics.BUCKETS (seconds), Prometheus-histogram style.
    duration_buckets = ArrayField(models.BigIntegerField(), default=list)
    client_duration_ns_sum = models.BigIntegerField(
        default=0, help_text="client side: the calling span"
    )
    client_duration_buckets = ArrayField(models.BigIntegerField(), default=list)

    objects = TenantManager()

    class Meta:
        db_table = "trace_dependency_edges"
        constraints = [
            models.UniqueConstraint(
                fields=["org", "minute", "parent", "child"], name="dependency_edge_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.parent} → {self.child}"


class RollupState(models.Model):
    """How far the dependency rollup got (one row, not tenant data)."""

    name = models.CharField(max_length=64, unique=True)
    done_until_ms = models.BigIntegerField()

    class Meta:
        db_table = "trace_rollup_state"

    def __str__(self) -> str:
        return f"{self.name} until {self.done_until_ms}"


class MetricTotal(models.Model):
    """The running total of one span-metrics counter series (for cumulative samples)."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    fingerprint = models.BigIntegerField()
    total = models.FloatField()

    objects = TenantManager()

    class Meta:
        db_table = "trace_metric_totals"
        constraints = [
            models.UniqueConstraint(fields=["org", "fingerprint"], name="trace_metric_total_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.fingerprint} = {self.total}"
