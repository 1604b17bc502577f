"""Celery tasks of the tracing domain (the drain, sweep and retention are the pipeline's)."""

from celery import shared_task

from backend.tracing import dependencies


@shared_task
def rollup_dependencies() -> int:
    return dependencies.rollup_due()


@shared_task
def cut_blocks() -> int:
    return dependencies.blocks_cut_due()
