"""``/metrics``: Canopy's own health in Prometheus's text format.

Counted as they happen (``prometheus_client``; shared between gunicorn, Celery, the OTLP/gRPC
receiver and the agent server through ``PROMETHEUS_MULTIPROC_DIR`` when ``make run`` sets
it): HTTP requests by route, method and status with latency histograms, Celery task durations
by task and outcome, what the ingest accept services accepted by signal and protocol, SQL
statement time by statement kind (a Django execute wrapper on every connection) and the
database connections each process opened.
Read at scrape time: ingest refusals by signal and reason (the Redis counters the dashboard
shows), each signal's outbox depth and drain lag, Celery queue depths, and the server's
connections to Canopy's database by state next to ``max_connections``.

Protected by ``CANOPY_METRICS_TOKEN`` (a bearer token) when it is set; open otherwise.
"""

from __future__ import annotations

import hmac
import os
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from psycopg import sql

from backend.celery import Queue

HTTP_REQUESTS = Counter(
    "canopy_http_requests_total",
    "HTTP requests answered, by route pattern, method and status code.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "canopy_http_request_duration_seconds",
    "Time to answer an HTTP request, by route pattern and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
)
TASK_DURATION = Histogram(
    "canopy_celery_task_duration_seconds",
    "Time a Celery task ran, by task name and outcome.",
    ["task", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
INGEST_ACCEPTED = Counter(
    "canopy_ingest_accepted_total",
    "Items accepted (durably handed off) by the ingest accept services, by signal (samples,"
    " exemplars, otlp_metric_points, spans) and protocol.",
    ["signal", "protocol"],
)
DB_STATEMENT_DURATION = Histogram(
    "canopy_db_statement_duration_seconds",
    "Time of each SQL statement sent through Django's database connections, by statement kind"
    " (the first keyword) and outcome.",
    ["kind", "outcome"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30),
)
DB_CONNECTIONS_OPENED = Counter(
    "canopy_db_connections_opened_total",
    "Database connections opened by Canopy's processes (Django reuses each for"
    " DATABASE_CONN_MAX_AGE seconds: a fast rise means connections are not reused).",
)
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class HttpMetricsMiddleware:
    """Counts every request by its URL *pattern* (``jaeger/api/traces/<str:trace_id>``), never
    the raw path, so that the number of series stays bounded whatever clients send."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.route if match is not None else "") or "unmatched"
        method = request.method if request.method in _METHODS else "OTHER"
        HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
        HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - started)
        return response


# Statement kinds counted (anything else is "other"), so the label stays bounded.
_KINDS = frozenset(
    {
        "select",
        "insert",
        "update",
        "delete",
        "with",
        "copy",
        "begin",
        "commit",
        "rollback",
        "savepoint",
        "release",
        "set",
        "lock",
        "create",
        "alter",
        "drop",
        "truncate",
        "notify",
        "listen",
        "explain",
        "show",
    }
)


def _leading_text(statement) -> str:
    # psycopg.sql.Composed holds its parts in ``_obj``; sql.SQL holds its text there.
    for _ in range(4):
        if isinstance(statement, str):
            return statement
        if isinstance(statement, bytes):
            return statement[:32].decode("ascii", "replace")
        inner = getattr(statement, "_obj", None)
        statement = inner[0] if isinstance(inner, list) and inner else inner
    return ""


def _statement_kind(statement) -> str:
    sql_text = _leading_text(statement)
    head = sql_text.lstrip(" \t\n(").split(None, 1)
    kind = head[0].lower() if head else ""
    return kind if kind in _KINDS else "other"


_statement_children: dict[tuple[str, str], object] = {}


def _timed_statement(execute, sql_text, params, many, context):
    started = time.perf_counter()
    outcome = "error"
    try:
        result = execute(sql_text, params, many, context)
        outcome = "ok"
        return result
    finally:
        elapsed = time.perf_counter() - started
        key = (_statement_kind(sql_text), outcome)
        child = _statement_children.get(key)
        if child is None:  # labels() takes a lock and a dict look-up: once per kind
            child = _statement_children.setdefault(key, DB_STATEMENT_DURATION.labels(*key))
        child.observe(elapsed)


def _on_connection_created(sender, connection, **_):
    DB_CONNECTIONS_OPENED.inc()
    if _timed_statement not in connection.execute_wrappers:
        # First in the list: ``connection.execute_wrapper()`` blocks pop the *last* wrapper,
        # and a connection may be opened inside one.
        connection.execute_wrappers.insert(0, _timed_statement)


def connect_db_signals() -> None:
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection_created, weak=False)


def ingest_accepted(*, signal: str, protocol: str, n: int) -> None:
    """Called by the ingest accept services once ``n`` items of a signal are durably stored."""
    if n > 0:
        INGEST_ACCEPTED.labels(signal, protocol).inc(n)


class _ScrapeTimeCollector:
    """What is read from PostgreSQL and Redis when Prometheus scrapes."""

    def collect(self):
        from backend.pipeline.registry import signals_all
        from backend.tenancy.rejections import rejections_all

        depth = GaugeMetricFamily(
            "canopy_outbox_batches", "Accepted batches waiting to be drained.", labels=["signal"]
        )
        lag = GaugeMetricFamily(
            "canopy_outbox_oldest_seconds",
            "Age of the oldest batch waiting to be drained (0 when none).",
            labels=["signal"],
        )
        with connection.cursor() as cur:
            for store in signals_all():
                cur.execute(
                    sql.SQL(
                        "SELECT count(*), coalesce(extract(epoch FROM now() - min(received_at)),"
                        " 0) FROM {}"
                    ).format(sql.Identifier(store.outbox_table))
                )
                count, age = cur.fetchone()
                depth.add_metric([store.name], count)
                lag.add_metric([store.name], float(age))
        yield depth
        yield lag
        refused = GaugeMetricFamily(
            "canopy_ingest_refused",
            "Samples or spans refused since the counters began, by signal and reason.",
            labels=["signal", "reason"],
        )
        for (signal, reason), n in sorted(rejections_all().items()):
            refused.add_metric([signal, reason], n)
        yield refused
        queued = GaugeMetricFamily(
            "canopy_celery_queue_length", "Tasks waiting in each Celery queue.", labels=["queue"]
        )
        from django_redis import get_redis_connection

        redis = get_redis_connection("default")
        for queue in Queue:
            queued.add_metric([queue.value], redis.llen(queue.value))
        yield queued
        connections = GaugeMetricFamily(
            "canopy_db_server_connections",
            "Connections to Canopy's database on the PostgreSQL server, by state (every process"
            " and client of that database, read from pg_stat_activity).",
            labels=["state"],
        )
        with connection.cursor() as cur:
            cur.execute(
                "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() GROUP BY 1 ORDER BY 1"
            )
            for state, count in cur.fetchall():
                connections.add_metric([state], count)
            cur.execute("SELECT current_setting('max_connections')::int")
            limit = cur.fetchone()[0]
        yield connections
        yield GaugeMetricFamily(
            "canopy_db_server_max_connections",
            "PostgreSQL's max_connections (the ceiling of all connections above).",
            value=limit,
        )


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in (
            HTTP_REQUESTS,
            HTTP_LATENCY,
            TASK_DURATION,
            INGEST_ACCEPTED,
            DB_STATEMENT_DURATION,
            DB_CONNECTIONS_OPENED,
        ):
            registry.register(collector)
    registry.register(_ScrapeTimeCollector())
    return registry


def metrics_view(request: HttpRequest) -> HttpResponse:
    wanted = settings.METRICS_TOKEN
    if wanted:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {wanted}".encode()):
            response = HttpResponse("a bearer token is needed\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="canopy-metrics"'
            return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


_task_started: dict[str, float] = {}


def _task_start(task_id=None, **_):
    _task_started[task_id] = time.perf_counter()


def _task_end(task_id=None, task=None, state=None, **_):
    started = _task_started.pop(task_id, None)
    if started is not None and task is not None:
        outcome = "success" if state == "SUCCESS" else "failure"
        TASK_DURATION.labels(task.name, outcome).observe(time.perf_counter() - started)


def connect_celery_signals() -> None:
    from celery import signals

    signals.task_prerun.connect(_task_start, weak=False)
    signals.task_postrun.connect(_task_end, weak=False)
