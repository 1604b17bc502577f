"""The Celery application. Queues are named in one place: :class:`Queue`."""

import enum
import os

from celery import Celery

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
