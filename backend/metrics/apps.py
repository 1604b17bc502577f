from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "backend.metrics"
    label = "metrics"
    verbose_name = "Metrics"

    def ready(self) -> None:
        from backend.metrics.services import SIGNAL
        from backend.metrics.storage.outbox import batches_drain
        from backend.metrics.storage.retention import org_samples_delete_before
        from backend.pipeline.registry import SignalStore, signal_register

        signal_register(
            SignalStore(
                name=SIGNAL,
                outbox_table="metric_batches",
                drain_once=lambda org_id: batches_drain(org_id=org_id),
                partitioned_table="metric_blocks",
                key_units_per_ms=1,  # window_start, ms
                retention_field="retention_days",
                org_trim=lambda org_id, cutoff: org_samples_delete_before(
                    org_id=org_id, cutoff_ms=cutoff
                ),
            )
        )
