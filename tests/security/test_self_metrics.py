"""/metrics: Canopy's own health for Prometheus (requests by route and status with latency,
refusals by signal and reason, outbox depth and lag, queue depths), behind its token."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend.tenancy.rejections import rejections_count

pytestmark = pytest.mark.django_db
SCRAPE = {"HTTP_ACCEPT": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4"}


def samples(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_self_metrics_count_requests_refusals_and_queues(client, tenants, settings):
    settings.METRICS_TOKEN = None  # open, as in `make run`
    client.get("/healthz")
    client.get("/jaeger/api/traces/abc")  # 401: no token; counted under its pattern
    rejections_count(org_id=tenants.org.pk, signal="metrics", reasons={"too_old": 3})
    rejections_count(org_id=tenants.other_org.pk, signal="metrics", reasons={"too_old": 2})
    response = client.get("/metrics", **SCRAPE)
    assert response.status_code == 200
    got = samples(response.content.decode())
    assert (
        got[
            (
                "canopy_http_requests_total",
                (("method", "GET"), ("route", "healthz"), ("status", "200")),
            )
        ]
        >= 1
    )
    assert any(
        name == "canopy_http_requests_total" and dict(labels)["route"].endswith("<str:trace_id>")
        for name, labels in got
    )
    assert any(name == "canopy_http_request_duration_seconds_bucket" for name, _ in got)
    assert got[("canopy_ingest_refused", (("reason", "too_old"), ("signal", "metrics")))] == 5
    assert ("canopy_outbox_batches", (("signal", "metrics"),)) in got
    assert ("canopy_outbox_oldest_seconds", (("signal", "traces"),)) in got
    assert ("canopy_celery_queue_length", (("queue", "ingest"),)) in got


def test_the_metrics_token_protects_them(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics", **SCRAPE).status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope", **SCRAPE)
    assert wrong.status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret", **SCRAPE)
    assert ok.status_code == 200 and b"canopy_http_requests_total" in ok.content


def test_browsers_still_get_the_metrics_explorer(client, tenants):
    client.force_login(tenants.owner)
    page = client.get("/metrics", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert page.status_code == 200 and b"<html" in page.content.lower()


def test_the_grafana_dashboard_queries_metrics_that_exist():
    import json
    import re
    from pathlib import Path

    dashboard = json.loads(
        (Path(__file__).parents[2] / "docker" / "grafana" / "canopy-self.json").read_text()
    )
    exported = {
        "canopy_http_requests_total",
        "canopy_http_request_duration_seconds_bucket",
        "canopy_ingest_refused",
        "canopy_outbox_batches",
        "canopy_outbox_oldest_seconds",
        "canopy_celery_queue_length",
        "canopy_celery_task_duration_seconds_bucket",
        "canopy_ingest_accepted_total",
        "canopy_db_statement_duration_seconds_bucket",
        "canopy_db_server_connections",
        "canopy_db_server_max_connections",
    }
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"canopy_[a-z_]+", target["expr"])
    }
    assert used and used <= exported


# ------------------------------------------- accepted counts, SQL statement time, connections


def _value(got: dict, name: str, **labels) -> float:
    return got.get((name, tuple(sorted(labels.items()))), 0.0)


def _scrape(client) -> dict:
    response = client.get("/metrics", **SCRAPE)
    assert response.status_code == 200
    return samples(response.content.decode())


def test_accepted_counts_by_signal_follow_what_was_stored(client, tenants, settings):
    from tests.helpers.otlp import otlp_request, post_otlp, span
    from tests.helpers.otlp_metrics import counter, exemplar, gauge, metrics_request
    from tests.ingest.test_remote_write_http import now_ms, push, write_request

    settings.METRICS_TOKEN = None
    before = _scrape(client)
    token = tenants.token(["metrics:write", "traces:write"])

    t = now_ms()
    body = write_request([([("__name__", "up"), ("job", "a")], [(t - 2000, 1.0), (t - 1000, 1.0)])])
    assert push(client, body, token).status_code == 204
    # rejected samples (too far in the future) are not counted as accepted
    future = write_request([([("__name__", "up"), ("job", "b")], [(t + 10**9, 1.0)])])
    push(client, future, token)

    request = metrics_request(
        [counter("requests", 3.0, exemplars=[exemplar(1.0)]), gauge("temperature", 20)]
    )
    response = client.post(
        "/otlp/v1/metrics",
        request.SerializeToString(),
        content_type="application/x-protobuf",
        **{"HTTP_AUTHORIZATION": f"Bearer {token}"},
    )
    assert response.status_code == 200
    spans = otlp_request([span("eee19b7ec3c1b174"), span("aaa19b7ec3c1b174", "eee19b7ec3c1b174")])
    assert post_otlp(client, spans.SerializeToString(), token).status_code == 200

    after = _scrape(client)

    def delta(signal, protocol):
        labels = {"signal": signal, "protocol": protocol}
        return _value(after, "canopy_ingest_accepted_total", **labels) - _value(
            before, "canopy_ingest_accepted_total", **labels
        )

    assert delta("samples", "remote-write") == 2
    assert delta("otlp_metric_points", "otlp") == 2
    assert delta("samples", "otlp-metrics") == 2  # one sample per number data point
    assert delta("exemplars", "otlp-metrics") == 1
    assert delta("spans", "otlp") == 2


def test_statement_time_by_kind_and_connections(client, tenants, settings):
    from django.db import DatabaseError, connection, transaction

    settings.METRICS_TOKEN = None
    before = _scrape(client)
    with connection.cursor() as cur:
        for _ in range(3):
            cur.execute("SELECT pg_sleep(0.01)")
        with pytest.raises(DatabaseError), transaction.atomic():
            cur.execute("SELECT no_such_column FROM tenancy_organization")
    after = _scrape(client)

    def count(kind, outcome):
        name = "canopy_db_statement_duration_seconds_count"
        return _value(after, name, kind=kind, outcome=outcome) - _value(
            before, name, kind=kind, outcome=outcome
        )

    assert count("select", "ok") >= 3
    assert count("select", "error") == 1
    slow = "canopy_db_statement_duration_seconds_sum"
    assert (
        _value(after, slow, kind="select", outcome="ok")
        - _value(before, slow, kind="select", outcome="ok")
        >= 0.03
    )
    # the scrape itself reads pg_stat_activity: this test's connection is there
    states = {
        dict(labels)["state"]: v
        for (name, labels), v in after.items()
        if name == "canopy_db_server_connections"
    }
    assert states.get("active", 0) >= 1
    assert _value(after, "canopy_db_server_max_connections") >= sum(states.values())
    assert ("canopy_db_connections_opened_total", ()) in after


def test_statement_kinds_are_bounded():
    from psycopg import sql

    from backend.observability.metrics import _statement_kind

    assert _statement_kind("  SELECT 1") == "select"
    assert _statement_kind("(select 1) union (select 2)") == "select"
    assert _statement_kind("WITH x AS (SELECT 1) DELETE FROM t") == "with"
    assert _statement_kind(b"COPY t FROM STDIN") == "copy"
    composed = sql.SQL("DELETE FROM {} WHERE org_id = %s").format(sql.Identifier("t"))
    assert _statement_kind(composed) == "delete"
    assert _statement_kind("VACUUM whatever_the_user_wrote") == "other"
    assert _statement_kind("") == "other"


def test_counts_from_other_processes_are_summed(client, settings, tmp_path, monkeypatch):
    # As under `make run`: gunicorn, Celery and the gRPC receiver write into one folder;
    # the scrape (any web worker) sums them.
    import os
    import subprocess
    import sys
    from pathlib import Path

    settings.METRICS_TOKEN = None
    program = (
        "import django; django.setup()\n"
        "from backend.observability.metrics import ingest_accepted\n"
        "from django.db import connection\n"
        "ingest_accepted(signal='spans', protocol='otlp_protobuf', n=7)\n"
        "connection.cursor().execute('SELECT 1')\n"
    )
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "backend.settings",
    }
    root = Path(__file__).resolve().parents[2]
    for _ in range(2):
        subprocess.run([sys.executable, "-c", program], env=env, cwd=root, check=True, timeout=120)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    got = _scrape(client)
    spans = _value(got, "canopy_ingest_accepted_total", signal="spans", protocol="otlp_protobuf")
    assert spans == 14
    statements = "canopy_db_statement_duration_seconds_count"
    assert _value(got, statements, kind="select", outcome="ok") >= 2
    assert _value(got, "canopy_db_connections_opened_total") >= 2
