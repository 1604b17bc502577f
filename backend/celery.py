"""The Celery application. Queues are named in one place: :class:`Queue`."""

import enum
import os

from celery import Celery
from celery.signals import worker_process_init

from backend.gc_tuning import settle_after_boot

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")


class Queue(enum.StrEnum):
    DEFAULT = "default"
    INGEST = "ingest"
    MAINTENANCE = "maintenance"
    RULES = "rules"


# Every task's queue, in one place (Celery deprecates the per-task ``queue`` attribute).
TASK_ROUTES = {
    "backend.pipeline.tasks.drain_org": {"queue": Queue.INGEST.value},
    "backend.pipeline.tasks.*": {"queue": Queue.MAINTENANCE.value},
    "backend.metrics.tasks.*": {"queue": Queue.MAINTENANCE.value},
    "backend.tracing.tasks.*": {"queue": Queue.MAINTENANCE.value},
    "backend.rules.tasks.*": {"queue": Queue.RULES.value},
}

app = Celery("canopy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = TASK_ROUTES
app.autodiscover_tasks(
    ["backend.pipeline", "backend.tenancy", "backend.metrics", "backend.tracing", "backend.rules"]
)


@worker_process_init.connect
def _settle(**_: object) -> None:
    settle_after_boot()  # each pool process, once it has booted
