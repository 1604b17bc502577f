"""Celery tasks of the metrics domain (the drain, sweep and retention are the pipeline's)."""

from celery import shared_task

from backend.metrics.storage.compaction import blocks_compact


@shared_task
def compact_blocks() -> int:
    return blocks_compact()
