"""The Celery application. Queues are named in one place: :class:`Queue`."""

import enum
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")


class Queue(enum.StrEnum):
    DEFAULT = "default"
    INGEST = "ingest"
    MAINTENANCE = "maintenance"


app = Celery("canopy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["backend.tenancy", "backend.metrics", "backend.tracing", "ingest"])
