"""No secrets in logs: a 500 with a password and a token secret in its frames logs a plain
traceback (no local variables), on one line per event with the request id, in both formats."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from django.test import Client

from backend.observability.logs import log_formatter
from tests.helpers.credentials import PASSWORD

pytestmark = pytest.mark.django_db
SECRET = "hunter2-s3cr3t-in-a-local"


@pytest.fixture(params=["console", "json"])
def log_text(request):
    """What the root logger writes, through Canopy's formatter in each format."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter(request.param))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield request.param, stream
    finally:
        root.removeHandler(handler)
        structlog.contextvars.clear_contextvars()


@pytest.mark.urls("tests.security.urls_boom")
def test_a_500_logs_no_local_variables(log_text):
    fmt, stream = log_text
    client = Client(raise_request_exception=False)
    token = "cnp_live_secret_in_the_query"
    response = client.get("/boom", {"t": token}, HTTP_X_REQUEST_ID="req-42")
    assert response.status_code == 500
    assert response["X-Request-ID"] == "req-42"
    text = stream.getvalue()
    assert "RuntimeError: a fault" in text  # the traceback is there...
    assert SECRET not in text  # ...without the frames' locals
    assert "hunter2" not in text
    assert token not in text  # a local of the failing view too
    if fmt == "json":
        events = [json.loads(line) for line in text.splitlines() if line.strip()]
        (error,) = [e for e in events if e["event"].startswith("Internal Server Error")]
        assert error["request_id"] == "req-42"
        assert "RuntimeError" in error["exception"]
    else:
        assert "request_id=req-42" in text


def test_every_response_carries_a_request_id_and_a_bad_one_is_replaced(client):
    made_up = client.get("/healthz")
    assert len(made_up["X-Request-ID"]) == 32
    assert client.get("/healthz", HTTP_X_REQUEST_ID="ok.id-1")["X-Request-ID"] == "ok.id-1"
    injected = client.get("/healthz", HTTP_X_REQUEST_ID="bad\nid" + "x" * 100)
    assert injected["X-Request-ID"] != "bad\nid" + "x" * 100


def test_a_300_character_username_login_logs_no_password(log_text, tenants):
    _, stream = log_text
    client = Client(raise_request_exception=False)
    response = client.post("/login/", {"username": "u" * 300, "password": PASSWORD})
    assert response.status_code < 500
    assert PASSWORD not in stream.getvalue()


def test_the_request_id_travels_to_celery_tasks():
    from types import SimpleNamespace

    from backend.observability import request_id

    structlog.contextvars.bind_contextvars(request_id="req-7")
    headers: dict = {}
    request_id._add_header(headers=headers)  # before_task_publish, in the web process
    assert headers == {request_id.CELERY_HEADER: "req-7"}
    structlog.contextvars.clear_contextvars()
    task = SimpleNamespace(request=SimpleNamespace(headers=headers, **headers))
    request_id._bind(task=task)  # task_prerun, in the worker
    assert request_id.current_request_id() == "req-7"
    request_id._unbind()
    request_id._bind(task=SimpleNamespace(request=SimpleNamespace(headers=None)))
    assert request_id.current_request_id().startswith("task-")  # beat's tasks get their own
    request_id._unbind()
