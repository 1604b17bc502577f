"""The series catalog and metric metadata. Samples live in two raw-SQL tables (see
``storage.py``): ``metric_batches`` (the ingest outbox) and ``metric_blocks`` (compressed,
time-partitioned columnar blocks).

Label sets are stored the way Prometheus' index stores them: each distinct (name, value) pair
of an org once, in ``metric_label_pairs``, and a series as the array of its pairs' ids, with a
GIN index on that array serving as the postings lists (series by label pair).
"""

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone

from backend.tenancy.models import Organization
from backend.tenancy.scoping import TenantManager


class LabelPair(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # blake2b-64 of name and value: a short key for uniqueness (values may be 2 KiB long).
    pair_hash = models.BigIntegerField()
    name = models.CharField(max_length=1024)
    value = models.TextField()

    objects = TenantManager()

    class Meta:
        db_table = "metric_label_pairs"
        constraints = [
            models.UniqueConstraint(fields=["org", "pair_hash"], name="label_pair_org_hash")
        ]
        indexes = [models.Index(fields=["org", "name"], name="label_pair_org_name")]

    def __str__(self) -> str:
        return f"{self.name}={self.value!r}"


class Series(models.Model):
    # No foreign-key constraint in the database: checking it cost ~10 µs per new series at
    # commit, and a Prometheus shard's first request creates thousands. Deleting an org still
    # deletes its series (Django cascades), and nothing else writes org ids here.
    org = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    # blake2b-64 of the sorted label set (see catalog.fingerprint), unique per org.
    fingerprint = models.BigIntegerField()
    metric_name = models.CharField(max_length=1024)
    label_ids = ArrayField(models.IntegerField())
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        db_table = "metric_series"
        constraints = [
            models.UniqueConstraint(fields=["org", "fingerprint"], name="series_org_fingerprint")
        ]
        indexes = [
            models.Index(fields=["org", "metric_name"], name="series_org_metric"),
            GinIndex(fields=["label_ids"], name="series_label_ids_gin"),
        ]
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return f"{self.metric_name} #{self.pk}"


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


class MetricExemplar(models.Model):
    """One exemplar of a series: a sample value at a time, with the trace that produced it.

    Compact: the trace and span ids as bytes, any other exemplar labels as a short JSON list of
    pairs (Prometheus caps an exemplar's labels at 128 characters). One exemplar per series and
    timestamp (a retried write stores nothing twice). Each org keeps its newest
    ``OrgLimits.max_global_exemplars_per_user`` (a ring, as Mimir's per-tenant exemplar storage).
    """

    org = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    series_id = models.BigIntegerField()
    timestamp_ms = models.BigIntegerField()
    value = models.FloatField()
    trace_id = models.BinaryField(max_length=16, null=True)
    span_id = models.BinaryField(max_length=8, null=True)
    labels = models.JSONField(default=list)  # [[name, value], ...] besides trace_id/span_id

    objects = TenantManager()

    class Meta:
        db_table = "metric_exemplars"
        constraints = [
            models.UniqueConstraint(
                fields=["org", "series_id", "timestamp_ms"], name="exemplar_org_series_ts"
            )
        ]
        indexes = [models.Index(fields=["org", "timestamp_ms"], name="exemplar_org_ts")]

    def __str__(self) -> str:
        return f"exemplar of series #{self.series_id} at {self.timestamp_ms}"
