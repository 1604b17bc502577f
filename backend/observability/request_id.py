"""A request id on every log line: taken from ``X-Request-ID`` when the caller sends a sane
one (a proxy's), made up otherwise, bound to structlog's context for the request, answered in
the response header, and carried to Celery tasks the request enqueues (a task header), where
it is bound again for the task's lines."""

from __future__ import annotations

import re
import uuid

import structlog

HEADER = "X-Request-ID"
CELERY_HEADER = "canopy_request_id"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_from(value: str | None) -> str:
    return value if value and _SANE.fullmatch(value) else uuid.uuid4().hex


def current_request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = request_id_from(request.headers.get(HEADER))
        request.request_id = rid
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        try:
            response = self.get_response(request)
        finally:
            structlog.contextvars.clear_contextvars()
        response[HEADER] = rid
        return response


def _add_header(headers=None, **_):
    rid = current_request_id()
    if rid and headers is not None:
        headers.setdefault(CELERY_HEADER, rid)


def _bind(task=None, **_):
    structlog.contextvars.clear_contextvars()
    rid = getattr(task.request, CELERY_HEADER, None) if task is not None else None
    if rid is None and task is not None:
        rid = (task.request.headers or {}).get(CELERY_HEADER) if task.request.headers else None
    structlog.contextvars.bind_contextvars(request_id=rid or f"task-{uuid.uuid4().hex}")


def _unbind(**_):
    structlog.contextvars.clear_contextvars()


def connect_celery_signals() -> None:
    from celery import signals

    signals.before_task_publish.connect(_add_header, weak=False)
    signals.task_prerun.connect(_bind, weak=False)
    signals.task_postrun.connect(_unbind, weak=False)
