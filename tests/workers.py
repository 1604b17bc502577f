"""Real Celery worker processes for tests whose flow needs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def worker_database_url() -> str:
    """DATABASE_URL with the test database in place of the real one (for worker processes)."""
    url = urlsplit(settings.DATABASE_URL)
    return urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"]))


@contextmanager
def celery_worker(*, queues: str = "ingest", visibility_timeout: int = 300, log_path=None):
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_VISIBILITY_TIMEOUT": str(visibility_timeout),
        "PYTHONUNBUFFERED": "1",
    }
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "backend",
            "worker",
            "--queues",
            queues,
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        kill(proc, signal.SIGTERM)
        if log_path:
            log.close()


def kill(proc: subprocess.Popen, sig=signal.SIGKILL, timeout: float = 15) -> None:
    """Signal the worker's whole process group (the parent and its pool children)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)


def wait_until(predicate, timeout: float, message: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message)


def kill_a_worker_mid_drain(*, table: str, pending, stored, batches: int, log_path) -> None:
    """Make a fresh worker stop *inside* its drain transaction (after it claimed, i.e. deleted,
    the batches), SIGKILL it, check nothing was lost or stored, then start a second worker
    and wait until the redelivered task has drained the outbox.

    The worker is held by the advisory lock it takes before creating ``table``'s partition of
    today (a fresh process has not created it yet). ``pending()`` / ``stored()`` count the
    org's outbox rows and stored items.
    """
    from backend.pipeline import partitions

    today = time.time_ns() // 10**6 // partitions.DAY_MS * partitions.DAY_MS
    lock = list(partitions.lock_key(table, today))
    blocker = psycopg.connect(worker_database_url(), autocommit=True)
    blocker.execute("SELECT pg_advisory_lock(%s, %s)", lock)
    try:
        with celery_worker(visibility_timeout=3, log_path=log_path) as first:

            def worker_is_blocked():
                row = blocker.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()
                return row[0] > 0

            wait_until(worker_is_blocked, 60, "the worker never reached the batch")
            kill(first)  # SIGKILL: no chance to finish, roll back or acknowledge
        blocker.execute("SELECT pg_advisory_unlock(%s, %s)", lock)
        # The killed worker's transaction died with its connection: nothing is lost...
        wait_until(lambda: pending() == batches, 10, "batches vanished with the worker")
        assert stored() == 0
        # ...and the unacknowledged task is handed to the next worker.
        with celery_worker(visibility_timeout=3, log_path=log_path):
            wait_until(lambda: pending() == 0, 60, "the task was not redelivered")
    finally:
        blocker.close()
