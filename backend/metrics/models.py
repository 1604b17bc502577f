"""The series catalog and metric metadata. Samples live in two raw-SQL tables (see
``storage.py``): ``metric_batches`` (the ingest outbox) and ``metric_blocks`` (compressed,
time-partitioned columnar blocks)."""

from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone

from backend.tenancy.models import Organization
from backend.tenancy.scoping import TenantManager


class Series(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # blake2b-64 of the sorted label set (see fingerprint()), unique per org.
    fingerprint = models.BigIntegerField()
    metric_name = models.CharField(max_length=1024)
    labels = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        db_table = "metric_series"
        constraints = [
            models.UniqueConstraint(fields=["org", "fingerprint"], name="series_org_fingerprint")
        ]
        indexes = [
            models.Index(fields=["org", "metric_name"], name="series_org_metric"),
            GinIndex(fields=["labels"], name="series_labels_gin", opclasses=["jsonb_path_ops"]),
        ]
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return f"{self.metric_name}{self.labels}"


class MetricMetadata(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    metric_family_name = models.CharField(max_length=1024)
    type = models.CharField(max_length=32, blank=True)
    help = models.TextField(blank=True)
    unit = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        db_table = "metric_metadata"
        constraints = [
            models.UniqueConstraint(
                fields=["org", "metric_family_name"], name="metadata_org_family"
            )
        ]

    def __str__(self) -> str:
        return self.metric_family_name
