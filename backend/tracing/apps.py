from django.apps import AppConfig


class TracingConfig(AppConfig):
    name = "backend.tracing"
    label = "tracing"
    verbose_name = "Tracing"

    def ready(self) -> None:
        from backend.pipeline.registry import SignalStore, signal_register
        from backend.tracing.services import SIGNAL
        from backend.tracing.storage import NS_PER_MS, batches_drain, org_spans_delete_before

        signal_register(
            SignalStore(
                name=SIGNAL,
                outbox_table="trace_batches",
                drain_once=lambda org_id: batches_drain(org_id=org_id),
                partitioned_table="trace_spans",  # the row head
                also_partitioned=("trace_blocks",),  # by the blocks' hour window
                key_units_per_ms=NS_PER_MS,  # start_ns
                retention_field="traces_retention_days",
                org_trim=lambda org_id, cutoff: org_spans_delete_before(
                    org_id=org_id, cutoff_ns=cutoff
                ),
                side_by_side=True,  # (the store lock is shared by drains)
            )
        )
